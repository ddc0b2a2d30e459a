"""Import agent definitions of other tools as loops: Dify, CrewAI, gh-aw, Open Agent Spec.

``convert_path(path)`` (the CLI) and ``convert_upload(files)`` (the web app)
detect the format, convert, and check the result with the engine's own
``loopkit.document.analyze``: an import is a loop that validates, or an
error. Each format's module has ``detect(text, filename)`` and ``convert``;
what did not map comes back as :class:`~loopkit.importers.base.Note` s.

    result = convert_path(Path("workflow.yml"))
    result.yaml            # canonical loop YAML
    result.notes           # what did not map, with where it was
    result.analysis.report # its Loop Readiness Score
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from loopkit.errors import Problem, SpecError
from loopkit.importers import agentspec, crewai, dify, gh_aw
from loopkit.importers.base import Conversion, Note, refuse

if TYPE_CHECKING:
    from loopkit.document import Analysis

__all__ = [
    "FORMATS",
    "Imported",
    "Note",
    "convert_path",
    "convert_text",
    "convert_upload",
    "detect",
]

#: Format name → its detect function, in the order they are tried.
FORMATS: dict[str, Callable[[str, str], bool]] = {
    "gh-aw": gh_aw.detect,
    "dify": dify.detect,
    "agentspec": agentspec.detect,
    "crewai": crewai.detect,
}

MAX_BYTES = 1024 * 1024


@dataclass
class Imported:
    """A converted loop, validated: its canonical YAML, notes and analysis."""

    format: str
    source: str
    yaml: str
    notes: list[Note] = field(default_factory=list)
    analysis: Analysis | None = None

    @property
    def name(self) -> str:
        loop = self.analysis.loop if self.analysis else None
        return loop.name if loop else ""


def detect(text: str, filename: str) -> str | None:
    """Return the format of ``text`` (``dify``, ``crewai``, ``gh-aw``, ``agentspec``) or None."""
    for name, check in FORMATS.items():
        if check(text, filename):
            return name
    return None


def _finish(conversion: Conversion, source: str) -> Imported:
    from loopkit import emitter
    from loopkit.document import analyze

    text = emitter.dump(conversion.data)
    shown = PurePosixPath(source).stem + ".yaml"
    analysis = analyze(text, file=shown)
    if not analysis.ok:
        # The importers write what LoopKit reads: a problem here is their bug, reported
        # whole rather than hidden.
        raise SpecError(
            [
                Problem(
                    f"the converted loop does not validate: {p.message}",
                    path=p.path,
                    file=source,
                    code="import_invalid",
                    hint=p.hint,
                )
                for p in analysis.problems
            ]
        )
    return Imported(conversion.format, source, analysis.yaml or text, conversion.notes, analysis)


def _read(path: Path) -> str:
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise refuse(f"the file is {size:,} bytes; imports are limited to {MAX_BYTES:,}", str(path))
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise refuse(
            f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})", str(path)
        ) from None


def convert_text(text: str, filename: str, fmt: str = "auto") -> Imported:
    """Convert one file's text (a CrewAI tasks file alone: its agents are missing)."""
    fmt = _format(text, filename, fmt)
    converters: dict[str, Callable[[str, str], Conversion]] = {
        "dify": dify.convert,
        "gh-aw": gh_aw.convert,
        "agentspec": agentspec.convert,
        "crewai": crewai.convert,
    }
    return _finish(_guarded(fmt, filename, lambda: converters[fmt](text, filename)), filename)


def _guarded(fmt: str, filename: str, convert: Callable[[], Conversion]) -> Conversion:
    """Run a converter; a source of an unexpected shape is the input's fault, said as such.

    The converters check the shapes they rely on; a value of another type deep
    in a file (a number where a mapping was expected) would otherwise surface
    as a Python error.
    """
    try:
        return convert()
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise refuse(
            f"the file does not have the shape of a {fmt} file ({type(exc).__name__}: {exc})",
            filename,
            hint=f"check it against the {fmt} format, or name another with --format",
        ) from None


def _format(text: str, filename: str, fmt: str) -> str:
    if fmt != "auto":
        if fmt not in FORMATS:
            raise refuse(
                f"unknown format '{fmt}'", filename, hint="one of: auto, " + ", ".join(FORMATS)
            )
        return fmt
    found = detect(text, filename)
    if found is None:
        if not filename.lower().endswith(".md"):
            from loopkit import yamlio

            try:
                yamlio.parse(text, filename)
            except SpecError as exc:  # a YAML or JSON syntax error says where it is
                if any(p.code == "yaml_syntax" for p in exc.problems):
                    raise
        raise refuse(
            "cannot tell the format: not a Dify DSL file (kind: app), a CrewAI agents or "
            "tasks file, a GitHub agentic workflow (markdown with 'on:' front matter) or an "
            "Open Agent Spec flow (component_type: Flow)",
            filename,
            hint="name it with --format",
        )
    return found


def convert_path(path: Path, fmt: str = "auto") -> Imported:
    """Convert a file, or a CrewAI project folder; raise ``SpecError`` for bad input."""
    if not path.exists():
        raise refuse("no such file or folder", str(path))
    if path.is_dir():
        if fmt not in ("auto", "crewai"):
            raise refuse(f"a folder can only be a CrewAI project, not {fmt}", str(path))
        return _crew(path)
    text = _read(path)
    found = _format(text, str(path), fmt)
    if found == "crewai":
        return _crew(path)
    return convert_text(text, str(path), found)


def _crew(path: Path) -> Imported:
    agents, tasks, crew = crewai.find_project(path)
    tasks_text = _read(tasks)
    agents_text = _read(agents) if agents else None
    crew_text = _read(crew) if crew else None
    conversion = _guarded(
        "crewai",
        str(tasks),
        lambda: crewai.convert(
            tasks_text,
            str(tasks),
            agents_text,
            str(agents) if agents else None,
            crew_text,
            name=path.name if path.is_dir() else None,
        ),
    )
    return _finish(conversion, str(tasks))


def convert_upload(files: list[tuple[str, str]]) -> tuple[list[Imported], list[tuple[str, str]]]:
    """Convert the foreign files of an upload; return them and the files left as loops.

    A CrewAI ``agents.*`` and ``tasks.*`` uploaded together make one crew. Files of
    no known format are returned untouched (they are read as loop files).
    """
    imported: list[Imported] = []
    rest: list[tuple[str, str]] = []
    crew: dict[str, tuple[str, str]] = {}
    for name, text in files:
        fmt = detect(text, name)
        if fmt is None:
            rest.append((name, text))
        elif fmt == "crewai":
            kind = "tasks" if crewai.is_tasks(text) else "agents"
            crew[kind] = (name, text)
        else:
            imported.append(convert_text(text, name, fmt))
    if crew:
        if "tasks" not in crew:
            raise refuse(
                "a CrewAI agents file needs its tasks file: upload both", crew["agents"][0]
            )
        tasks_name, tasks_text = crew["tasks"]
        agents_name, agents_text = crew.get("agents", (None, None))
        conversion = _guarded(
            "crewai",
            tasks_name,
            lambda: crewai.convert(tasks_text, tasks_name, agents_text, agents_name),
        )
        imported.append(_finish(conversion, tasks_name))
    return imported, rest

"""Find a project (``loopkit.yaml``) and the loops it holds.

The project file is ``loopkit.yaml``; ``loopcode.yaml`` (the first release's
name after its rename) is read the same way. A project's loops are the files
of its loops folder and the loops written inline under ``loops:`` in the
project file (the first release's form).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from loopkit import spec
from loopkit.errors import Problem, SpecError
from loopkit.yamlio import load_loop_file, load_project

if TYPE_CHECKING:
    from loopkit.skills import Catalog

PROJECT_FILE = "loopkit.yaml"
#: Project file names, in the order they are looked for in a folder.
PROJECT_FILES = (PROJECT_FILE, "loopcode.yaml")
LOOP_SUFFIXES = (".yaml", ".yml")


def is_project_file(path: Path) -> bool:
    """Return whether ``path`` names a project file (``loopkit.yaml``, ``loopcode.yaml``)."""
    return path.name in PROJECT_FILES


@dataclass
class ProjectContext:
    """A project's root folder and its settings (defaults when there is no loopkit.yaml)."""

    root: Path
    project: spec.Project = field(default_factory=spec.Project)
    file: Path | None = None

    @property
    def loops_dir(self) -> Path:
        return self.root / self.project.effective_loops_dir

    def loop_files(self) -> list[Path]:
        """Return the loop files of the project, sorted by name."""
        if not self.loops_dir.is_dir():
            return []
        return sorted(
            p
            for p in self.loops_dir.iterdir()
            if p.suffix in LOOP_SUFFIXES and p.is_file() and not is_project_file(p)
        )

    def loop_names(self) -> list[str]:
        """Return the names of the project's loops: its files', then the inline ones."""
        names = [p.stem for p in self.loop_files()]
        return names + [n for n in self.project.loops if n not in names]

    def resolve_loop(self, name_or_path: str) -> Path:
        """Return the file of a loop given by name (``pr-review``) or by path."""
        direct = Path(name_or_path)
        if direct.suffix in LOOP_SUFFIXES and direct.is_file():
            return direct
        for suffix in LOOP_SUFFIXES:
            candidate = self.loops_dir / f"{name_or_path}{suffix}"
            if candidate.is_file():
                return candidate
        raise self._unknown(name_or_path)

    def _unknown(self, name: str) -> SpecError:
        known = ", ".join(self.loop_names()) or "none"
        return SpecError(
            [
                Problem(
                    f"no loop named '{name}' in {self.loops_dir} (loops here: {known})",
                    file=name,  # what the user typed, not '<string>'
                    code="unknown_loop",
                    hint="give a loop name from loops/ or a path to a .yaml file",
                )
            ]
        )

    def inline_key(self, name: str) -> str | None:
        """Return the key under ``loops:`` of the inline loop called ``name`` (key or name)."""
        for key, loop in self.project.loops.items():
            if name in (key, loop.name):
                return key
        return None

    def locate(self, name_or_path: str) -> tuple[spec.Loop, Path]:
        """Return a loop, checked, and the file it is written in.

        ``name_or_path`` is a loop file's path, a loop's name (a file of the
        loops folder first, then a loop written inline in the project file), or
        this project's own file when it holds exactly one inline loop.
        """
        direct = Path(name_or_path)
        own = self.file is not None and direct.resolve() == self.file.resolve()
        if own and self.file is not None and is_project_file(direct):
            return self._only_inline(), self.file
        try:
            path = self.resolve_loop(name_or_path)
        except SpecError:
            key = self.inline_key(name_or_path)
            if key is None or self.file is None:
                raise
            return self.load_inline(key), self.file
        return load_loop_file(path, project=self.project, skills=self.skills().refs()), path

    def _only_inline(self) -> spec.Loop:
        keys = list(self.project.loops)
        if len(keys) == 1:
            return self.load_inline(keys[0])
        if keys:
            message = f"the project file holds {len(keys)} loops inline ({', '.join(keys)})"
        else:
            files = ", ".join(p.stem for p in self.loop_files()) or "none"
            folder = self.project.effective_loops_dir
            message = f"the project file holds no loops inline (loops in {folder}/: {files})"
        raise SpecError(
            [
                Problem(
                    message,
                    file=str(self.file) if self.file else None,
                    code="unknown_loop",
                    hint="give the name of the loop to run",
                )
            ]
        )

    def load(self, name_or_path: str) -> spec.Loop:
        """Resolve and load a loop, checked against the project's definitions and skills."""
        return self.locate(name_or_path)[0]

    def load_inline(self, key: str) -> spec.Loop:
        """Return the loop written inline under ``loops: {key: ...}``, checked.

        Raise ``SpecError`` with the problems positioned in the project file.
        """
        problems = self.inline_problems(key)
        if problems:
            raise SpecError(problems)
        return self.project.loops[key]

    def inline_problems(self, key: str, skills: Collection[str] | None = None) -> list[Problem]:
        """Return the cross-reference problems of an inline loop, positioned in the project file.

        ``skills`` are the skill references found for the project (default: all of them).
        """
        from loopkit.checks import check_loop
        from loopkit.yamlio import format_path, parse, parse_path

        found = self.skills().refs() if skills is None else skills
        problems = check_loop(self.project.loops[key], self.project, found, base=self.root)
        if not problems:
            return []
        shown = str(self.file) if self.file else PROJECT_FILE
        doc = parse(self.file.read_bytes(), shown) if self.file else None
        out = []
        for p in problems:
            where = ("loops", key, *parse_path(p.path))
            pos = doc.position(where) if doc else None
            out.append(
                Problem(
                    p.message,
                    path=format_path(where),
                    file=shown,
                    line=pos[0] if pos else None,
                    column=pos[1] if pos else None,
                    code=p.code,
                    hint=p.hint,
                )
            )
        return out

    def skills(self) -> Catalog:
        """Return the skills of the project's skills folders and of installed packages."""
        from loopkit.skills import discover

        return discover(self.root, self.project.effective_skills_dirs)


def open_project(file: Path) -> ProjectContext:
    """Return the project whose project file is ``file``; raise ``SpecError`` if it is invalid."""
    project = load_project(file.read_bytes(), str(file))
    return ProjectContext(root=file.resolve().parent, project=project, file=file)


def find_project(start: Path | None = None) -> ProjectContext:
    """Return the project whose project file is in ``start`` or above it.

    In each folder ``loopkit.yaml`` is looked for first, then ``loopcode.yaml``.
    Without one, the project is ``start`` itself with default settings, so a
    bare ``loops/`` folder works.
    """
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        for name in PROJECT_FILES:
            candidate = folder / name
            if candidate.is_file():
                return open_project(candidate)
    return ProjectContext(root=start)

"""Skills: folders with a ``SKILL.md`` that teach an agent a domain.

A skill is a folder holding ``SKILL.md``: YAML front matter with ``name`` and
``description``, then a Markdown body with the instructions, plus any files
beside it (checklists, examples, scripts) that the body may mention::

    skills/code-review/SKILL.md
    ---
    name: code-review
    description: Review a diff for bugs, security holes and missing tests.
    ---
    # Code review
    1. Read the whole diff first ...

Skills are found in the project's skills folders (``skillsDirs`` of
``loopkit.yaml``, default ``skills/``) and in installed Python packages that
declare an entry point in the group ``loopkit.skills``; the entry point loads
to a module (its folder is searched), a path, or a callable returning paths.
A project skill wins over a package skill of the same name.

Progressive disclosure: an agent step that names skills gets only their names
and descriptions in its system prompt, and a ``load_skill`` tool that returns
a skill's full body (and lists its files) when the model decides the skill
applies; ``read_skill_file`` reads one of those files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from loopkit.errors import Problem, SpecError
from loopkit.tools import Tool, ToolResult

SKILL_FILE = "SKILL.md"
ENTRY_POINT_GROUP = "loopkit.skills"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_DESCRIPTION = 1024
#: Largest skill file ``read_skill_file`` hands to the model.
MAX_FILE_BYTES = 200_000
_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


@dataclass(frozen=True)
class Skill:
    """A parsed skill: ``source`` is ``project`` or ``package:<distribution>``."""

    name: str
    description: str
    body: str
    path: Path
    source: str = "project"
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def folder(self) -> Path:
        return self.path.parent

    def files(self) -> list[str]:
        """Return the files beside ``SKILL.md``, relative to the skill's folder."""
        out = []
        for item in sorted(self.folder.rglob("*")):
            if item.is_file() and item != self.path and not _hidden(item, self.folder):
                out.append(item.relative_to(self.folder).as_posix())
        return out

    def read_file(self, relative: str) -> str:
        """Return a file of the skill; refuse paths outside its folder. Raise ``ValueError``."""
        target = (self.folder / relative).resolve()
        folder = self.folder.resolve()
        if folder not in target.parents:
            raise ValueError(f"'{relative}' is not inside the skill '{self.name}'")
        if not target.is_file():
            raise ValueError(f"the skill '{self.name}' has no file '{relative}'")
        if target.stat().st_size > MAX_FILE_BYTES:
            raise ValueError(f"'{relative}' is larger than {MAX_FILE_BYTES:,} bytes")
        try:
            return target.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"'{relative}' is not a text file") from None


def _hidden(item: Path, root: Path) -> bool:
    return any(
        part.startswith(".") or part == "__pycache__" for part in item.relative_to(root).parts
    )


def parse_skill(path: Path, source: str = "project") -> Skill:
    """Parse one ``SKILL.md``; raise ``SpecError`` naming the file, line and field."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(
            [Problem(f"cannot read the skill: {exc}", file=file, code="skill_unreadable")]
        ) from None
    match = _FRONT.match(text)
    if match is None:
        raise SpecError(
            [
                Problem(
                    "SKILL.md must start with YAML front matter between '---' lines",
                    file=file,
                    line=1,
                    column=1,
                    code="skill_front_matter",
                    hint="start the file with:\n---\nname: my-skill\ndescription: what it is for\n---",
                )
            ]
        )
    try:
        front = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise SpecError(
            [
                Problem(
                    f"the front matter is not valid YAML: {getattr(exc, 'problem', exc)}",
                    file=file,
                    line=mark.line + 2 if mark else None,
                    column=mark.column + 1 if mark else None,
                    code="skill_front_matter",
                )
            ]
        ) from None
    if not isinstance(front, dict):
        front = {}
    problems: list[Problem] = []
    name, description = front.get("name"), front.get("description")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        problems.append(
            Problem(
                "'name' is missing or invalid"
                if name is None
                else f"'{name}' is not a valid skill name",
                path="name",
                file=file,
                line=_line_of(match.group(1), "name"),
                code="skill_name",
                hint="letters, digits, '.', '_' and '-', up to 64 characters (e.g. 'code-review')",
            )
        )
    if not isinstance(description, str) or not description.strip():
        problems.append(
            Problem(
                "'description' is missing: it is what the model reads to decide whether the skill applies",
                path="description",
                file=file,
                line=_line_of(match.group(1), "description"),
                code="skill_description",
            )
        )
    elif len(description) > MAX_DESCRIPTION:
        problems.append(
            Problem(
                f"'description' is {len(description):,} characters; the limit is {MAX_DESCRIPTION:,}",
                path="description",
                file=file,
                code="skill_description",
                hint="keep the description to when to use the skill; put the how in the body",
            )
        )
    if problems:
        raise SpecError(problems)
    body = text[match.end() :].strip()
    extra = {k: v for k, v in front.items() if k not in ("name", "description")}
    return Skill(str(name), str(description).strip(), body, path, source, extra)


def _line_of(front: str, key: str) -> int:
    for index, line in enumerate(front.splitlines()):
        if line.startswith(f"{key}:"):
            return index + 2
    return 1


def _skill_files(folder: Path) -> list[Path]:
    """Return the ``SKILL.md`` of ``folder`` itself, else those of its sub-folders (two levels)."""
    if (folder / SKILL_FILE).is_file():
        return [folder / SKILL_FILE]
    if not folder.is_dir():
        return []
    found = sorted(folder.glob(f"*/{SKILL_FILE}")) + sorted(folder.glob(f"*/*/{SKILL_FILE}"))
    return [f for f in found if not _hidden(f, folder)]


def ref_key(ref: str) -> str:
    """Return a skill reference in the form ``Catalog.aliases`` uses.

    ``./skills/notes/``, ``skills\\notes`` and ``skills/notes/SKILL.md`` all
    become ``skills/notes``.
    """
    key = ref.strip().replace("\\", "/")
    while key.startswith("./"):
        key = key[2:]
    if key.endswith("/" + SKILL_FILE):
        key = key[: -len(SKILL_FILE) - 1]
    return key.rstrip("/")


@dataclass
class Catalog:
    """The skills a project can use, by name, and the problems met finding them.

    ``aliases`` are the other ways a loop may name a project skill (the first
    release named a skill by its folder): the folder's name, its path inside
    the skills folder and its path from the project root, each mapped to the
    skill's name.
    """

    skills: dict[str, Skill] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)

    def names(self) -> list[str]:
        return sorted(self.skills)

    def refs(self) -> list[str]:
        """Return every reference that names a skill here: the names, then the aliases."""
        return [*self.names(), *sorted(a for a in self.aliases if a not in self.skills)]

    def get(self, name: str) -> Skill | None:
        """Return the skill a reference names (a skill name or an alias), or None."""
        skill = self.skills.get(name)
        if skill is None:
            alias = self.aliases.get(ref_key(name))
            skill = self.skills.get(alias) if alias is not None else None
        return skill

    def _add(self, path: Path, source: str, aliases: Iterable[str] = ()) -> None:
        try:
            skill = parse_skill(path, source)
        except SpecError as exc:
            self.problems += exc.problems
            return
        if skill.name not in self.skills:
            self.skills[skill.name] = skill
        for alias in aliases:
            self.aliases.setdefault(alias, skill.name)


def discover(
    root: Path | None = None,
    skills_dirs: Sequence[str] = ("skills",),
    *,
    packages: bool = True,
) -> Catalog:
    """Find the skills of the project at ``root`` and of installed packages."""
    catalog = Catalog()
    if root is not None:
        for name in skills_dirs:
            base = root / name
            for path in _skill_files(base):
                inside = path.parent.relative_to(base).as_posix()
                aliases = [path.parent.name, ref_key(name)]
                if inside != ".":
                    aliases[1:] = [inside, ref_key(f"{name}/{inside}")]
                catalog._add(path, "project", aliases)
    if packages:
        for source, folder in _package_folders():
            for path in _skill_files(folder):
                catalog._add(path, source)
    return catalog


def _package_folders() -> Iterable[tuple[str, Path]]:
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry.dist.name if entry.dist is not None else entry.name
        try:
            loaded: Any = entry.load()
            if callable(loaded) and not isinstance(loaded, ModuleType):
                loaded = loaded()
        except Exception:  # a broken plug-in must not break `loopkit skills`
            continue
        items = loaded if isinstance(loaded, list | tuple) else [loaded]
        for item in items:
            if isinstance(item, ModuleType):
                locations = list(getattr(item, "__path__", [])) or (
                    [str(Path(item.__file__).parent)] if item.__file__ else []
                )
                for location in locations:
                    yield f"package:{dist}", Path(location)
            elif isinstance(item, str | Path):
                yield f"package:{dist}", Path(item)


def resolve(refs: Iterable[str], catalog: Catalog, root: Path | None = None) -> list[Skill]:
    """Return the skills ``refs`` name (names, or paths to a skill folder or SKILL.md).

    Raise ``SpecError`` listing every name that cannot be found.
    """
    out: list[Skill] = []
    problems: list[Problem] = []
    for ref in dict.fromkeys(refs):
        skill = catalog.get(ref)
        if skill is None and ("/" in ref or ref.endswith(".md")):
            path = (root or Path.cwd()) / ref
            path = path if path.name == SKILL_FILE else path / SKILL_FILE
            if path.is_file():
                skill = parse_skill(path)
        if skill is None:
            problems.append(
                Problem(
                    f"skill '{ref}' was not found",
                    code="unknown_skill",
                    hint="add a folder with a SKILL.md under skills/ (see `loopkit skills`)",
                )
            )
        else:
            out.append(skill)
    if problems:
        raise SpecError(problems)
    return out


# ── Progressive disclosure ───────────────────────────────────────────────


def instructions(skills: Sequence[Skill]) -> str:
    """Return the system-prompt section that lists the skills by description only."""
    if not skills:
        return ""
    lines = [
        "You have skills: instructions written for particular kinds of task. Their "
        "descriptions follow. When a skill applies to your task, call load_skill with "
        "its name to read it in full before you act, and follow it.",
        "",
    ]
    lines += [f"- {s.name}: {s.description}" for s in skills]
    return "\n".join(lines)


class LoadSkill(Tool):
    """The ``load_skill`` tool: the full body of one of the step's skills."""

    name = "load_skill"

    def __init__(self, skills: Sequence[Skill]) -> None:
        self._skills = {s.name: s for s in skills}
        self.loaded: list[str] = []
        self.description = "Read the full instructions of a skill when it applies to your task."
        self.parameters = {
            "type": "object",
            "properties": {"name": {"type": "string", "enum": sorted(self._skills)}},
            "required": ["name"],
            "additionalProperties": False,
        }

    async def call(self, arguments: dict[str, Any]) -> ToolResult:
        name = arguments.get("name")
        skill = self._skills.get(name) if isinstance(name, str) else None
        if skill is None:
            known = ", ".join(sorted(self._skills))
            return ToolResult(f"no skill named {name!r} (skills here: {known})", is_error=True)
        self.loaded.append(skill.name)
        files = skill.files()
        text = f"# Skill: {skill.name}\n\n{skill.body}"
        if files:
            text += "\n\nFiles in this skill (read one with read_skill_file):\n" + "\n".join(
                f"- {f}" for f in files
            )
        return ToolResult(text, data={"skill": skill.name})


class ReadSkillFile(Tool):
    """The ``read_skill_file`` tool: one file beside a skill's SKILL.md."""

    name = "read_skill_file"

    def __init__(self, skills: Sequence[Skill]) -> None:
        self._skills = {s.name: s for s in skills}
        self.description = "Read a file that a loaded skill mentions (a checklist, an example)."
        self.parameters = {
            "type": "object",
            "properties": {
                "skill": {"type": "string", "enum": sorted(self._skills)},
                "path": {"type": "string", "description": "The file's path inside the skill."},
            },
            "required": ["skill", "path"],
            "additionalProperties": False,
        }

    async def call(self, arguments: dict[str, Any]) -> ToolResult:
        skill = self._skills.get(str(arguments.get("skill")))
        if skill is None:
            return ToolResult(f"no skill named {arguments.get('skill')!r}", is_error=True)
        try:
            return ToolResult(skill.read_file(str(arguments.get("path", ""))))
        except ValueError as exc:
            return ToolResult(str(exc), is_error=True)


def skill_tools(skills: Sequence[Skill]) -> list[Tool]:
    """Return the tools that disclose ``skills`` (none when there are no skills)."""
    if not skills:
        return []
    tools: list[Tool] = [LoadSkill(skills)]
    if any(s.files() for s in skills):
        tools.append(ReadSkillFile(skills))
    return tools

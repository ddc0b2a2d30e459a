"""Find a project (``loopkit.yaml``) and the loops it holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from loopkit import spec
from loopkit.errors import Problem, SpecError
from loopkit.yamlio import load_loop_file, load_project

if TYPE_CHECKING:
    from loopkit.skills import Catalog

PROJECT_FILE = "loopkit.yaml"
LOOP_SUFFIXES = (".yaml", ".yml")


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
            p for p in self.loops_dir.iterdir() if p.suffix in LOOP_SUFFIXES and p.is_file()
        )

    def resolve_loop(self, name_or_path: str) -> Path:
        """Return the file of a loop given by name (``pr-review``) or by path."""
        direct = Path(name_or_path)
        if direct.suffix in LOOP_SUFFIXES and direct.is_file():
            return direct
        for suffix in LOOP_SUFFIXES:
            candidate = self.loops_dir / f"{name_or_path}{suffix}"
            if candidate.is_file():
                return candidate
        known = ", ".join(p.stem for p in self.loop_files()) or "none"
        raise SpecError(
            [
                Problem(
                    f"no loop named '{name_or_path}' in {self.loops_dir} (loops here: {known})",
                    code="unknown_loop",
                    hint="give a loop name from loops/ or a path to a .yaml file",
                )
            ]
        )

    def load(self, name_or_path: str) -> spec.Loop:
        """Resolve and load a loop, checked against the project's definitions and skills."""
        return load_loop_file(
            self.resolve_loop(name_or_path), project=self.project, skills=self.skills().names()
        )

    def skills(self) -> Catalog:
        """Return the skills of the project's skills folders and of installed packages."""
        from loopkit.skills import discover

        return discover(self.root, self.project.effective_skills_dirs)


def find_project(start: Path | None = None) -> ProjectContext:
    """Return the project whose ``loopkit.yaml`` is in ``start`` or above it.

    Without one, the project is ``start`` itself with default settings, so a
    bare ``loops/`` folder works.
    """
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        candidate = folder / PROJECT_FILE
        if candidate.is_file():
            project = load_project(candidate.read_bytes(), str(candidate))
            return ProjectContext(root=folder, project=project, file=candidate)
    return ProjectContext(root=start)

"""``loopkit skills``: list the skills a project can use."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--project",
        metavar="DIR",
        default=None,
        help="the project folder (default: found from here)",
    )
    parser.add_argument(
        "--no-packages", action="store_true", help="leave out skills of installed packages"
    )


def handle(args: argparse.Namespace) -> int:
    from loopkit import skills
    from loopkit.errors import SpecError
    from loopkit.project import find_project

    try:
        context = find_project(Path(args.project) if args.project else None)
    except SpecError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    catalog = skills.discover(
        context.root, context.project.effective_skills_dirs, packages=not args.no_packages
    )
    found = [catalog.skills[name] for name in catalog.names()]
    if args.json:
        data = {
            "skills": [
                {
                    "name": s.name,
                    "description": s.description,
                    "source": s.source,
                    "path": str(s.path),
                    "files": s.files(),
                }
                for s in found
            ],
            "problems": [p.as_dict() for p in catalog.problems],
        }
        print(json.dumps(data, indent=2))
        return 1 if catalog.problems else 0
    if not found:
        dirs = ", ".join(f"{d}/" for d in context.project.effective_skills_dirs)
        print(f"No skills found (looked in {dirs} and in installed packages).")
    else:
        width = max(len(s.name) for s in found)
        for s in found:
            where = _relative(s.path.parent, context.root) if s.source == "project" else s.source
            print(f"{s.name.ljust(width)}  {s.description}")
            print(f"{''.ljust(width)}  ({where})")
    for problem in catalog.problems:
        print(f"[x] {problem}", file=sys.stderr)
    return 1 if catalog.problems else 0


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix() + "/"
    except ValueError:
        return str(path)

"""``loopkit validate [PATHS...]``: check loops and print their Loop Readiness Score.

Paths are loop files, folders of them, loop names or project files
(``loopkit.yaml``, or the first release's ``loopcode.yaml``), a project file
standing for its project; without any, the project's loops folder (``loops/``
unless the project file says otherwise) and the loops written inline in the
project file. Each loop prints as in the seed::

    pr-review — LRS: 85/100 (Grade B)
      [ok] Maker/Checker separation enforced
      [!] State persistence recommended

Exit status: 0 when every loop is valid; 1 when any file has an error, any loop
has a blocking ``[x]`` finding, or (with ``--min-score N``) scores below N;
2 for a usage error (a path that does not exist).

``--format github`` (the default when ``GITHUB_ACTIONS=true``) prints the same
report followed by GitHub workflow commands: an ``::error`` at the file:line of
each error, each blocking finding and each loop below ``--min-score``, and a
``::warning`` at each ``[!]`` finding of a loop below the bar (of every loop
when there is no bar). ``--summary FILE`` appends a Markdown table of the
scores to FILE (the job summary, ``$GITHUB_STEP_SUMMARY``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from loopkit.document import Analysis
    from loopkit.errors import Problem
    from loopkit.lrs import Report
    from loopkit.project import ProjectContext

LOOP_SUFFIXES = (".yaml", ".yml")
FORMATS = ("text", "json", "github")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="loop files, folders or loop names (default: the project's loops folder)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="text; json; or github: text plus GitHub annotations "
        "(default: github when GITHUB_ACTIONS=true, else text)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document (--format json)"
    )
    parser.add_argument(
        "--summary",
        metavar="FILE",
        default=None,
        help="append a Markdown table of the scores to FILE (e.g. $GITHUB_STEP_SUMMARY)",
    )
    parser.add_argument(
        "--min-score",
        type=int,
        metavar="N",
        default=None,
        help="exit non-zero when any loop scores below N (for CI)",
    )
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the output (auto: on a terminal, unless NO_COLOR is set)",
    )


@dataclass
class Result:
    """What validating one loop gave: its problems, or its score."""

    file: str
    name: str | None = None
    problems: list[Problem] = field(default_factory=list)
    report: Report | None = None
    #: The file the loop is written in, and the loop's place in it (``("loops", key)`` for a
    #: loop inline in the project file): where a finding's field path is looked up.
    source: Path | None = None
    prefix: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "name": self.name,
            "ok": self.ok,
            "errors": [p.as_dict() for p in self.problems],
            "lrs": self.report.as_dict() if self.report else None,
        }


def handle(args: argparse.Namespace) -> int:
    from loopkit.errors import SpecError
    from loopkit.project import find_project

    _CONTEXTS.clear()  # one run's view of the disk: files may change between calls
    _SKILLS.clear()
    out = sys.stdout
    _fit_encoding(out)
    paint = _Painter(_use_color(args.color, out))
    style = _format(args)
    if style is None:
        print(
            "loopkit validate: --json and --format are two ways to say one thing", file=sys.stderr
        )
        return 2
    if args.min_score is not None and not 0 <= args.min_score <= 100:
        print("loopkit validate: --min-score must be between 0 and 100", file=sys.stderr)
        return 2
    results: list[Result] = []
    empty: list[str] = []
    if args.paths:
        files, projects, inline, missing = _collect(args.paths)
        if missing:
            for path in missing:
                print(f"loopkit validate: {path}: no such file, folder or loop", file=sys.stderr)
            return 2
        results = [_validate_file(path) for path in files]
        for context, key in inline:
            results += _validate_inline(context, [key])
        for project_file in projects:
            results += _validate_project(project_file, results, empty)
        if not results and not empty:
            shown = ", ".join(args.paths)
            print(f"loopkit validate: no loop files in {shown}", file=sys.stderr)
            return 1
    else:
        try:
            context = find_project()
        except SpecError as exc:  # the project file itself is invalid
            context = None
            results.append(Result(file=_problem_file(exc), problems=exc.problems))
        if context is not None:
            results = _validate_context(context, [], empty)
            if not results and not empty:
                print(
                    f"loopkit validate: no loop files in {_show(context.loops_dir)} "
                    "(run 'loopkit init' to create a project)",
                    file=sys.stderr,
                )
                return 1
    _check_unique_names(results)

    below = [
        r
        for r in results
        if r.report is not None and args.min_score is not None and r.report.score < args.min_score
    ]
    blocked = [r for r in results if r.report is not None and r.report.blocked]
    failed = [r for r in results if not r.ok]
    if style == "json":
        document = {
            "ok": not failed and not blocked and not below,
            "minScore": args.min_score,
            "loops": [r.as_dict() for r in results],
        }
        out.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    else:
        for shown in empty:
            out.write(f"{shown} {_DASH[0]} a valid project file with no loops yet\n")
        _print_text(results, out, paint)
        _print_summary(results, failed, blocked, below, args.min_score, out, paint)
    if style == "github":
        from loopkit.commands.validate_github import print_annotations

        print_annotations(results, below, args.min_score, out)
    if args.summary:
        from loopkit.commands.validate_github import write_summary

        try:
            write_summary(Path(args.summary), results, below, args.min_score)
        except OSError as exc:
            print(f"loopkit validate: cannot write {args.summary}: {exc.strerror}", file=sys.stderr)
            return 2
    return 1 if failed or blocked or below else 0


def _format(args: argparse.Namespace) -> str | None:
    """Return the output format asked for (None when --json and --format disagree)."""
    from loopkit.annotations import in_github_actions

    if args.json:
        return "json" if args.format in (None, "json") else None
    if args.format is not None:
        return str(args.format)
    return "github" if in_github_actions() else "text"


# ── Collecting and validating ────────────────────────────────────────────


#: Files of ``loopkit test`` (docs/testing.md): never loops, skipped in a folder.
NOT_LOOPS = (".test.yaml", ".test.yml", ".cassette.yaml", ".cassette.yml")


def _collect(
    paths: list[str],
) -> tuple[list[Path], list[Path], list[tuple[ProjectContext, str]], list[str]]:
    """Return the loop files, project files, inline loops named and paths that name nothing."""
    from loopkit.project import is_project_file

    files: list[Path] = []
    projects: list[Path] = []
    inline: list[tuple[ProjectContext, str]] = []
    missing: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for found in sorted(path.iterdir()):
                if found.suffix not in LOOP_SUFFIXES or not found.is_file():
                    continue
                if found.name.endswith(NOT_LOOPS):
                    continue  # loopkit test's files, beside the loops in a small project
                # 'loopkit validate .' in a project: the project file stands for its loops.
                (projects if is_project_file(found) else files).append(found)
        elif path.is_file() and is_project_file(path):
            projects.append(path)
        elif path.is_file():
            files.append(path)
        elif (named := _by_name(raw)) is not None:
            files.append(named)
        elif (written := _inline_by_name(raw)) is not None:
            inline.append(written)
        else:
            missing.append(raw)
    seen: set[Path] = set()
    unique = []
    for file in files:
        key = file.resolve()
        if key not in seen and not is_project_file(file):
            seen.add(key)
            unique.append(file)
    return unique, list({p.resolve(): p for p in projects}.values()), inline, missing


def _by_name(name: str) -> Path | None:
    """Return the project's file of the loop called ``name`` (``loopkit validate pr-review``)."""
    from loopkit.errors import SpecError
    from loopkit.project import find_project

    if "/" in name or "\\" in name:
        return None
    try:
        return find_project().resolve_loop(name)
    except SpecError:
        return None


def _inline_by_name(name: str) -> tuple[ProjectContext, str] | None:
    """Return the project and key of the loop called ``name`` written inline in its project file."""
    from loopkit.errors import SpecError
    from loopkit.project import find_project

    try:
        context = find_project()
    except SpecError:
        return None
    key = context.inline_key(name)
    return (context, key) if key is not None and context.file is not None else None


_CONTEXTS: dict[Path, ProjectContext] = {}


def _context_for(path: Path) -> ProjectContext:
    from loopkit.project import find_project

    folder = path.resolve().parent
    if folder not in _CONTEXTS:
        context = find_project(folder)
        if context.file is None and folder.name == "loops":
            # A bare project (no loopkit.yaml): loops/ sits in its root, beside skills/.
            context = find_project(folder.parent)
        _CONTEXTS[folder] = context
    return _CONTEXTS[folder]


def _validate_file(path: Path, context: ProjectContext | None = None) -> Result:
    from loopkit.errors import SpecError

    shown = _show(path)
    result = Result(file=shown, source=path)
    try:
        context = context or _context_for(path)
        analysis = _analyze(path.read_bytes(), shown, context, path.resolve().parent)
    except SpecError as exc:  # the project file of this loop is invalid
        result.problems = exc.problems
        result.name = _guess_name(path)
        return result
    except OSError as exc:
        from loopkit.errors import Problem

        result.problems = [Problem(f"cannot read the file: {exc.strerror}", file=shown, code="io")]
        return result
    if not analysis.ok:
        result.problems = analysis.problems
        result.name = _guess_name(path)
        return result
    result.name = analysis.loop.name if analysis.loop else None
    result.report = _calibrated(analysis.report, analysis.loop, context)
    return result


def _analyze(
    data: bytes, shown: str, context: ProjectContext, base: Path | None = None
) -> Analysis:
    """Analyse a loop file, looking for its skills only as far as needed.

    Finding the skills of installed packages scans every distribution's entry
    points (tens of milliseconds): skip it for a file that names no skill, and
    for one whose skills are all in the project's own skills folders.
    """
    from loopkit.document import analyze

    if b"skill" not in data:
        return analyze(data, file=shown, project=context.project, base=base)
    analysis = analyze(
        data,
        file=shown,
        project=context.project,
        skills=_skill_names(context, packages=False),
        base=base,
    )
    if not any(p.code == "unknown_skill" for p in analysis.problems):
        return analysis
    return analyze(
        data, file=shown, project=context.project, skills=_skill_names(context), base=base
    )


_SKILLS: dict[tuple[Path, bool], list[str]] = {}


def _skill_names(context: ProjectContext, *, packages: bool = True) -> list[str]:
    from loopkit.skills import discover

    key = (context.root, packages)
    if key not in _SKILLS:
        found = discover(context.root, context.project.effective_skills_dirs, packages=packages)
        _SKILLS[key] = found.refs()
    return _SKILLS[key]


def _validate_project(project_file: Path, done: list[Result], empty: list[str]) -> list[Result]:
    """Validate the project a project file stands for (``loopkit validate loopkit.yaml``)."""
    from loopkit.errors import SpecError
    from loopkit.project import open_project

    try:
        context = open_project(project_file)
    except SpecError as exc:
        return [Result(file=_problem_file(exc), problems=exc.problems)]
    except OSError as exc:
        from loopkit.errors import Problem

        shown = _show(project_file)
        return [
            Result(
                file=shown,
                problems=[Problem(f"cannot read the file: {exc.strerror}", file=shown, code="io")],
            )
        ]
    return _validate_context(context, done, empty)


def _validate_context(
    context: ProjectContext, done: list[Result], empty: list[str]
) -> list[Result]:
    """Return the results of a project's loop files (but those in ``done``) and inline loops.

    A project file holding no loops at all is noted in ``empty``: it is valid.
    """
    seen = {r.file for r in done}
    files = context.loop_files()
    results = [_validate_file(path, context) for path in files if _show(path) not in seen]
    results += _validate_inline(context)
    if not files and not context.project.loops and context.file is not None:
        empty.append(_show(context.file))
    return results


def _problem_file(exc: Exception) -> str:
    problems = getattr(exc, "problems", None) or []
    return problems[0].file if problems and problems[0].file else "loopkit.yaml"


def _validate_inline(context: ProjectContext, keys: list[str] | None = None) -> list[Result]:
    """Check the loops written inline in the project file (the first release's form).

    ``keys``: only these loops of the ``loops:`` map (default: every one).
    """
    from loopkit import lrs

    if not context.project.loops:
        return []
    shown = _show(context.file) if context.file else "loopkit.yaml"
    results = []
    for key, loop in context.project.loops.items():
        if keys is not None and key not in keys:
            continue
        problems = context.inline_problems(key, _skill_names(context))
        result = Result(file=shown, name=loop.name, source=context.file, prefix=("loops", key))
        for p in problems:
            result.problems.append(replace(p, file=shown))
        if not problems:
            result.report = _calibrated(lrs.score(loop, context.project), loop, context)
        results.append(result)
    return results


def _calibrated(report: Report | None, loop: Any, context: ProjectContext) -> Report | None:
    """Return ``report`` with the loop's last checker calibration, if any (``loopkit calibrate``)."""
    if report is None or loop is None or loop.verify is None:
        return report
    from loopkit import lrs
    from loopkit.calibrate import last_calibration

    return lrs.with_calibration(report, last_calibration(loop, context))


def _check_unique_names(results: list[Result]) -> None:
    from loopkit.errors import Problem

    first: dict[str, str] = {}
    for result in results:
        if result.name is None or not result.ok:
            continue
        if result.name in first:
            result.problems.append(
                Problem(
                    f"loop name '{result.name}' is already used by {first[result.name]}",
                    path="name",
                    file=result.file,
                    code="duplicate_loop",
                    hint="give every loop of a project its own name",
                )
            )
            result.report = None
        else:
            first[result.name] = result.file


def _guess_name(path: Path) -> str:
    return path.stem


def _show(path: Path) -> str:
    """Return ``path`` as the user would type it from here: relative, unless that climbs far."""
    absolute = path.resolve()
    try:
        relative = os.path.relpath(absolute, Path.cwd().resolve())
    except ValueError:  # another drive (Windows)
        return str(absolute)
    return relative if relative.count("..") <= 2 else str(absolute)


# ── Output ───────────────────────────────────────────────────────────────


_DASH = ["—"]


def _fit_encoding(stream: TextIO) -> None:
    """Print on a terminal that cannot show '—' (PYTHONIOENCODING=ascii) instead of crashing."""
    try:
        "—".encode(getattr(stream, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        _DASH[0] = "-"
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="replace")
    else:
        _DASH[0] = "—"


def _use_color(choice: str, stream: TextIO) -> bool:
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


class _Painter:
    CODES = {"green": "32", "yellow": "33", "red": "31", "bold": "1", "dim": "2"}

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, *styles: str) -> str:
        if not self.enabled or not styles:
            return text
        codes = ";".join(self.CODES[s] for s in styles)
        return f"\033[{codes}m{text}\033[0m"


_LEVEL_ORDER = {"ok": 0, "warn": 1, "block": 2}
_LEVEL_STYLE = {"ok": "green", "warn": "yellow", "block": "red"}
_GRADE_STYLE = {"A": "green", "B": "green", "C": "yellow", "D": "yellow", "F": "red"}


def _print_text(results: list[Result], out: TextIO, paint: _Painter) -> None:
    for index, result in enumerate(results):
        if index:
            out.write("\n")
        if result.report is not None:
            report = result.report
            grade = paint(f"{report.score}/100 (Grade {report.grade})", _GRADE_STYLE[report.grade])
            out.write(f"{paint(result.name or result.file, 'bold')} {_DASH[0]} LRS: {grade}\n")
            findings = sorted(report.findings, key=lambda f: _LEVEL_ORDER[f.level])
            for finding in findings:
                mark = paint(finding.mark, _LEVEL_STYLE[finding.level])
                out.write(f"  {mark} {finding.message}\n")
                if finding.level != "ok" and finding.hint:
                    out.write(f"       {paint(finding.hint, 'dim')}\n")
            continue
        title = result.name or result.file
        count = len(result.problems)
        label = paint(f"invalid ({count} error{'s' if count != 1 else ''})", "red")
        out.write(f"{paint(title, 'bold')} {_DASH[0]} {label}\n")
        for problem in result.problems:
            out.write(f"  {_problem_line(problem)}\n")
            if problem.hint:
                out.write(f"    {paint('hint: ' + problem.hint, 'dim')}\n")


def _problem_line(problem: Problem) -> str:
    where = f" ({problem.path})" if problem.path else ""
    return f"{problem.location}: {problem.message}{where}"


def _print_summary(
    results: list[Result],
    failed: list[Result],
    blocked: list[Result],
    below: list[Result],
    min_score: int | None,
    out: TextIO,
    paint: _Painter,
) -> None:
    if len(results) < 2 and not below:
        return
    parts = [f"{len(results)} loop{'s' if len(results) != 1 else ''}"]
    parts.append(f"{len(results) - len(failed)} valid")
    if failed:
        parts.append(paint(f"{len(failed)} invalid", "red"))
    if blocked:
        parts.append(paint(f"{len(blocked)} blocked", "red"))
    if below and min_score is not None:
        names = ", ".join(r.name or r.file for r in below)
        parts.append(paint(f"{len(below)} below --min-score {min_score} ({names})", "red"))
    out.write("\n" + ", ".join(parts) + "\n")

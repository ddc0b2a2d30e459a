"""``loopkit import FILE`` and ``loopkit export LOOP``: other tools' agent formats.

``import`` converts a Dify DSL workflow, a CrewAI project (a folder, or its
``config/tasks.yaml``), a GitHub agentic workflow or an Open Agent Spec flow
into a loop file, prints what did not map and the loop's LRS. ``export``
writes a loop as a GitHub agentic workflow and prints what was lost.

Exit status: 0 on success; 1 when the output cannot be written (or exists,
without ``--force``) or the loop to export is invalid; 2 for input that
cannot be read or converted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from loopkit.errors import Problem
    from loopkit.importers.base import Note

IMPORT_FORMATS = ("auto", "dify", "crewai", "gh-aw", "agentspec")
EXPORT_FORMATS = ("gh-aw",)


def add_import_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        metavar="FILE",
        help="a Dify DSL file, a CrewAI project folder or tasks file, a GitHub "
        "agentic workflow (.md) or an Open Agent Spec flow (JSON/YAML)",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        default=None,
        help="where to write the loop: a file, or a folder for <name>.yaml in it "
        "(default: loops/<name>.yaml; - for stdout)",
    )
    parser.add_argument(
        "--format",
        choices=IMPORT_FORMATS,
        default="auto",
        help="the input's format (default: detected)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite OUT if it exists")


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("loop", metavar="LOOP", help="a loop file or a loop name from loops/")
    parser.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        required=True,
        help="gh-aw: a GitHub agentic workflow (markdown with front matter)",
    )
    parser.add_argument(
        "-o", "--output", metavar="FILE", default=None, help="write to FILE (default: stdout)"
    )


def _problems(command: str, problems: list[Problem], out: TextIO) -> None:
    for problem in problems:
        where = f" ({problem.path})" if problem.path else ""
        out.write(f"loopkit {command}: {problem.location}: {problem.message}{where}\n")
        if problem.hint:
            out.write(f"    hint: {problem.hint}\n")


def _notes(title: str, notes: list[Note], out: TextIO) -> None:
    if not notes:
        out.write(f"{title}: nothing\n")
        return
    out.write(f"{title} ({len(notes)}):\n")
    for note in notes:
        out.write(f"  - {note}\n")


def handle_import(args: argparse.Namespace) -> int:
    from loopkit.errors import SpecError
    from loopkit.importers import convert_path
    from loopkit.project import find_project

    try:
        result = convert_path(Path(args.file), args.format)
    except SpecError as exc:
        _problems("import", exc.problems, sys.stderr)
        return 2
    report_to = sys.stderr if args.output == "-" else sys.stdout
    if args.output == "-":
        sys.stdout.write(result.yaml)
        target = "stdout"
    else:
        if args.output:
            path = Path(args.output)
            if path.is_dir():  # a folder: the loop goes in it, as loops/ would hold it
                path = path / f"{result.name}.yaml"
        else:
            try:
                path = find_project().loops_dir / f"{result.name}.yaml"
            except SpecError:
                path = Path("loops") / f"{result.name}.yaml"
        if path.exists() and not args.force:
            print(
                f"loopkit import: {path} already exists; use --force to overwrite it or "
                "-o to write elsewhere",
                file=sys.stderr,
            )
            return 1
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(result.yaml, encoding="utf-8")
        except OSError as exc:
            print(f"loopkit import: cannot write {path}: {exc.strerror}", file=sys.stderr)
            return 1
        target = str(path)
    report_to.write(
        f"Imported {args.file} ({result.format}) as the loop '{result.name}' → {target}\n"
    )
    _notes("Not mapped", result.notes, report_to)
    report = result.analysis.report if result.analysis else None
    if report is not None:
        report_to.write(f"{result.name} — LRS: {report.score}/100 (Grade {report.grade})\n")
        for finding in report.findings:
            if finding.level != "ok":
                report_to.write(f"  {finding.mark} {finding.message}\n")
    return 0


def handle_export(args: argparse.Namespace) -> int:
    from loopkit.document import analyze
    from loopkit.errors import Problem, SpecError
    from loopkit.importers import gh_aw_export
    from loopkit.project import find_project

    try:
        context = find_project()
        path = context.resolve_loop(args.loop)
        text = path.read_bytes()
    except SpecError as exc:
        _problems("export", exc.problems, sys.stderr)
        return 2
    except OSError as exc:
        _problems(
            "export", [Problem(f"cannot read the file: {exc.strerror}", file=args.loop)], sys.stderr
        )
        return 2
    analysis = analyze(text, file=str(path), project=context.project)
    loop = analysis.loop
    if loop is None or analysis.problems:
        _problems("export", analysis.problems, sys.stderr)
        return 1
    markdown, lost = gh_aw_export.export(loop)
    if args.output:
        try:
            Path(args.output).write_text(markdown, encoding="utf-8")
        except OSError as exc:
            print(f"loopkit export: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
            return 1
        print(
            f"Wrote {args.output} (GitHub agentic workflow; compile it with 'gh aw compile')",
            file=sys.stderr,
        )
    else:
        sys.stdout.write(markdown)
    _notes("Lost in the export", lost, sys.stderr)
    return 0

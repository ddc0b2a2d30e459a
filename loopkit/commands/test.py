"""``loopkit test [PATHS]``: replay loops against their cassettes and check the test files.

Exit codes: 0 every test passed; 1 a test failed; 2 a test file, cassette
or loop could not be read, or the command line is wrong.

With ``--format github`` (the default when ``GITHUB_ACTIONS=true``), each
failure is also printed as a GitHub workflow command
(``::error file=PATH,line=N,title=...::message``), which the Actions runner
shows as an annotation at that line.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from loopkit.annotations import in_github_actions

if TYPE_CHECKING:
    from loopkit.testfile import Failure
    from loopkit.testing import TestResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="test files (*.test.yaml) or folders searched for them "
        "(default: the project's tests/ folder)",
    )
    parser.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML")
    parser.add_argument(
        "--record-missing",
        action="store_true",
        help="call the real model (and connectors) for the requests the cassette does not "
        "hold, and write them into it",
    )
    parser.add_argument(
        "--format",
        choices=("text", "github"),
        default=None,
        help="github: also print GitHub annotations for failures "
        "(default when GITHUB_ACTIONS=true)",
    )


def handle(args: argparse.Namespace) -> int:
    from loopkit.testing import discover, replay

    paths = [Path(p) for p in args.paths]
    missing = [p for p in paths if not p.exists()]
    if missing:
        for path in missing:
            print(f"loopkit test: {path}: no such file or folder", file=sys.stderr)
        return 2
    if not paths:
        from loopkit.cassette import DEFAULT_DIR
        from loopkit.errors import SpecError
        from loopkit.project import find_project

        try:
            root = find_project().root
        except SpecError as exc:
            for problem in exc.problems:
                print(str(problem), file=sys.stderr)
            return 2
        paths = [root / DEFAULT_DIR]
    files = discover(p for p in paths if p.exists())
    if not files:
        shown = ", ".join(str(p) for p in paths)
        print(
            f"no test files (*.test.yaml) in {shown}; record one with 'loopkit run LOOP --record'"
        )
        return 0
    if args.record_missing:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    results = [replay(file, record_missing=args.record_missing) for file in files]
    report(results, sys.stdout)
    github = args.format == "github" or (args.format is None and in_github_actions())
    if github:
        annotate(results, sys.stdout)
    if args.junit:
        from loopkit.testing import shown_path

        write_junit(results, Path(args.junit))
        print(f"JUnit XML written to {shown_path(Path(args.junit))}")
    if any(r.broken for r in results):
        return 2
    return 1 if any(not r.passed for r in results) else 0


def _summary(result: TestResult) -> str:
    if result.broken:
        return "could not run"
    if any(f.kind == "miss" for f in result.failures):
        return f"stopped: not in the cassette, {result.replayed} call(s) replayed"
    parts = [result.status or "?"]
    if result.verification is not None:
        parts.append(f"verification {result.verification} in {result.rounds} round(s)")
    parts.append(f"{result.replayed} call(s) replayed")
    if result.recorded:
        parts.append(f"{result.recorded} recorded")
    return ", ".join(parts)


def report(results: list[TestResult], out: TextIO) -> None:
    """Print the pass/fail table, then each failure with its location (and diff)."""
    rows = [
        (
            "PASS" if r.passed else ("ERROR" if r.broken else "FAIL"),
            r.name,
            r.loop or "-",
            _summary(r),
            f"{r.duration_s:.2f}s",
        )
        for r in results
    ]
    head = ("RESULT", "TEST", "LOOP", "OUTCOME", "TIME")
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    for row in [head, *rows]:
        out.write("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() + "\n")
    for result in results:
        if result.passed:
            continue
        out.write(f"\n{result.name} ({result.file}):\n")
        for failure in result.failures:
            out.write(f"  {failure.location}: {failure.message}\n")
            if failure.diff:
                for line in failure.diff.splitlines():
                    out.write(f"    {line}\n")
        if any(f.kind == "miss" for f in result.failures):
            out.write(
                "  The loop asks for something the cassette does not hold: record it with "
                f"'loopkit test --record-missing {result.file}' (calls the model for just "
                "those requests) or record the whole run again with 'loopkit run LOOP --record'.\n"
            )
        if result.updated:
            out.write(f"  cassette updated: {result.cassette}\n")
    passed = sum(1 for r in results if r.passed)
    failed = len(results) - passed
    updated = [r.cassette for r in results if r.updated]
    out.write(f"\n{len(results)} test(s), {passed} passed, {failed} failed\n")
    for cassette in updated:
        out.write(f"cassette updated: {cassette}\n")


def annotation(result: TestResult, failure: Failure) -> str:
    """Return the GitHub workflow command that shows ``failure`` at its file and line."""
    from loopkit.annotations import Annotation

    message = failure.message + (f"\n{failure.diff}" if failure.diff else "")
    return str(
        Annotation(
            "error",
            message,
            file=failure.file or None,
            line=failure.line if failure.file else None,
            column=failure.column if failure.file else None,
            title=f"loopkit test: {result.name}",
        )
    )


def annotate(results: list[TestResult], out: TextIO) -> None:
    for result in results:
        for failure in result.failures:
            out.write(annotation(result, failure) + "\n")


def write_junit(results: list[TestResult], path: Path) -> None:
    """Write the results as JUnit XML (one ``testsuite`` named ``loopkit``)."""
    import xml.etree.ElementTree as ET

    failures = sum(1 for r in results if not r.passed and not r.broken)
    errors = sum(1 for r in results if r.broken)
    total = f"{sum(r.duration_s for r in results):.3f}"
    counts = {
        "tests": str(len(results)),
        "failures": str(failures),
        "errors": str(errors),
        "time": total,
    }
    root = ET.Element("testsuites", {"name": "loopkit test", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": "loopkit", "skipped": "0", **counts})
    for result in results:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "name": result.name,
                "classname": f"loopkit.{result.loop or result.name}",
                "file": result.file,
                "time": f"{result.duration_s:.3f}",
            },
        )
        if result.passed:
            continue
        text = "\n".join(
            f"{f.location}: {f.message}" + (f"\n{f.diff}" if f.diff else "")
            for f in result.failures
        )
        first = result.failures[0]
        ET.SubElement(
            case,
            "error" if result.broken else "failure",
            {"message": first.message, "type": first.kind},
        ).text = text
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)

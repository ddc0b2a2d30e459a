"""``loopkit validate`` in a GitHub Actions job: annotations and the job summary.

Each error becomes an ``::error`` at its file:line:column. Each LRS finding
points at the field it is about (``Finding.path``), looked up in the loop's
YAML; a field the file does not have (often what the finding is about) points
at its nearest present parent, else at line 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from loopkit.annotations import Annotation, Level

if TYPE_CHECKING:
    from loopkit.commands.validate import Result
    from loopkit.errors import Problem
    from loopkit.lrs import Finding
    from loopkit.yamlio import Document


def collect(results: list[Result], below: list[Result], min_score: int | None) -> list[Annotation]:
    """Return the annotations of a validation, in the report's order."""
    out: list[Annotation] = []
    for result in results:
        where = _Locator(result)
        name = result.name or result.file
        for problem in result.problems:
            out.append(_problem_annotation(problem, result, where, name))
        report = result.report
        if report is None:
            continue
        is_below = result in below
        if is_below and min_score is not None:
            line, column = where.at("name", key=True)
            out.append(
                Annotation(
                    "error",
                    f"{name} scores {report.score}/100 (grade {report.grade}), below "
                    f"--min-score {min_score}: fix the findings marked [!] or [x] to raise it",
                    file=result.file,
                    line=line,
                    column=column,
                    title=f"LoopKit LRS: {name} below --min-score {min_score}",
                )
            )
        for finding in report.findings:
            level: Level | None = None
            if finding.level == "block":
                level = "error"
            elif finding.level == "warn" and (min_score is None or is_below):
                level = "warning"
            if level is not None:
                out.append(_finding_annotation(finding, level, result, where, name))
    return out


def print_annotations(
    results: list[Result], below: list[Result], min_score: int | None, out: TextIO
) -> None:
    """Print the workflow commands of a validation, one a line."""
    for annotation in collect(results, below, min_score):
        out.write(f"{annotation}\n")


def _problem_annotation(problem: Problem, result: Result, where: _Locator, name: str) -> Annotation:
    line, column = problem.line, problem.column
    if line is None and problem.path:
        line, column = where.at(problem.path)
    message = problem.message + (f" ({problem.path})" if problem.path else "")
    if problem.hint:
        message += f"\nhint: {problem.hint}"
    return Annotation(
        "error",
        message,
        file=problem.file or result.file,
        line=line,
        column=column,
        title=f"LoopKit: {name} is invalid",
    )


def _finding_annotation(
    finding: Finding, level: Level, result: Result, where: _Locator, name: str
) -> Annotation:
    from loopkit.lrs import DIMENSIONS

    line, column = where.at(finding.path, key=True)
    message = f"{finding.mark} {finding.message}" + (f" ({finding.path})" if finding.path else "")
    if finding.hint:
        message += f"\nhint: {finding.hint}"
    dimension = DIMENSIONS.get(finding.dimension, (finding.dimension, 0))[0]
    return Annotation(
        level,
        message,
        file=result.file,
        line=line,
        column=column,
        title=f"LoopKit LRS ({name}): {dimension}",
    )


class _Locator:
    """Find a field path's line:column in a result's file (read once, on first use)."""

    def __init__(self, result: Result) -> None:
        self.result = result
        self._doc: Document | None = None
        self._read = False

    def at(self, path: str, *, key: bool = False) -> tuple[int | None, int | None]:
        """Return the line:column of ``path`` (of its key with ``key``), else of a parent."""
        from loopkit.yamlio import parse_path

        doc = self._document()
        if doc is None:
            return (None, None)
        position = doc.position((*self.result.prefix, *parse_path(path)), key=key)
        return position if position is not None else (1, 1)

    def _document(self) -> Document | None:
        if not self._read:
            self._read = True
            self._doc = _parse(self.result.source)
        return self._doc


def _parse(source: Path | None) -> Document | None:
    from loopkit.errors import SpecError
    from loopkit.yamlio import parse

    if source is None:
        return None
    try:
        return parse(source.read_bytes(), str(source))
    except (OSError, SpecError):
        return None


# ── Job summary ──────────────────────────────────────────────────────────


def write_summary(
    file: Path, results: list[Result], below: list[Result], min_score: int | None
) -> None:
    """Append a Markdown table of the loops, their scores and verdicts to ``file``."""
    bar = f" (--min-score {min_score})" if min_score is not None else ""
    rows = [
        f"### LoopKit: loop readiness{bar}",
        "",
        "| Loop | File | LRS | Result |",
        "| --- | --- | --- | --- |",
    ]
    for result in results:
        report = result.report
        if report is None:
            count = len(result.problems)
            score = "—"
            verdict = f"❌ invalid ({count} error{'s' if count != 1 else ''})"
        else:
            score = f"{report.score}/100 ({report.grade})"
            if report.blocked:
                verdict = "❌ blocked"
            elif result in below:
                verdict = f"❌ below {min_score}"
            else:
                verdict = "✅ ok"
        name = _cell(result.name or result.file)
        rows.append(f"| {name} | `{_cell(result.file)}` | {score} | {verdict} |")
    with file.open("a", encoding="utf-8") as stream:
        stream.write("\n".join(rows) + "\n\n")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")

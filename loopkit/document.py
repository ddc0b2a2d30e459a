"""One loop document, analysed: parsed, validated, checked and scored in one call.

``analyze`` is the engine's whole operation on a loop document. The CLI's
``loopkit validate``, the builder's validate and save API and the web app's
run path all call it, so a document is read once and judged by the same rules
everywhere::

    analysis = analyze(path.read_bytes(), file="loops/pr-review.yaml", project=project)
    if analysis.ok:
        print(analysis.report.score)
    else:
        for problem in analysis.problems:
            print(problem)  # loops/pr-review.yaml:12:5: ... (pipeline[0].prompt)

A document whose schema passes but whose cross-references do not (an unknown
maker, a template that does not compile) still has its ``loop``, canonical
``data`` and ``yaml`` and its LRS ``report``: the editor keeps drawing it while
``ok`` is false. The canonical forms and the report are computed on first
use, so a caller that needs only the loop (a run) pays for nothing else.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from loopkit import emitter, lrs, spec, yamlio
from loopkit.checks import check_loop
from loopkit.errors import Problem, SpecError
from loopkit.migrate import migrate_loop

__all__ = ["Analysis", "analyze"]


@dataclass
class Analysis:
    """What ``analyze`` found in one loop document.

    ``loop`` is None when the document does not parse or fails the schema;
    ``problems`` then holds why. Every problem carries its field path, and
    ``file`` and ``line:column`` when the document was YAML text.
    """

    file: str | None
    loop: spec.Loop | None = None
    problems: list[Problem] = field(default_factory=list)
    project: spec.Project | None = None

    @property
    def ok(self) -> bool:
        """Return True when the loop loaded and has no problem at all."""
        return self.loop is not None and not self.problems

    @cached_property
    def data(self) -> dict[str, Any] | None:
        """Return the loop's canonical plain data (camelCase keys, defaults left out)."""
        if self.loop is None:
            return None
        data: dict[str, Any] = yamlio.to_data(self.loop)
        return data

    @cached_property
    def yaml(self) -> str | None:
        """Return the loop's canonical YAML (``yamlio.dump``, from the data in hand)."""
        return emitter.dump(self.data) if self.data is not None else None

    @cached_property
    def report(self) -> lrs.Report | None:
        """Return the loop's Loop Readiness Score (scored with the project's defaults)."""
        if self.loop is None:
            return None
        return lrs.score(self.loop, self.project)

    def require(self) -> spec.Loop:
        """Return the loop, or raise ``SpecError`` with every problem when it is not ``ok``."""
        if self.loop is None or self.problems:
            raise SpecError(self.problems)
        return self.loop


def analyze(
    source: str | bytes | Any,
    *,
    file: str | None = None,
    project: spec.Project | None = None,
    skills: Collection[str] | None = None,
    base: Path | None = None,
) -> Analysis:
    """Parse, migrate, validate and cross-check one loop document.

    ``source`` is YAML text (``str`` or ``bytes``) or data already parsed (a
    mapping, as the editor sends JSON). ``project`` lends its subagents,
    connectors and defaults; ``skills`` are the names of the skills found for
    the project (see ``loopkit.checks.check_loop``). ``base`` is the folder of
    the loop's file, where the schema files of ``verify.checks`` are read.
    """
    analysis = Analysis(file=file, project=project)
    doc: yamlio.Document | None = None
    try:
        if isinstance(source, str | bytes):
            doc = yamlio.parse(source, file)
            data = doc.data
        else:
            data = source
        analysis.loop = yamlio.validate_data(spec.Loop, data, doc, migrate_loop)
    except SpecError as exc:
        analysis.problems = exc.problems
        return analysis
    problems = check_loop(analysis.loop, project, skills, base=base)
    if problems:
        analysis.problems = yamlio.position_problems(problems, doc)
    return analysis

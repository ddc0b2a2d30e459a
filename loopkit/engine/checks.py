"""Deterministic checks (``verify.checks``): run before the checker each round, no model call.

A check is one of:

- ``schema``: a step's output must be JSON that matches a JSON Schema (written
  inline, or read from a file next to the loop when it was loaded, see
  ``loopkit.checks``); validated with ``loopkit.structured`` like a step's
  structured output;
- ``regex``: a step's output must match a regular expression (searched
  anywhere), or must not with ``mustNotMatch``; the search is bounded by
  ``REGEX_TIMEOUT`` seconds (the ``regex`` module's timeout: a pattern that
  backtracks without end fails its check instead of holding the run);
- ``tool``: a connector's tool (``<connector>.<tool>``) is called through the
  run's ``ToolProvider`` with ``arguments`` (text values rendered in the same
  Jinja2 sandbox as prompts) and must answer without an error and, with
  ``expect``, satisfy that condition over ``result`` (the answer parsed as
  JSON, else its text) and the run context. The call is a ``tool_called``
  event keyed ``verify.checks[i]``.

Each check that fails is a ``CheckFailure`` with its severity (default
blocker). ``verify_round`` runs the checks first: a blocker or major failure
fails the round without asking the checker; minor ones are added to the
round's issues. A step that has not run (a branch not taken) is not checked
(the check is skipped).

A dry run calls no tool: a tool check is reported as skipped. Schema and
regex checks are run on the dry run's placeholder outputs and reported, but
their failures are not enforced (the placeholders are not the makers' work),
so a dry run still shows the rounds that ``dryRun.checkerScores`` describe.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import regex
from jinja2 import TemplateError

from loopkit import secrets, spec, structured
from loopkit.connectors.base import tool_name
from loopkit.engine.agent import run_tool
from loopkit.engine.arguments import render_value
from loopkit.engine.events import ToolCalled
from loopkit.errors import RunError
from loopkit.templating import compile_condition
from loopkit.tools import Tool, summary

if TYPE_CHECKING:
    from loopkit.engine.runner import Run

#: Seconds a regular expression may search one output.
REGEX_TIMEOUT = 1.0
#: Failures of these severities fail the round without asking the checker.
BLOCKING = frozenset({"blocker", "major"})
#: How much of a tool's answer or a matched text a failure message quotes.
QUOTE_CHARS = 200


@dataclass
class CheckFailure:
    """A check that failed: an issue of the round, like the checker's."""

    name: str
    message: str
    severity: str = "blocker"
    location: str | None = None

    def as_issue(self) -> str:
        """Return the failure as the text of one of the round's issues."""
        return f"check '{self.name}': {self.message}"


@dataclass
class CheckOutcome:
    """What one check did this round (an entry of ``verification_round.checks``)."""

    name: str
    kind: str
    #: None: not run (``skipped``).
    passed: bool | None
    severity: str
    message: str | None = None
    duration_ms: float = 0.0
    skipped: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "passed": self.passed,
            "message": self.message,
            "severity": self.severity,
            "duration_ms": round(self.duration_ms, 3),
            "skipped": self.skipped,
        }


@dataclass
class CheckResult:
    """The checks of one round: what each did, and the failures that count."""

    outcomes: list[CheckOutcome] = field(default_factory=list)
    failures: list[CheckFailure] = field(default_factory=list)
    duration_ms: float = 0.0

    def blocks(self, block_on: Collection[str] = BLOCKING) -> bool:
        """Whether a failure's severity fails the round before the checker is asked."""
        return any(f.severity in block_on for f in self.failures)

    @property
    def blocking(self) -> bool:
        return self.blocks()

    @property
    def issues(self) -> list[str]:
        return [f.as_issue() for f in self.failures]

    @property
    def reason(self) -> str:
        names = ", ".join(f"'{f.name}'" for f in self.failures if f.severity in BLOCKING)
        return f"deterministic checks failed ({names}): the checker was not asked"

    def as_events(self) -> list[dict[str, Any]]:
        return [o.as_dict() for o in self.outcomes]


async def run_checks(run: Run, verify: spec.Verify, round_: int) -> CheckResult:
    """Run ``verify.checks`` in order (every one of them) and return what they found."""
    result = CheckResult()
    started = time.perf_counter()
    for index, check in enumerate(verify.checks):
        run.cancel.raise_if_cancelled()
        name = spec.check_name(check)
        severity = check.effective_severity
        begun = time.perf_counter()
        kind = _kind(check)
        found = await _run_one(run, check, index)
        passed: bool | None = True
        detail: str | None = None
        skipped, location = False, None
        if found is not None:
            detail, skipped, location = found.detail, found.skipped, found.location
            passed = None if skipped else False
        enforced = not skipped and passed is False and not (run.llm.dry_run and kind != "tool")
        message = detail
        if passed is False:
            message = f"{check.message}: {detail}" if check.message else detail
            if not enforced:
                message = f"{message} (dry run: the output is a placeholder; not enforced)"
        outcome = CheckOutcome(
            name=name,
            kind=kind,
            passed=passed,
            severity=severity,
            message=message,
            duration_ms=(time.perf_counter() - begun) * 1000,
            skipped=skipped,
        )
        result.outcomes.append(outcome)
        if enforced:
            result.failures.append(CheckFailure(name, message or "", severity, location))
    result.duration_ms = (time.perf_counter() - started) * 1000
    return result


@dataclass
class _Found:
    """Why a check did not pass: it failed, or (``skipped``) it was not run."""

    detail: str
    skipped: bool = False
    location: str | None = None


def _kind(check: Any) -> str:
    if isinstance(check, spec.SchemaCheck):
        return "schema"
    if isinstance(check, spec.RegexCheck):
        return "regex"
    return "tool"


async def _run_one(run: Run, check: Any, index: int) -> _Found | None:
    if isinstance(check, spec.ToolCheck):
        return await _tool(run, check, index)
    output = run.ctx.output_of(check.step)
    if output is None:
        return _Found(f"step '{check.step}' has not run: nothing to check", skipped=True)
    if isinstance(check, spec.SchemaCheck):
        return _schema(check, output)
    return await _regex(check, output)


def _schema(check: spec.SchemaCheck, output: str) -> _Found | None:
    schema = check.resolved_schema
    if schema is None:
        return _Found(
            f"the schema file '{check.schema_file}' was not read (the loop was not loaded "
            "from its file): write the schema inline",
            location=check.step,
        )
    try:
        _, problem = structured.check(output, schema)
    except structured.BadSchema as exc:
        return _Found(f"the schema is not a valid JSON Schema: {exc}", location=check.step)
    if problem is None:
        return None
    return _Found(
        f"the output of '{check.step}' does not match the schema: {problem}", location=check.step
    )


@lru_cache(maxsize=256)
def _pattern(source: str) -> regex.Pattern:
    return regex.compile(source)


async def _regex(check: spec.RegexCheck, output: str) -> _Found | None:
    pattern = _pattern(check.regex)
    try:
        # In a thread, so that the run's event loop goes on while a long output is searched.
        match = await asyncio.to_thread(
            pattern.search, output, concurrent=True, timeout=REGEX_TIMEOUT
        )
    except TimeoutError:
        return _Found(
            f"searching /{check.regex}/ in the output of '{check.step}' "
            f"({len(output):,} characters) took more than {REGEX_TIMEOUT:g} s",
            location=check.step,
        )
    if check.must_not_match:
        if match is None:
            return None
        line = output.count("\n", 0, match.start()) + 1
        return _Found(
            f"the output of '{check.step}' matches /{check.regex}/ at line {line}: "
            f"{_quote(match.group(0))}",
            location=f"{check.step}, line {line}",
        )
    if match is not None:
        return None
    return _Found(
        f"the output of '{check.step}' does not match /{check.regex}/", location=check.step
    )


async def _tool(run: Run, check: spec.ToolCheck, index: int) -> _Found | None:
    key = f"verify.checks[{index}]"
    if run.llm.dry_run:
        return _Found(f"dry run: {check.tool} was not called", skipped=True)
    if run.tool_provider is None:
        return _Found(
            f"this run has no connectors (no tool provider), so {check.tool} could not be called",
            location=check.tool,
        )
    wanted = tool_name(check.connector, check.tool_name)
    as_step = spec.AgentStep(
        prompt="check", label=key, connectors=[check.connector], tools=[check.tool, wanted]
    )
    try:
        tools = await run.tool_provider.tools_for(as_step, run.loop)
        arguments = render_value(run, check.arguments, key)
    except RunError as exc:
        return _Found(str(exc), location=check.tool)
    tool: Tool | None = next((t for t in tools if t.name == wanted), None)
    if tool is None:
        return _Found(
            f"connector '{check.connector}' has no tool '{check.tool_name}'", location=check.tool
        )
    started = time.perf_counter()
    answer = await run_tool(tool, tool.name, arguments)
    run.emit(
        ToolCalled(
            key=key,
            label=None,
            name=tool.name,
            arguments=secrets.redact(arguments),
            result=summary(answer),
            is_error=answer.is_error,
            duration_ms=(time.perf_counter() - started) * 1000,
        )
    )
    if answer.is_error:
        return _Found(f"{check.tool} failed: {_quote(answer.content)}", location=check.tool)
    if check.expect is None:
        return None
    try:
        value: Any = json.loads(answer.content)
    except ValueError:
        value = answer.content
    try:
        satisfied = compile_condition(check.expect)(**{**run.ctx.variables, "result": value})
    except (TemplateError, ArithmeticError, TypeError, ValueError, LookupError) as exc:
        message = getattr(exc, "message", None) or exc
        return _Found(
            f"'{check.expect}' could not be evaluated: {message} (result: {_quote(answer.content)})",
            location=check.tool,
        )
    if satisfied:
        return None
    return _Found(
        f"{check.tool} answered, but '{check.expect}' is false (result: {_quote(answer.content)})",
        location=check.tool,
    )


#: A text argument that is one ``{{ expression }}`` and nothing else.
def _quote(text: str) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= QUOTE_CHARS else flat[: QUOTE_CHARS - 1] + "…")

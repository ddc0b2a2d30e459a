"""Actions after verification (``onPass`` / ``onFail``) and the ``tool:`` step.

``run_actions`` runs once, after the rounds (``Run._rounds``): the loop's
``onPass`` steps when verification passed — or, for a loop without
``verify:``, when the pipeline succeeded —, its ``onFail`` steps when
verification ended any other way (``verification_failed``, a stalled loop,
a best round accepted without a pass: ``verify.onFail`` ``accept-best``, or
an ``escalate`` a person approved). They are ordinary steps under the
keys ``onPass[0]``, ``onFail[1].parallel[0]``, ... (one group ``onPass`` /
``onFail`` of kind ``sequential`` around them): their events, budget and
checkpoints (``r<round>:onPass[0]``) work as in the pipeline, so a resumed
run answers a delivered action from its checkpoint instead of delivering it
again. Their templates also read ``verification`` (passed, score, issues,
rounds, outcome, accepted). A failing action fails the run (status
``failed``, its error).

A ``tool:`` step calls one connector tool with arguments the loop writes
(each string a Jinja2 template; one that is a single ``{{ expression }}``
keeps the expression's type), with no model call: a result is delivered
exactly as written. An error result (an HTTP 4xx, a refused query) fails
the step. A dry run calls no tool: it reports the would-be call as a
``tool_called`` event with ``dry_run`` set, and the step's output is a
placeholder.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from loopkit import secrets, spec
from loopkit.engine.agent import redact_text, run_tool
from loopkit.engine.arguments import render_value
from loopkit.engine.context import StepResult
from loopkit.engine.events import StepFailed, StepFinished, StepStarted, ToolCalled
from loopkit.engine.payloads import Placeholder
from loopkit.engine.pipeline import Outcome, run_steps
from loopkit.engine.verify import Verdict
from loopkit.errors import BudgetExceeded, RunError
from loopkit.memory import Checkpoint
from loopkit.tools import Tool, summary

if TYPE_CHECKING:
    from loopkit.engine.runner import Run


def verification_passed(run: Run, status: str) -> bool:
    """Whether the rounds ended in a pass: the run succeeded and its last verdict
    passed (a loop without ``verify:`` passes when its pipeline succeeded)."""
    if status != "succeeded":
        return False
    return not run.verdicts or run.verdicts[-1].passed


async def run_actions(run: Run, status: str) -> str:
    """Run ``onPass`` or ``onFail`` once, after the rounds ended with ``status``; return it."""
    passed = verification_passed(run, status)
    key, steps = ("onPass", run.loop.on_pass) if passed else ("onFail", run.loop.on_fail)
    if not steps:
        return status
    how, accepted, verdict = _how_it_ended(run)
    run.ctx.set_verification(
        passed=passed,
        score=verdict.score if verdict else None,
        issues=list(verdict.issues) if verdict else [],
        rounds=run.rounds,
        outcome=how,
        accepted=accepted,
    )
    ended = f"verification {how}" if how else status
    round_ = run.ctx.round
    run.emit(StepStarted(key=key, label=key, kind="sequential", round=round_))
    started = time.perf_counter()
    try:
        outcome = await run_steps(run, steps, key, round_)
    except RunError as exc:
        if not isinstance(exc, BudgetExceeded):  # the run's error says which action failed
            if exc.step and not exc.message.startswith(f"{exc.step}:"):
                exc.message = f"{exc.step}: {exc.message}"
            exc.message += f" (in {key}" + ("" if passed else f", after {ended}") + ")"
        raise
    run.emit(
        StepFinished(
            key=key,
            label=key,
            kind="sequential",
            round=round_,
            tokens=outcome.tokens,
            cost=outcome.cost,
            duration_ms=(time.perf_counter() - started) * 1000,
            agents=outcome.agents,
        )
    )
    return status


def _how_it_ended(run: Run) -> tuple[str | None, str | None, Verdict | None]:
    """Return how verification ended — its outcome (``passed``, ``skipped``, ``stalled``,
    ``failed``; None without ``verify:``), what was accepted without a pass (``best``,
    ``approved``) — and the verdict of the round whose outputs the run ends with: the
    best round when no round passed (its outputs are the steps' then), else the last."""
    rounds = run.verification
    if rounds is None:
        return None, None, None
    verdict = run.verdicts[-1] if run.verdicts else None
    if rounds.outcome in ("stalled", "failed"):
        best = next((r for r in rounds.history if r.round == rounds.best_round), None)
        if best is not None:
            verdict = best.verdict
    return rounds.outcome, rounds.accepted, verdict


# ── The tool step ────────────────────────────────────────────────────────


async def run_tool_step(run: Run, step: spec.ToolStep, key: str, round_: int) -> Outcome:
    """Call the step's tool with its rendered arguments (no model call); record the result."""
    name = step.label or key
    if round_ > 1 and name not in run.makers and name in run.ctx.results:
        return Outcome()  # only makers run again in later rounds: the result stands
    if run.checkpoints:
        checkpoint = run.checkpoints.get(f"r{round_}:{key}")
        if checkpoint is not None:
            _resume(run, step, checkpoint, key, round_)
            return Outcome()
    run.cancel.raise_if_cancelled()
    arguments = render_arguments(run, step, key)
    run.emit(StepStarted(key=key, label=step.label, kind="tool", round=round_))
    started = time.perf_counter()
    if run.llm.dry_run:
        run.emit(
            ToolCalled(
                key=key,
                label=step.label,
                name=step.tool,
                arguments=secrets.redact(arguments),
                dry_run=True,
            )
        )
        result = _result(run, step, key, round_, "")
    else:
        tool = await _tool(run, step, key)
        outcome = await run_tool(tool, step.tool, arguments)
        ms = (time.perf_counter() - started) * 1000
        run.emit(
            ToolCalled(
                key=key,
                label=step.label,
                name=step.tool,
                arguments=secrets.redact(arguments),
                result=summary(outcome),
                is_error=outcome.is_error,
                duration_ms=ms,
            )
        )
        if outcome.is_error:
            error = f"{name}: the tool {step.tool} failed: {redact_text(outcome.content)}"
            run.emit(
                StepFailed(
                    key=key,
                    label=step.label,
                    kind="tool",
                    round=round_,
                    error=error,
                    code="tool_error",
                    duration_ms=ms,
                )
            )
            raise RunError(error, step=name, code="tool_error")
        result = _result(run, step, key, round_, redact_text(outcome.content))
    result.duration_ms = (time.perf_counter() - started) * 1000
    run.ctx.record(result)
    await run.save_checkpoint(
        Checkpoint(
            key=f"r{round_}:{key}",
            label=step.label,
            output=result.output,
            duration_ms=result.duration_ms,
            data={"tool": step.tool},
        )
    )
    run.emit(
        StepFinished(
            key=key,
            label=step.label,
            kind="tool",
            round=round_,
            duration_ms=result.duration_ms,
            output=result.output,
            structured=result.structured,
        )
    )
    return Outcome()


async def _tool(run: Run, step: spec.ToolStep, key: str) -> Tool:
    name = step.label or key
    provider = run.tool_provider
    if provider is None:
        raise RunError(
            f"{name}: this run has no connectors, so the tool {step.tool} cannot be called "
            "(run it with loopkit run or the web app, which start the loop's connectors)",
            step=name,
            code="connector_error",
        )
    tool = await provider.tool_for(step, run.loop)
    if tool is None:
        raise RunError(
            f"{name}: connector '{step.connector}' has no tool '{step.tool_name}'",
            step=name,
            code="unknown_tool",
        )
    return tool


def _result(run: Run, step: spec.ToolStep, key: str, round_: int, text: str) -> StepResult:
    """The step's result: a JSON object or array is read as its value (``steps[...].output.x``),
    other text as text; in a dry run, a placeholder that renders as ``<connector.tool result>``."""
    if run.llm.dry_run:
        value: Any = Placeholder(f"{step.tool} result")
        return StepResult(key, step.label, str(value), round=round_, value=value, structured=True)
    try:
        value = json.loads(text) if text[:1] in ("{", "[") else None
    except ValueError:
        value = None
    if isinstance(value, dict | list):
        return StepResult(key, step.label, text, round=round_, value=value, structured=True)
    return StepResult(key, step.label, text, round=round_)


def _resume(run: Run, step: spec.ToolStep, checkpoint: Checkpoint, key: str, round_: int) -> None:
    """Answer a tool step from its checkpoint: the call is not made again."""
    result = _result(run, step, key, round_, checkpoint.output)
    result.duration_ms, result.resumed = checkpoint.duration_ms, True
    run.ctx.record(result)
    run.emit(StepStarted(key=key, label=step.label, kind="tool", round=round_, resumed=True))
    run.emit(
        StepFinished(
            key=key,
            label=step.label,
            kind="tool",
            round=round_,
            duration_ms=checkpoint.duration_ms,
            output=checkpoint.output,
            resumed=True,
            structured=result.structured,
        )
    )


# ── Arguments ────────────────────────────────────────────────────────────


#: A string that is one ``{{ expression }}`` and nothing else (whitespace around it allowed).
def render_arguments(run: Run, step: spec.ToolStep, key: str) -> dict[str, Any]:
    """Render a tool step's arguments against the run context into plain JSON data."""
    value = render_value(run, step.arguments, f"{key}.arguments")
    return dict(value)

"""Run a pipeline: sequential steps in order, parallel groups concurrently,
conditionals by their ``when:`` expression, approval gates by asking the
run's approver. Agent steps are in ``loopkit.engine.agent``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from jinja2 import TemplateError

from loopkit import spec
from loopkit.engine.agent import (
    AgentCall,
    add_cost,
    complete_agent,
    prepare_agent,
    run_agent,
)
from loopkit.engine.approval import ApprovalDecision, ApprovalRequest
from loopkit.engine.context import StepResult
from loopkit.engine.events import (
    ApprovalRequested,
    ApprovalResolved,
    StepFinished,
    StepStarted,
    Tokens,
)
from loopkit.errors import ApprovalRejected, BudgetExceeded, Cancelled, RunError, Suspended
from loopkit.memory import Checkpoint
from loopkit.templating import compile_condition

if TYPE_CHECKING:
    from loopkit.engine.runner import Run

T = TypeVar("T")


class Outcome:
    """What a group of steps added up to (for the group's ``step_finished``)."""

    __slots__ = ("agents", "cost", "tokens")

    def __init__(
        self, tokens: Tokens | None = None, cost: float | None = 0.0, agents: int = 0
    ) -> None:
        self.tokens = tokens if tokens is not None else Tokens()
        self.cost = cost
        self.agents = agents

    def add(self, other: Outcome | StepResult) -> None:
        """Add a group's outcome, or one agent step's result."""
        self.tokens.add(other.tokens)
        self.cost = add_cost(self.cost, other.cost)
        self.agents += other.agents if isinstance(other, Outcome) else 1


def member_name(step: Any, key: str) -> str:
    return getattr(step, "label", None) or key


async def run_steps(run: Run, steps: Sequence[Any], path: str, round_: int) -> Outcome:
    """Run ``steps`` one after the other."""
    total = Outcome()
    for index, step in enumerate(steps):
        total.add(await run_step(run, step, f"{path}[{index}]", round_))
    return total


async def run_step(run: Run, step: Any, key: str, round_: int) -> Outcome | StepResult:
    """Run one step; an agent step answers with its result, any other with an ``Outcome``."""
    run.cancel.raise_if_cancelled()
    if isinstance(step, spec.AgentStep):
        return await run_agent(run, step, key, round_)
    if isinstance(step, spec.ParallelStep):
        return await run_parallel(run, step, key, round_)
    if isinstance(step, spec.SequentialStep):
        return await run_steps(run, step.sequential, f"{key}.sequential", round_)
    if isinstance(step, spec.ConditionalStep):
        return await run_conditional(run, step, key, round_)
    if isinstance(step, spec.ApprovalStep):
        await run_approval(run, step, key, round_)
        return Outcome()
    if isinstance(step, spec.PlanStep):
        from loopkit.engine.plan import run_plan

        return await run_plan(run, step, key, round_)
    if isinstance(step, spec.ToolStep):  # issue 18: a connector tool call, no model call
        from loopkit.engine.actions import run_tool_step

        return await run_tool_step(run, step, key, round_)
    raise TypeError(f"unknown step type {type(step).__name__}")


async def run_parallel(run: Run, step: spec.ParallelStep, key: str, round_: int) -> Outcome:
    """Run the members concurrently (at most ``maxConcurrency`` at a time).

    Every member is awaited even when one fails, so finished work is
    checkpointed; then the most significant failure is raised (cancellation,
    then budget, then the first other error, then a suspension).
    """
    members = [(f"{key}.parallel[{i}]", s) for i, s in enumerate(step.parallel)]
    run.emit(
        StepStarted(
            key=key,
            label=step.label,
            kind="parallel",
            round=round_,
            members=[member_name(s, k) for k, s in members],
        )
    )
    started = time.perf_counter()
    limit = step.max_concurrency or run.options.concurrency
    gate = asyncio.Semaphore(limit) if limit < len(members) else None

    results = await _run_members(run, members, round_, limit, gate)
    total = Outcome()
    errors: list[BaseException] = []
    for result in results:
        if isinstance(result, BaseException):
            errors.append(result)
        else:
            total.add(result)
    if errors:
        for kind in (Cancelled, asyncio.CancelledError, BudgetExceeded):
            for error in errors:
                if isinstance(error, kind):
                    raise error
        # A member that failed ends the run; one waiting for approval only parks it.
        raise next((e for e in errors if not isinstance(e, Suspended)), errors[0])
    run.emit(
        StepFinished(
            key=key,
            label=step.label,
            kind="parallel",
            round=round_,
            tokens=total.tokens,
            cost=total.cost,
            duration_ms=(time.perf_counter() - started) * 1000,
            agents=total.agents,
        )
    )
    return total


#: A wide group prepares this many agent members, then lets their calls start.
PREPARE_BATCH = 32


async def _run_members(
    run: Run,
    members: list[tuple[str, Any]],
    round_: int,
    limit: int,
    gate: asyncio.Semaphore | None,
) -> list[Outcome | StepResult | BaseException]:
    """Run a group's members concurrently; return each one's result or exception, in order.

    Each member runs in its own task. Under a token or cost budget a member
    whose output cap does not fit beside the calls in flight waits for them
    (``call_model``), so members never split the budget into fragments.
    Without a concurrency gate, agent members are
    prepared here (``prepare_agent``: prompt, messages, ``step_started``)
    ``PREPARE_BATCH`` at a time, and each batch's calls start before the next
    batch is prepared: preparing many members in one loop is cheaper than
    interleaving each with the event loop's work, and the calls (and so
    their answers) stay spread out as they would be otherwise.
    """
    event_loop = asyncio.get_running_loop()
    slots: list[Any] = []  # per member: its task, or its result or exception already
    tasks: list[asyncio.Task[Any]] = []
    calls: list[AgentCall] = []
    prepared = 0
    try:
        for index, (member_key, member) in enumerate(members):
            work: Coroutine[Any, Any, Outcome | StepResult]
            if gate is not None:
                work = _gated(gate, run_step(run, member, member_key, round_))
            elif isinstance(member, spec.AgentStep):
                try:
                    ready = prepare_agent(run, member, member_key, round_, open_call=True)
                except Exception as exc:
                    slots.append(exc)
                    continue
                if isinstance(ready, StepResult):
                    slots.append(ready)
                    continue
                work = complete_agent(run, ready)
                calls.append(ready)
                prepared += 1
            else:
                work = run_step(run, member, member_key, round_)
            task = event_loop.create_task(work)
            tasks.append(task)
            slots.append(task)
            if prepared == PREPARE_BATCH and index + 1 < len(members):
                prepared = 0
                await asyncio.sleep(0)  # this batch's calls start now
        run.deliver_announced()  # after the last batch's calls have started
        await asyncio.gather(*tasks, return_exceptions=True)
    except BaseException:
        run.deliver_announced()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for call in calls:  # cancelled before its task started: give its reservation back
            if call.opened is not None:
                run.budget.release(call.opened[0])
        raise
    return [_outcome(slot) if isinstance(slot, asyncio.Task) else slot for slot in slots]


def _outcome(task: asyncio.Task[Any]) -> Any:
    """A finished task's result or exception (as ``gather(..., return_exceptions=True)``)."""
    if task.cancelled():
        return asyncio.CancelledError()
    return task.exception() or task.result()


async def _gated(gate: asyncio.Semaphore, work: Coroutine[Any, Any, T]) -> T:
    async with gate:
        return await work


async def run_conditional(run: Run, step: spec.ConditionalStep, key: str, round_: int) -> Outcome:
    """Evaluate ``when`` in the sandbox and run ``then`` or ``else``."""
    run.emit(StepStarted(key=key, label=step.label, kind="conditional", round=round_))
    started = time.perf_counter()
    try:
        value = compile_condition(step.when)(**run.ctx.variables)
    except TemplateError as exc:
        raise RunError(
            f"{key}: the condition {step.when!r} failed: {exc.message or exc}",
            step=key,
            code="condition_error",
        ) from None
    if value:
        branch, outcome = "then", await run_steps(run, step.then, f"{key}.then", round_)
    elif step.else_:
        branch, outcome = "else", await run_steps(run, step.else_, f"{key}.else", round_)
    else:
        branch, outcome = "none", Outcome()
    run.emit(
        StepFinished(
            key=key,
            label=step.label,
            kind="conditional",
            round=round_,
            tokens=outcome.tokens,
            cost=outcome.cost,
            duration_ms=(time.perf_counter() - started) * 1000,
            agents=outcome.agents,
            branch=branch,
        )
    )
    return outcome


async def run_approval(run: Run, step: spec.ApprovalStep, key: str, round_: int) -> None:
    """Pause until the approver decides (or the gate times out); raise if rejected.

    The question is asked once: a checkpoint (``<key>:asked``) keeps when, so a
    run resumed after suspending here neither asks again nor restarts the clock
    of the gate's timeout. An approver that ``suspends`` raises ``Suspended``
    while nobody has decided: the run ends as suspended and is resumed later.
    """
    ck = f"r{round_}:{key}"
    checkpoint = run.checkpoints.get(ck)
    if checkpoint is not None and checkpoint.data.get("approved"):
        return
    timeout_s = float(step.timeout_minutes) * 60 if step.timeout_minutes is not None else None
    on_timeout = step.on_timeout or "reject"
    asked = run.checkpoints.get(f"{ck}:asked")
    if asked is None:
        question = _render_question(run, step.approve, key)
        asked_at = time.time()
        run.emit(StepStarted(key=key, label=step.label, kind="approval", round=round_))
        run.emit(
            ApprovalRequested(
                key=key,
                label=step.label,
                question=question,
                approvers=list(step.approvers),
                timeout_s=timeout_s,
                on_timeout=on_timeout,
            )
        )
        await run.save_checkpoint(
            Checkpoint(
                key=f"{ck}:asked",
                label=step.label,
                data={"asked_at": asked_at, "question": question},
            )
        )
    else:
        question = str(asked.data.get("question", step.approve))
        asked_at = float(asked.data.get("asked_at") or time.time())
    await run.set_status("waiting_for_approval")
    deadline = asked_at + timeout_s if timeout_s is not None else None
    request = ApprovalRequest(
        run_id=run.id,
        loop=run.loop.name,
        key=key,
        label=step.label,
        question=question,
        approvers=list(step.approvers),
        timeout_s=timeout_s,
        outputs={name: r.output for name, r in run.ctx.results.items()},
        asked_at=asked_at,
        deadline=deadline,
    )
    timed_out = False
    try:
        if deadline is None or run.approver.suspends:
            decision = await run.approver.decide(request)  # may raise Suspended
        else:
            async with asyncio.timeout(max(deadline - time.time(), 0.0)):
                decision = await run.approver.decide(request)
    except TimeoutError:
        timed_out = True
        decision = ApprovalDecision(
            approved=on_timeout == "approve",
            by=None,
            reason=f"no decision within {step.timeout_minutes:g} minute(s)",
        )
    timed_out = timed_out or decision.timed_out
    await run.set_status("running")
    run.emit(
        ApprovalResolved(
            key=key,
            label=step.label,
            approved=decision.approved,
            by=decision.by,
            reason=decision.reason,
            timed_out=timed_out,
        )
    )
    await run.save_checkpoint(
        Checkpoint(
            key=ck,
            label=step.label,
            data={"approved": decision.approved, "by": decision.by, "reason": decision.reason},
        )
    )
    run.emit(
        StepFinished(
            key=key,
            label=step.label,
            kind="approval",
            round=round_,
            duration_ms=(time.time() - asked_at) * 1000,
            branch="approved" if decision.approved else "rejected",
        )
    )
    if not decision.approved:
        raise ApprovalRejected(step.label or key, decision.reason or "rejected")


def _render_question(run: Run, source: str, key: str) -> str:
    with contextlib.suppress(Exception):
        from loopkit.engine.agent import render

        return render(run, source, key, "approval question")
    return source

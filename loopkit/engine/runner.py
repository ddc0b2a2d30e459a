"""Run a loop: the pipeline, then Maker/Checker rounds, with events, budget and checkpoints.

``run_loop`` is the entry point (``run_loop_sync`` for synchronous callers).
The run reads top to bottom in ``Run.execute`` and ``Run._rounds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from loopkit import secrets, spec
from loopkit.engine.agent import ToolProvider
from loopkit.engine.agent import redact_text as redact_text  # re-exported (it lived here)
from loopkit.engine.approval import Approver, StaticApprover
from loopkit.engine.budget import BudgetLimits, BudgetTracker
from loopkit.engine.cancellation import CancelToken
from loopkit.engine.context import RunContext, StepResult, resolve_inputs, trigger_context
from loopkit.engine.events import (
    BudgetWarning,
    Event,
    RunFinished,
    RunStarted,
    RunSuspended,
    StepFinished,
    StepStarted,
    Tokens,
    VerificationRound,
)
from loopkit.engine.pipeline import run_steps
from loopkit.engine.verify import Verdict, Verification
from loopkit.errors import (
    ApprovalRejected,
    BudgetExceeded,
    Cancelled,
    ConfigError,
    LoopKitError,
    ResumeRefused,
    RunError,
    Suspended,
)
from loopkit.llm import LLM, default_model
from loopkit.memory import Checkpoint, RunRecord, Store
from loopkit.template_context import first_run_memory


@dataclass
class RunOptions:
    """How to run (everything the loop file does not say).

    ``payload`` is the trigger's data (a webhook's JSON body), readable as
    ``trigger.payload``. ``concurrency`` caps a parallel group without ``maxConcurrency``;
    ``retries`` / ``timeout`` apply to steps that do not set their own;
    ``max_tool_iterations`` to steps (and checkers) without a ``maxToolRounds``
    of their own or their subagent's;
    ``retry_base_delay`` doubles per attempt up to ``retry_max_delay``
    (a provider's ``Retry-After`` wins, capped the same way).
    ``stream_output`` asks the model to stream agent steps' text, emitted as
    ``step_output`` events, when a sink wants them (``wants_deltas``) and the
    client streams (``LLM.streams``); otherwise calls are not streamed and
    cost nothing more.
    """

    inputs: dict[str, Any] = field(default_factory=dict)
    payload: Any = None
    run_id: str | None = None
    resume: bool = False
    project_model: str | None = None
    config_path: str | None = None
    concurrency: int = 32
    max_tool_iterations: int = 10
    retries: int = 2
    timeout: float | None = None
    retry_base_delay: float = 0.5
    retry_max_delay: float = 30.0
    start_seq: int = 0
    checkpoint: bool = True
    stream_output: bool = True
    #: Model calls an earlier attempt had in flight when its worker died (paid, usage
    #: unknown, made again now): counted as calls made (``maxModelCalls``) from the start.
    lost_calls: int = 0
    #: The model of checkers without one of their own, before ``LOOPKIT_CHECKER_MODEL``
    #: (a replay passes the one its recording used).
    checker_model: str | None = None
    #: Pinned outputs (the editor's test runs): an agent step whose label or path is a
    #: key here is not sent to the model; it answers with this text (``pin_step``).
    pinned: dict[str, str] = field(default_factory=dict)
    #: Write the loop's memory after a live run that succeeded (a test run does not).
    remember: bool = True


@dataclass
class RunResult:
    """The outcome of a run (the same figures as its ``run_finished`` event)."""

    id: str
    loop: str
    status: str
    outputs: dict[str, str]
    tokens: Tokens
    cost: float | None
    duration_ms: float
    rounds: int
    steps: int
    requests: int
    verdicts: list[Verdict]
    #: Passes of the loop begun (``maxIterations`` counts them); ``requests`` are model calls.
    iterations: int = 0
    error: str | None = None
    error_code: str | None = None
    limit: str | None = None
    #: A ``suspended`` run is resumed at this time (epoch seconds) if nothing happens first.
    resume_at: float | None = None
    #: How verification ended (``passed``, ``skipped``, ``stalled``, ``failed``; None
    #: without ``verify:`` or when the run stopped before a verdict), the round whose
    #: outputs the run returns, and ``best`` / ``approved`` when that round did not
    #: pass but was accepted (``verify.onFail`` accept-best, or an approved escalation).
    verification: str | None = None
    best_round: int | None = None
    accepted: str | None = None


class Run:
    """One run's shared state; pipeline, agent and verify code receive it."""

    def __init__(
        self,
        loop: spec.Loop,
        llm: LLM,
        *,
        sinks: Sequence[Any] = (),
        store: Store | None = None,
        approver: Approver | None = None,
        cancel: CancelToken | None = None,
        tool_provider: ToolProvider | None = None,
        options: RunOptions | None = None,
        project: spec.Project | None = None,
    ) -> None:
        self.loop = loop
        self.llm = llm
        self.sinks = list(sinks)
        #: Stream agent steps' text as ``step_output`` events (some sink wants them).
        self.stream_output = self.options_stream(options, self.sinks, llm)
        self.store = store
        self.approver: Approver = approver or StaticApprover(
            False, by="engine", reason="no approver configured"
        )
        self.cancel = cancel or CancelToken()
        self.tool_provider = tool_provider
        self.options = options or RunOptions()
        self.project = project
        self.id = self.options.run_id or new_run_id()
        self.seq = self.options.start_seq
        self.budget = BudgetTracker(BudgetLimits.from_spec(spec.effective_budget(loop, project)))
        if self.options.lost_calls:  # lost calls count as made; their tokens and cost are unknown
            self.budget.record(Tokens(), 0.0, calls=self.options.lost_calls)
        self.checkpoints: dict[str, Checkpoint] = {}
        self.makers: set[str] = set(loop.verify.maker) if loop.verify else set()
        self.prompts = {
            s.label: s.prompt
            for _, s in spec.iter_steps(loop.pipeline)
            if isinstance(s, spec.AgentStep) and s.label
        }
        self.subagents = {**(project.subagents if project else {}), **loop.subagents}
        self.agent_runs = 0
        self.requests = 0
        self.rounds = 0
        self.verdicts: list[Verdict] = []
        #: The Maker/Checker rounds (set when the rounds start; None without ``verify:``).
        self.verification: Verification | None = None
        self.record = RunRecord(id=self.id, loop=loop.name)
        self._models_cache: dict[tuple[str | None, bool], str] = {}
        #: ``step_started`` events waiting to be numbered and delivered (``announce_step``).
        self._announced: list[tuple[str, str | None, int, str | None, float, str | None]] = []
        self.ctx: RunContext

    @staticmethod
    def options_stream(options: RunOptions | None, sinks: list[Any], llm: LLM) -> bool:
        """Return whether agent steps stream: asked for, the client streams, a sink wants it."""
        if (options is not None and not options.stream_output) or not getattr(
            llm, "streams", False
        ):
            return False
        return any(getattr(sink, "wants_deltas", False) for sink in sinks)

    # ── Helpers the steps use ───────────────────────────────────────────

    def emit(self, event: Event) -> None:
        if self._announced:
            self._announce_now()
        self._deliver(event)

    def announce_step(
        self,
        key: str,
        label: str | None,
        round_: int,
        model: str | None,
        *,
        later: bool = False,
        prompt: str | None = None,
    ) -> None:
        """Emit an agent step's ``step_started`` once the tasks that are ready have run.

        The event is numbered and delivered after the step's model call has
        started (still before any later event: ``emit`` delivers announced steps
        first), so a wide parallel group's last call does not wait for the
        first members' events; ``at`` is the moment of the call. With ``later``
        the caller schedules the delivery itself (``deliver_announced``) once
        it has started every call it prepares.
        """
        if not self._announced and not later:
            asyncio.get_running_loop().call_soon(self._announce_now)
        self._announced.append((key, label, round_, model, time.time(), prompt))

    def deliver_announced(self) -> None:
        """Deliver the announced ``step_started`` events once the ready tasks have run."""
        if self._announced:
            asyncio.get_running_loop().call_soon(self._announce_now)

    def _announce_now(self) -> None:
        announced, self._announced = self._announced, []
        for key, label, round_, model, at, prompt in announced:
            self._deliver(
                StepStarted(
                    key=key,
                    label=label,
                    kind="agent",
                    round=round_,
                    model=model,
                    at=at,
                    prompt=prompt,
                )
            )

    def _deliver(self, event: Event) -> None:
        self.seq += 1
        event.seq = self.seq
        event.run_id = self.id
        # No sink (console, JSON lines, the web's rows) ever sees a resolved secret.
        # (step_started and budget_warning carry only the loop file's names and numbers.)
        if event.type not in _NO_FREE_TEXT and _may_hold_secrets(event):
            secrets.redact_event(event)
        for sink in self.sinks:
            try:
                sink.emit(event)
            except Exception as exc:  # a sink's failure is not the run's
                print(f"loopkit: sink {type(sink).__name__} failed: {exc}", file=sys.stderr)

    def flush_warnings(self) -> None:
        if not self.budget.has_warnings():
            return
        for w in self.budget.warnings():
            self.emit(
                BudgetWarning(
                    limit=w.limit, allowed=w.allowed, observed=w.observed, message=w.message
                )
            )

    def subagent(self, name: str | None) -> spec.SubAgent | None:
        return self.subagents.get(name) if name else None

    def model_for(self, model: str | None, checker: bool = False) -> str:
        """Return the model to call: the step's (or subagent's), else the loop's,
        the project's, ``LOOPKIT_MODEL`` (``LOOPKIT_CHECKER_MODEL`` first for a checker)."""
        cache_key = (model, checker)
        found = self._models_cache.get(cache_key)
        if found is not None:
            return found
        if checker and not model:
            model = self.options.checker_model or os.environ.get("LOOPKIT_CHECKER_MODEL") or None
        if self.llm.dry_run:
            found = (
                model
                or self.loop.model
                or self.options.project_model
                or os.environ.get("LOOPKIT_MODEL")
                or "dry-run"
            )
        else:
            found = default_model(model, self.loop.model, self.options.project_model)
        self._models_cache[cache_key] = found
        return found

    def previous_output(self, name: str) -> str | None:
        return self.ctx.output_of(name)

    async def _store(self, method: Any, *args: Any) -> Any:
        if self.store is None:
            return None
        if self.store.offload:
            return await asyncio.to_thread(method, *args)
        return method(*args)

    async def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        store = self.store
        if store is not None and self.options.checkpoint:
            checkpoint.seq = self.seq
            if store.offload:
                await asyncio.to_thread(store.save_checkpoint, self.id, checkpoint)
            else:
                store.save_checkpoint(self.id, checkpoint)
            self.checkpoints[checkpoint.key] = checkpoint

    async def set_status(self, status: str) -> None:
        self.record.status = status
        self.record.seq = self.seq
        if self.store is not None:
            await self._store(self.store.save_run, self.record)

    def resume_step(self, checkpoint: Checkpoint, key: str, kind: str, round_: int) -> StepResult:
        """Answer a step from its checkpoint: no model call, usage counted once."""
        tokens = Tokens.from_dict(checkpoint.tokens)
        result = StepResult(
            key=key,
            label=checkpoint.label,
            output=checkpoint.output,
            tokens=tokens,
            cost=checkpoint.cost,
            duration_ms=checkpoint.duration_ms,
            requests=checkpoint.requests,
            round=round_,
            resumed=True,
        )
        self.budget.record(tokens, checkpoint.cost, calls=checkpoint.requests)
        self.ctx.record(result)
        self.agent_runs += 1
        self.emit(
            StepStarted(key=key, label=checkpoint.label, kind="agent", round=round_, resumed=True)
        )
        self.emit(
            StepFinished(
                key=key,
                label=checkpoint.label,
                kind="agent",
                round=round_,
                tokens=tokens,
                cost=checkpoint.cost,
                duration_ms=checkpoint.duration_ms,
                output=checkpoint.output,
                agents=1,
                resumed=True,
            )
        )
        return result

    def pinned_output(self, key: str, label: str | None) -> str | None:
        """Return the output pinned for a step (by its label, else its path), if any."""
        pinned = self.options.pinned
        if not pinned:
            return None
        if label and label in pinned:
            return pinned[label]
        return pinned.get(key)

    def pin_step(
        self, key: str, label: str | None, output: str, round_: int, *, structured: bool = False
    ) -> StepResult:
        """Answer a step with its pinned output: no model call, no tokens, no cost.

        *structured*: the step has an output schema; a pin that parses as JSON is
        its value (templates see the fields), any other stays text.
        """
        result = StepResult(key=key, label=label, output=output, round=round_)
        if structured:
            with contextlib.suppress(ValueError):  # a pin that is not JSON stays text
                result.value, result.structured = json.loads(output), True
        self.ctx.record(result)
        self.agent_runs += 1
        self.emit(StepStarted(key=key, label=label, kind="agent", round=round_, pinned=True))
        self.emit(
            StepFinished(
                key=key,
                label=label,
                kind="agent",
                round=round_,
                output=output,
                agents=1,
                structured=result.structured,
                pinned=True,
            )
        )
        return result

    # ── The run ─────────────────────────────────────────────────────────

    async def _prepare(self) -> bool:
        """Load a resumed run's record and checkpoints; return whether this is a resume."""
        resumed = False
        if self.options.resume:
            previous = await self._store(self.store.get_run, self.id) if self.store else None
            if previous is None:
                raise ResumeRefused(f"there is no run '{self.id}' to resume (see 'loopkit status')")
            if previous.loop != self.loop.name:
                raise ResumeRefused(
                    f"run '{self.id}' belongs to loop '{previous.loop}', not '{self.loop.name}'"
                )
            if previous.status == "succeeded":
                raise ResumeRefused(
                    f"run '{self.id}' already succeeded; there is nothing to resume"
                )
            if previous.dry_run != self.llm.dry_run:
                # One record, one kind of run: a dry pass must never complete a live one.
                raise ResumeRefused(
                    f"run '{self.id}' was a live run; resume it without --dry-run"
                    if not previous.dry_run
                    else f"run '{self.id}' was a dry run; resume it with --dry-run"
                )
            self.record = previous
            self.seq = max(self.seq, previous.seq)
            self.budget.elapsed_before = previous.duration_ms / 1000.0
            self.checkpoints = (await self._store(self.store.checkpoints, self.id)) or {}  # type: ignore[union-attr]
            resumed = True
            # A killed run never saved its record again: its checkpoints know better.
            self.seq = max([self.seq, *(c.seq for c in self.checkpoints.values())])
            inputs = previous.inputs or self.options.inputs
            payload = previous.payload if previous.payload is not None else self.options.payload
        else:
            inputs, payload = self.options.inputs, self.options.payload
            self.record = RunRecord(
                id=self.id,
                loop=self.loop.name,
                started_at=time.time(),
                dry_run=self.llm.dry_run,
                config=self.options.config_path,
            )
        # The keys this loop writes exist (empty) before its first run wrote them.
        memory = first_run_memory(self.loop)
        if self.store is not None:
            memory.update(await self._store(self.store.get_memory, self.namespace) or {})
        trigger = trigger_context(self.loop, payload, dry_run=self.llm.dry_run)
        inputs = resolve_inputs(self.loop, inputs, dry_run=self.llm.dry_run)
        self.ctx = RunContext(self.loop, self.id, inputs, trigger, memory)
        self.record.inputs = self.ctx.inputs
        self.record.payload = payload
        self.record.status = "running"
        self.record.finished_at = None
        return resumed

    def _models(self) -> list[str]:
        models = [
            s.model
            for _, s in spec.iter_steps(self.loop.pipeline)
            if isinstance(s, spec.AgentStep) and s.model
        ]
        default = self.loop.model or self.options.project_model or os.environ.get("LOOPKIT_MODEL")
        return [*([default] if default else []), *models]

    @property
    def namespace(self) -> str:
        return (self.loop.memory.namespace if self.loop.memory else None) or self.loop.name

    async def execute(self) -> RunResult:
        # A placeholder until _prepare: without the loop's inputs, so required ones cannot fail here.
        self.ctx = RunContext(self.loop.model_copy(update={"inputs": {}}), self.id, {}, {}, {})
        status, error, code, limit = "succeeded", None, None, None
        started = time.perf_counter()
        resumed, failure = False, None
        try:
            resumed = await self._prepare()
        except (LoopKitError, RunError) as exc:
            failure = exc
        verify = self.loop.verify
        self.emit(
            RunStarted(
                loop=self.loop.name,
                config=self.options.config_path,
                dry_run=self.llm.dry_run,
                resumed=resumed,
                pipeline_steps=len(self.loop.pipeline),
                makers=list(verify.maker) if verify else [],
                checker=", ".join(verify.checkers) if verify else None,
                inputs=self.ctx.inputs,
                budget=self.budget.limits.as_dict(),
            )
        )
        if failure is not None:
            return await self._finish(
                "failed", str(failure), getattr(failure, "code", "error"), None, started
            )
        await self.set_status("running")
        await self.llm.warm_up(self._models())
        # Loading the client (LiteLLM's import) is not the run's time: start the clock now.
        self.budget.started = self.budget.clock()
        work = asyncio.ensure_future(self._guarded())
        event_loop = asyncio.get_running_loop()

        def _stop() -> None:
            event_loop.call_soon_threadsafe(work.cancel)

        unsubscribe = self.cancel.on_cancel(_stop)
        try:
            status = await work
        except asyncio.CancelledError:
            if not self.cancel.cancelled:
                # Our caller was cancelled: record it, then let the cancellation through.
                await self._finish(
                    "cancelled", "the run's task was cancelled", "cancelled", None, started
                )
                raise
            status, error, code = "cancelled", self.cancel.reason or "cancelled", "cancelled"
        except Cancelled as exc:
            status, error, code = "cancelled", str(exc), exc.code
        except ApprovalRejected as exc:
            status, error, code = "cancelled", str(exc), exc.code
        except Suspended as exc:
            return await self._suspend(exc)
        except BudgetExceeded as exc:
            status, error, code, limit = "budget_exceeded", exc.message, exc.code, exc.limit
        except (RunError, ConfigError) as exc:
            status, error, code = "failed", str(exc), getattr(exc, "code", "error")
        except Exception as exc:
            await self._finish(
                "failed", f"internal error: {exc!r}", "internal_error", None, started
            )
            raise
        finally:
            unsubscribe()
        return await self._finish(status, error, code, limit, started)

    async def _guarded(self) -> str:
        remaining = self.budget.remaining_seconds()
        if remaining is None:
            return await self._rounds_and_actions()
        if remaining <= 0:
            raise self.budget.exceeded_time()
        try:
            async with asyncio.timeout(remaining) as deadline:
                return await self._rounds_and_actions()
        except TimeoutError:
            if deadline.expired():
                raise self.budget.exceeded_time() from None
            raise

    async def _rounds_and_actions(self) -> str:
        """The rounds, then the actions after verification (``onPass`` / ``onFail``, issue 18)."""
        from loopkit.engine.actions import run_actions

        return await run_actions(self, await self._rounds())

    async def _rounds(self) -> str:
        verify = self.loop.verify
        rounds = self.verification = Verification(self, verify) if verify else None
        round_, feedback = 1, list[str]()
        while True:
            # One iteration: the pipeline and one verification round (a retry is the next).
            self.budget.begin_iteration(round_)
            self.ctx.set_round(round_, feedback)
            await run_steps(self, self.loop.pipeline, "pipeline", round_)
            if verify is None or rounds is None:
                return "succeeded"
            if not self._makers_have_output(verify):
                self._skip_verification(verify, round_)
                rounds.outcome = "skipped"
                return "succeeded"
            replayed = f"r{round_}:verify" in self.checkpoints
            verdict, tokens, cost, ms, stalled = await rounds.judge(round_)
            self.rounds = round_
            self.verdicts.append(verdict)
            max_rounds = verify.effective_max_rounds
            retry = (
                not verdict.passed
                and not stalled
                and verify.effective_auto_retry
                and round_ < max_rounds
            )
            will_retry = retry and self.budget.allows_iteration(round_ + 1)
            self.emit(
                VerificationRound(
                    round=round_,
                    max_rounds=max_rounds,
                    checker=", ".join(verify.checkers),
                    passed=verdict.passed,
                    score=verdict.score,
                    issues=verdict.issues,
                    reason=verdict.reason,
                    tokens=tokens,
                    cost=cost,
                    duration_ms=ms,
                    will_retry=will_retry,
                    resumed=replayed,
                    minor=verdict.minor,
                    findings=[i.as_dict() for i in verdict.findings],
                    stalled=stalled,
                    checks=verdict.checks,  # verify.checks (issue 18, h/checks)
                )
            )
            if verdict.passed:
                return "succeeded"
            if retry and not will_retry:
                raise self.budget.iteration_exceeded(round_ + 1)
            if not will_retry:
                # No round passed: the best one is kept, and verify.onFail decides.
                return await rounds.give_up(round_, stalled)
            feedback = verdict.feedback()
            round_ += 1

    def _makers_have_output(self, verify: spec.Verify) -> bool:
        """Whether the checker has anything to judge: a maker's output from this or an
        earlier round (always true when a maker names a group: it cannot be told).

        A round whose makers were all skipped after a failed round is judged again
        on their last outputs; only a run in which no maker ever ran skips the checker.
        """
        results = self.ctx.results
        return any(maker not in self.prompts or maker in results for maker in verify.maker)

    def _skip_verification(self, verify: spec.Verify, round_: int) -> None:
        """Record a round with nothing to verify: no checker call, no cost."""
        reason = "no maker ran this round (their steps' conditions were false): nothing to verify"
        self.rounds = round_
        self.verdicts.append(Verdict(True, None, [], reason))
        self.emit(
            VerificationRound(
                round=round_,
                max_rounds=verify.effective_max_rounds,
                checker=", ".join(verify.checkers),
                passed=True,
                score=None,
                reason=reason,
                skipped=True,
            )
        )

    async def _finish(
        self, status: str, error: str | None, code: str | None, limit: str | None, started: float
    ) -> RunResult:
        duration_ms = self.budget.elapsed * 1000.0
        cost = self.budget.cost if self.budget.cost_known else None
        if status == "verification_failed" and self.verdicts:
            last = self.verdicts[-1]
            error = "; ".join(last.issues) or last.reason
            code = "verification_failed"
            if self.verification is not None:  # stalled, or an escalation not approved
                error, code = self.verification.failure(error)
        checked = self.verification
        verification = checked.outcome if checked else None
        best_round = checked.best_round if checked else None
        accepted = checked.accepted if checked and status == "succeeded" else None
        if error:
            # A provider may quote a key back (a 401's "Bearer sk-..."): the result, the
            # stored record and the web's run row get the error masked, like every event.
            error = redact_text(error)
        rec = self.record
        rec.status = status
        rec.finished_at = time.time()
        rec.duration_ms = duration_ms
        rec.tokens = self.budget.tokens.as_dict()
        rec.cost = cost
        rec.requests = self.budget.calls
        rec.iterations = self.budget.iterations
        rec.steps = self.agent_runs
        rec.rounds = self.rounds
        rec.error = error
        rec.limit = limit
        outputs = {name: r.output for name, r in self.ctx.results.items()}
        if (
            self.store is not None
            and status == "succeeded"
            and not self.llm.dry_run
            and self.options.remember
        ):
            await self._remember(outputs)
        projection = None
        if self.llm.dry_run:
            from loopkit.engine.projection import project_cost

            projection = project_cost(self.llm)
        self.emit(
            RunFinished(
                loop=self.loop.name,
                status=status,  # type: ignore[arg-type]
                duration_ms=duration_ms,
                tokens=self.budget.tokens,
                cost=self.budget.cost,
                cost_known=self.budget.cost_known,
                steps=self.agent_runs,
                requests=self.budget.calls,
                iterations=self.budget.iterations,
                rounds=self.rounds,
                error=error,
                error_code=code,
                limit=limit,
                projection=projection,
                lost_calls=self.options.lost_calls,
                verification=verification,
                best_round=best_round,
                accepted=accepted,
            )
        )
        rec.seq = self.seq
        if self.store is not None and rec.started_at:  # not for a resume of no run
            await self._store(self.store.save_run, rec)
        if self.tool_provider is not None:
            await self.tool_provider.close()
        return RunResult(
            id=self.id,
            loop=self.loop.name,
            status=status,
            outputs=outputs,
            tokens=self.budget.tokens,
            cost=cost,
            duration_ms=duration_ms,
            rounds=self.rounds,
            steps=self.agent_runs,
            requests=self.budget.calls,
            verdicts=self.verdicts,
            iterations=self.budget.iterations,
            error=error,
            error_code=code,
            limit=limit,
            verification=verification,
            best_round=best_round,
            accepted=accepted,
        )

    async def _suspend(self, exc: Suspended) -> RunResult:
        """Park the run at a wait: no ``run_finished``; its record keeps the time and
        usage so far (a resume continues the time budget, not the waiting)."""
        rec = self.record
        rec.status = "waiting_for_approval"
        rec.duration_ms = self.budget.elapsed * 1000.0
        rec.tokens = self.budget.tokens.as_dict()
        rec.cost = self.budget.cost if self.budget.cost_known else None
        rec.requests = self.budget.calls
        rec.iterations = self.budget.iterations
        rec.steps = self.agent_runs
        rec.rounds = self.rounds
        self.emit(
            RunSuspended(
                loop=self.loop.name,
                key=exc.key,
                reason=exc.reason,
                resume_at=exc.resume_at,
                duration_ms=rec.duration_ms,
            )
        )
        rec.seq = self.seq
        if self.store is not None:
            await self._store(self.store.save_run, rec)
        if self.tool_provider is not None:
            await self.tool_provider.close()
        return RunResult(
            id=self.id,
            loop=self.loop.name,
            status="suspended",
            outputs={name: r.output for name, r in self.ctx.results.items()},
            tokens=self.budget.tokens,
            cost=rec.cost,
            duration_ms=rec.duration_ms,
            rounds=self.rounds,
            steps=self.agent_runs,
            requests=self.budget.calls,
            verdicts=self.verdicts,
            iterations=self.budget.iterations,
            error=exc.reason,
            error_code=exc.code,
            resume_at=exc.resume_at,
        )

    async def _remember(self, outputs: dict[str, str]) -> None:
        persistence = (self.loop.memory.persistence if self.loop.memory else None) or "summary"
        values: dict[str, Any] = dict(outputs) if persistence != "minimal" else {}
        values["last_run"] = {
            "id": self.id,
            "status": "succeeded",
            "finished_at": self.record.finished_at,
        }
        await self._store(self.store.update_memory, self.namespace, values)  # type: ignore[union-attr]


_NO_FREE_TEXT = frozenset({"step_started", "budget_warning"})


#: Event fields that hold only the loop file's names or the engine's own codes.
_STRUCTURAL = frozenset(
    {
        "type",
        "run_id",
        "key",
        "label",
        "kind",
        "model",
        "loop",
        "config",
        "checker",
        "code",
        "error_code",
        "limit",
        "on_timeout",
        "branch",
        "members",
        "at",
        "seq",
    }
)


def _may_hold_secrets(event: Event) -> bool:
    """Return False only when redaction provably has nothing to do (the hot path).

    That is: no secret value has been resolved in this process, and no free
    text field holds a URL (whose password redaction would mask) or data.
    """
    if getattr(secrets.REGISTRY, "_values", True):
        return True
    names = _TEXT_FIELDS.get(type(event))
    if names is None:
        names = _TEXT_FIELDS[type(event)] = _text_fields(event)
    for name in names:
        value = getattr(event, name)
        if isinstance(value, str):
            if "://" in value:
                return True
        elif isinstance(value, dict | list) and value:
            return True
    return False


_TEXT_FIELDS: dict[type, tuple[str, ...]] = {}

#: Declared field types that never hold text (numbers, flags, token counts, the engine's codes).
_NOT_TEXT = frozenset(
    {"int", "float", "bool", "int | None", "float | None", "bool | None", "Tokens", "StepKind"}
    | {"RunStatus"}
)


def _text_fields(event: Event) -> tuple[str, ...]:
    """Return the names of ``event``'s fields that may hold free text or data."""
    import dataclasses

    declared = {f.name: str(f.type) for f in dataclasses.fields(event)}
    return tuple(
        n for n in vars(event) if n not in _STRUCTURAL and declared.get(n) not in _NOT_TEXT
    )


def new_run_id() -> str:
    """Return a sortable, unique run id (``20261124-151342-1a2b3c``)."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


async def run_loop(
    loop: spec.Loop,
    llm: LLM,
    *,
    sinks: Sequence[Any] = (),
    store: Store | None = None,
    approver: Approver | None = None,
    cancel: CancelToken | None = None,
    tool_provider: ToolProvider | None = None,
    options: RunOptions | None = None,
    project: spec.Project | None = None,
) -> RunResult:
    """Run ``loop`` with ``llm``, sending every event to ``sinks``; return the result.

    The run never raises for what happens *in* the run (budget, provider,
    verification, cancellation, rejected approvals): those end it with a
    status. It raises only for the engine's own bugs (after recording the
    run as failed) and when its own task is cancelled from outside.
    """
    run = Run(
        loop,
        llm,
        sinks=sinks,
        store=store,
        approver=approver,
        cancel=cancel,
        tool_provider=tool_provider,
        options=options,
        project=project,
    )
    return await run.execute()


def run_loop_sync(loop: spec.Loop, llm: LLM, **kwargs: Any) -> RunResult:
    """Run ``loop`` from synchronous code (a worker thread, a script)."""
    return asyncio.run(run_loop(loop, llm, **kwargs))

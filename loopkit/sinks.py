"""Event sinks: where a run's events go.

``Sink`` is the contract: ``emit(event)`` is called synchronously, in the
run's event-loop thread, once per event, in ``seq`` order. It must be quick
and must not raise (a sink's failure is not the run's failure: the engine
logs and drops a raising sink's error). A sink doing slow or thread-bound
I/O (the Django ORM) wraps itself in ``BackgroundSink``, which hands events
to one worker thread in order. ``close()`` is called once when the run ends.
A sink whose ``wants_deltas`` is True asks for ``step_output`` events (the
agents' text while the model streams it); when no sink wants them the engine
does not stream at all.

Sinks here: ``ConsoleSink`` (the seed's transcript layout), ``JsonlSink``
(one JSON object per line, ``--json``), ``CallbackSink`` (a function per
event), ``ListSink`` (keeps events, for tests) and ``BackgroundSink``.
"""

from __future__ import annotations

import asyncio
import json
import queue
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

from loopkit.engine.events import (
    ApprovalRequested,
    ApprovalResolved,
    BudgetWarning,
    Event,
    OutputTruncated,
    PlanMade,
    RunFinished,
    RunStarted,
    RunSuspended,
    StepFailed,
    StepFinished,
    StepOutput,
    StepStarted,
    ToolCalled,
    VerificationRound,
)

BANNER = "=" * 60
RULE_WIDTH = 54


class Sink:
    """Receives a run's events (see the module docstring for the contract)."""

    #: True: the run streams agent steps' text to this sink as ``step_output`` events.
    wants_deltas: bool = False

    def emit(self, event: Event) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Flush and release; called once at the end of the run."""


class ListSink(Sink):
    """Keep every event in ``events`` (tests, the in-memory sink)."""

    def __init__(self, deltas: bool = False) -> None:
        self.events: list[Event] = []
        self.wants_deltas = deltas

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def of_type(self, type_: str) -> list[Any]:
        return [e for e in self.events if e.type == type_]


class CallbackSink(Sink):
    """Call ``callback(event)`` for every event (the web app stores them this way)."""

    def __init__(
        self,
        callback: Callable[[Event], None],
        on_close: Callable[[], None] | None = None,
        deltas: bool = False,
    ) -> None:
        self.callback = callback
        self.on_close = on_close
        self.wants_deltas = deltas

    def emit(self, event: Event) -> None:
        self.callback(event)

    def close(self) -> None:
        if self.on_close is not None:
            self.on_close()


class JsonlSink(Sink):
    """Write each event as one JSON line (``event.as_dict()``) and flush.

    Inside an event loop, events are written in batches, off the run's
    critical path: a batch is encoded, written and flushed once no event has
    come for ``QUIET`` seconds (the run is waiting for a model: the members of
    a wide parallel group have all started their calls, or the checker is
    thinking), or when the oldest pending event is ``MAX_DELAY`` seconds old,
    or at ``MAX_PENDING`` events. ``run_finished`` (the last event) and
    ``close()`` write what is pending at once; outside an event loop each
    event is written as it comes. The engine never changes an event it has
    emitted, so encoding it later writes the same line. It wants deltas: a
    live run's ``step_output`` events are written too.
    """

    wants_deltas = True

    QUIET = 0.002
    MAX_DELAY = 0.1
    MAX_PENDING = 4096

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self._encode = _line_encoder()
        self._pending: list[Event] = []
        self._timer: asyncio.TimerHandle | None = None
        self._first = 0.0  # when the oldest pending event came (loop time)
        self._last = 0.0  # when the newest one came

    def emit(self, event: Event) -> None:
        pending = self._pending
        pending.append(event)
        if event.type == "run_finished" or len(pending) >= self.MAX_PENDING:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop: write now
            self.flush()
            return
        now = self._last = loop.time()
        if self._timer is None:
            self._first = now
            self._timer = loop.call_at(now + self.QUIET, self._when_quiet, loop)

    def _when_quiet(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if not self._pending:
            return
        quiet_at = self._last + self.QUIET
        if quiet_at > loop.time() and quiet_at < self._first + self.MAX_DELAY:
            # Events are still coming (their tasks are busy starting calls): look again later.
            self._timer = loop.call_at(quiet_at, self._when_quiet, loop)
            return
        self.flush()

    def flush(self) -> None:
        """Write and flush the pending events (a sink's failure is reported, not raised)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        events, self._pending = self._pending, []
        encode = self._encode
        try:
            self.stream.write("".join([encode(e.as_dict()) + "\n" for e in events]))
            self.stream.flush()
        except Exception as exc:  # a sink's failure is not the run's
            print(f"loopkit: sink {type(self).__name__} failed: {exc}", file=sys.stderr)

    def close(self) -> None:
        self.flush()


def _line_encoder() -> Callable[[Any], str]:
    """Return ``json.JSONEncoder(default=str).encode``'s equivalent, built once.

    ``JSONEncoder.encode`` builds a C encoder and a circular-reference memo
    for every call; events are plain acyclic data, so one C encoder without
    the memo writes the same text for a fraction of the cost.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator (another Python implementation)
        return json.JSONEncoder(default=str).encode
    encoder = make(
        None, str, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True
    )

    def encode(data: Any) -> str:
        return "".join(encoder(data, 0))

    return encode


class BackgroundSink(Sink):
    """Deliver events to ``inner`` from one worker thread, in order; ``close`` drains."""

    _STOP = object()

    def __init__(self, inner: Sink) -> None:
        self.inner = inner
        self.wants_deltas = inner.wants_deltas
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="loopkit-sink", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            event = self._queue.get()
            if event is self._STOP:
                return
            try:
                self.inner.emit(event)
            except Exception as exc:  # a sink's failure is not the run's
                print(f"loopkit: sink {type(self.inner).__name__} failed: {exc}", file=sys.stderr)

    def emit(self, event: Event) -> None:
        self._queue.put(event)

    def close(self) -> None:
        self._queue.put(self._STOP)
        self._thread.join()
        self.inner.close()


def rule(title: str) -> str:
    head = f"── {title} "
    return head + "─" * max(RULE_WIDTH - len(head), 3)


def format_ms(ms: float) -> str:
    return f"{ms:.0f}ms" if ms < 10_000 else f"{ms / 1000:.1f}s"


def format_cost(cost: float | None) -> str:
    return "$?" if cost is None else f"${cost:.4f}"


def check_counts(checks: list[dict[str, Any]]) -> str:
    """Return ``2 passed, 1 failed, 1 skipped`` for a round's ``verify.checks`` outcomes."""
    passed = sum(1 for c in checks if c.get("passed") is True)
    failed = sum(1 for c in checks if c.get("passed") is False)
    skipped = len(checks) - passed - failed
    parts = [f"{passed} passed", f"{failed} failed"] + ([f"{skipped} skipped"] if skipped else [])
    return ", ".join(parts)


class ConsoleSink(Sink):
    """Print the run as the seed's transcript (``loopkit-runtime run``).

    With ``stream_text`` (``loopkit run --verbose``) it also prints the agents'
    text as the model streams it, each piece after a ``    <step> | `` prefix
    whenever another step's text comes in between.
    """

    def __init__(
        self, stream: IO[str] | None = None, verbose: bool = False, stream_text: bool = False
    ) -> None:
        self.stream = stream or sys.stdout
        self.verbose = verbose
        self.wants_deltas = stream_text
        self._streaming: tuple[str, int, int] | None = None  # key, round, call being printed
        self._parallel_depth = 0
        self._verify_header = False
        self._loop = ""
        self._dry_run = False

    def _print(self, line: str = "") -> None:
        if self._streaming is not None:  # end the streamed text's line first
            self._streaming = None
            self.stream.write("\n")
        self.stream.write(line + "\n")
        self.stream.flush()

    def _on_step_output(self, e: StepOutput) -> None:
        if not self.wants_deltas:
            return
        head = ""
        current = (e.key, e.round, e.call)
        if self._streaming != current:
            if self._streaming is not None:
                head = "\n"
            head += f"    {e.label or e.key} | "
            self._streaming = current
        prefix = f"\n    {e.label or e.key} | "
        self.stream.write(head + e.text.replace("\n", prefix))
        self.stream.flush()

    def emit(self, event: Event) -> None:
        handler = getattr(self, f"_on_{event.type}", None)
        if handler is not None:
            handler(event)

    def _on_run_started(self, e: RunStarted) -> None:
        self._loop = e.loop
        self._dry_run = e.dry_run
        self._print(BANNER)
        self._print(f"  Running Loop: {e.loop}" + (" (resumed)" if e.resumed else ""))
        self._print(BANNER)
        if e.config:
            self._print(f"Config: {e.config}")
        self._print(f"Pipeline: {e.pipeline_steps} step(s)")
        if e.makers:
            for line in verification_lines(e.makers, e.checker or ""):
                self._print(line)
        self._print()
        self._print(rule("Pipeline Execution"))

    def _on_step_started(self, e: StepStarted) -> None:
        if e.kind == "sequential" and e.key in ("onPass", "onFail"):
            self._print()
            self._print(rule(f"After Verification ({e.key})"))
        elif e.kind == "tool":
            self._print(f"  -> Tool: {e.label or e.key}...")
        elif e.kind == "parallel":
            if self._parallel_depth == 0:
                self._print(f"  Running {len(e.members)} agents in parallel...")
            self._parallel_depth += 1
        elif e.kind == "agent":
            self._print(f"  -> Agent: {e.label or e.key}...")
        elif e.kind == "approval":
            self._print(f"  -> Approval: {e.label or e.key}...")
        elif e.kind == "plan":
            self._print(f"  -> Planner: {e.label or e.key}...")

    def _completed(self, e: StepFinished) -> str:
        return (
            f"    + Completed ({format_ms(e.duration_ms)}, {e.tokens.up} up/{e.tokens.down} down "
            f"tokens, {format_cost(e.cost)})"
        )

    def _on_step_finished(self, e: StepFinished) -> None:
        if e.kind == "parallel":
            self._parallel_depth -= 1
            if self._parallel_depth == 0:
                self._print(self._completed(e))
        elif e.kind == "agent" and self._parallel_depth == 0:
            self._print(self._completed(e) + (" [resumed]" if e.resumed else ""))
        elif e.kind == "conditional":
            self._print(f"  -> Condition {e.label or e.key}: took '{e.branch}'")
        elif e.kind == "tool" and e.resumed:
            self._print("    + Done in an earlier attempt (not called again) [resumed]")

    def _on_step_failed(self, e: StepFailed) -> None:
        if e.kind == "parallel":
            self._parallel_depth = max(self._parallel_depth - 1, 0)
        retry = f" (retrying, attempt {e.attempt + 1})" if e.will_retry else ""
        self._print(f"    [x] {e.label or e.key}: {e.error}{retry}")

    def _on_tool_called(self, e: ToolCalled) -> None:
        if e.dry_run:
            self._print(f"    tool {e.name} [dry run: not called]")
            return
        mark = "[x]" if e.is_error else "[ok]"
        self._print(f"    tool {e.name} {mark} ({format_ms(e.duration_ms)})")

    def _on_output_truncated(self, e: OutputTruncated) -> None:
        cap = f"the output cap of {e.limit} tokens" if e.limit else "the model's own output limit"
        kept = " (allowed: the step keeps the cut answer)" if e.allowed else ""
        self._print(f"[!] {e.label or e.key}: the answer was cut at {cap}{kept}")

    def _on_plan_made(self, e: PlanMade) -> None:
        chosen = ", ".join(s["template"] for s in e.steps) or "no more steps"
        done = " (done)" if e.done else ""
        self._print(f"    plan {e.iteration}/{e.max_iterations}: {chosen}{done}")
        if e.limit_reached:
            self._print(f"    [!] {e.reason}")

    def _on_verification_round(self, e: VerificationRound) -> None:
        if not self._verify_header:
            self._verify_header = True
            self._print()
            self._print(rule("Maker/Checker Verification"))
        if e.skipped:
            self._print(f"  Round {e.round}: [-] SKIPPED ({e.reason})")
            return
        score = "?" if e.score is None else f"{e.score:.2f}"
        verdict = "[ok] PASS" if e.passed else "[x] FAIL"
        self._print(f"  Round {e.round}: {verdict} (score: {score})")
        if e.checks:  # verify.checks (issue 18): what ran before the checker
            self._print(f"    checks: {check_counts(e.checks)}")
        for issue in e.issues:  # a passing round's are outvoted (require: majority)
            self._print(f"    - {issue}" + (" (outvoted)" if e.passed else ""))
        for issue in e.minor:  # below blockOn: reported, not retried
            self._print(f"    ~ {issue} (minor)")
        if not e.passed:
            if e.reason:
                self._print(f"    reason: {e.reason}")
            if e.stalled:
                self._print(
                    "  [!] Stalled: the checker repeated issues of an earlier round; "
                    "no more rounds are spent"
                )
            if e.will_retry:
                self._print(
                    f"  Retrying the makers with the checker's feedback (round {e.round + 1})..."
                )

    def _on_budget_warning(self, e: BudgetWarning) -> None:
        self._print(f"  [!] Budget: {e.message}")

    def _on_approval_requested(self, e: ApprovalRequested) -> None:
        question = e.question.replace("\n", "\n      ")  # an escalation's lists its rounds
        self._print(f"    [?] Approval needed: {question}")

    def _on_approval_resolved(self, e: ApprovalResolved) -> None:
        verdict = "approved" if e.approved else "rejected"
        by = f" by {e.by}" if e.by else ""
        why = f" ({e.reason})" if e.reason else ""
        self._print(f"    [{'ok' if e.approved else 'x'}] Approval {verdict}{by}{why}")

    def _on_run_suspended(self, e: RunSuspended) -> None:
        self._print(f"  [..] Suspended: {e.reason} (the run resumes when it is decided)")

    def _on_run_finished(self, e: RunFinished) -> None:
        self._print()
        self._print(rule("Results"))
        name = e.loop
        if e.status == "succeeded" and e.accepted:
            how = "onFail: accept-best" if e.accepted == "best" else "approved by a person"
            self._print(
                f"[ok] Loop '{name}' completed with the best round, round {e.best_round} "
                f"({how}): no round passed verification"
            )
        elif e.status == "succeeded":
            self._print(f"[ok] Loop '{name}' completed successfully")
        elif e.status == "verification_failed" and e.error_code == "stalled":
            self._print(f"[x] Loop '{name}' stalled in verification after {e.rounds} round(s)")
        elif e.status == "verification_failed":
            self._print(f"[x] Loop '{name}' failed verification after {e.rounds} round(s)")
        elif e.status == "budget_exceeded":
            self._print(f"[x] Loop '{name}' stopped: budget exceeded ({e.error})")
        elif e.status == "cancelled":
            self._print(f"[x] Loop '{name}' cancelled ({e.error})")
        else:
            self._print(f"[x] Loop '{name}' failed: {e.error}")
        self._print(f"  Duration: {format_ms(e.duration_ms)}")
        self._print(f"  Steps: {e.steps}")
        if e.cost_known:
            cost = format_cost(e.cost)
        elif not e.cost:
            cost = "unknown (LiteLLM has no price for the model)"
        else:
            cost = f"{format_cost(e.cost)} + unknown (LiteLLM has no price for a model)"
        self._print(f"  Est. Cost: {cost}")
        if e.projection is not None:
            self._print(f"  Projected live cost: {projection_text(e.projection)}")
        if e.status != "succeeded" and e.error_code != "resume_refused":
            # A dry run is resumed dry, a live run live (the engine refuses a mix).
            dry = " --dry-run" if self._dry_run else ""
            self._print(
                f"  Run: {e.run_id} (continue with: loopkit run {name}{dry} --resume {e.run_id})"
            )


def verification_lines(makers: list[str], checker: str, width: int = len(BANNER)) -> list[str]:
    """Return the ``Verification: Maker=[...] | Checker=...`` line, wrapped as in the seed.

    A line longer than the banner breaks between makers, the continuation
    lines aligned under ``Maker=``, and ``| Checker=...`` goes on its own line.
    """
    head = "Verification: "
    line = f"{head}Maker={makers!r} | Checker={checker}"
    if len(line) <= width:
        return [line]
    indent = " " * len(head)
    items = [repr(m) for m in makers]
    lines = [f"{head}Maker=["]
    for index, item in enumerate(items):
        piece = item + ("]" if index == len(items) - 1 else ",")
        current = lines[-1]
        if current.endswith("[") or len(current) + 1 + len(piece) <= width:
            lines[-1] = current + ("" if current.endswith("[") else " ") + piece
        else:
            lines.append(indent + piece)
    lines.append(f"{indent}| Checker={checker}")
    return lines


def projection_text(p: dict[str, Any]) -> str:
    """Render a dry run's projection of the live cost."""
    if not p.get("models"):
        return "unknown (no model configured: set 'model:' or LOOPKIT_MODEL)"
    cost = p.get("cost")
    models = ", ".join(p["models"])
    head = "unknown" if cost is None else f"${cost:.4f}"
    detail = (
        f"{models}; {p['input_tokens']:,} input tokens counted, "
        f"~{p['output_tokens']:,} output tokens estimated"
    )
    if p.get("unknown_models"):
        detail += f"; no price for {', '.join(p['unknown_models'])}"
    return f"{head} ({detail})"

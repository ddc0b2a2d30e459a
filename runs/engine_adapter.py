"""The adapter between a Run row and ``loopkit.engine.run_loop``.

``run_with_engine`` runs one Run's loop as a coroutine on the run host's
event loop (``runs.host``). The engine's events go to a ``DatabaseSink`` that
only queues them for the host's one writer thread (``EventWriter``); the ORM
store and the approver run their database work in the event loop's default
executor, the host's few database threads. Nothing here touches the ORM in
the event loop's own thread.

A resumed run (after a suspension at an approval gate, or a crash) passes
``resume=True``: the engine reads its record and checkpoints from the
``OrmStore`` and answers finished steps from them.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import queue
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

from loopkit import spec, tracing
from loopkit.cassette import recorded_defaults, secret_names
from loopkit.engine.approval import Approver
from loopkit.engine.cancellation import CancelToken
from loopkit.engine.events import Event
from loopkit.engine.runner import RunOptions, RunResult, run_loop
from loopkit.errors import ConfigError
from loopkit.llm import LLM
from loopkit.providers import Providers
from loopkit.recording import Recorder, RecordingApprover, RecordingLLM, RecordingToolbox
from loopkit.sinks import Sink
from loopkit_web.db import give_back, is_refusal
from providers.services import team_providers
from runs.approvals import OrmApprover
from runs.inputs import parse_loop
from runs.models import Run, RunCassette, RunEvent
from runs.orm_store import OrmStore
from runs.recorder import record_engine_events

logger = logging.getLogger(__name__)

Write = Callable[[int, list[dict[str, Any]]], Any]


class EventWriter:
    """One thread that stores the events of every run of a process, in order.

    It takes every event waiting, groups them by run and writes each run's
    batch in one transaction (``record_engine_events``): a burst of events
    (a wide parallel group, hundreds of runs streaming) costs a few commits,
    not one per event, and one database connection for the whole process.
    """

    _STOP = object()
    BATCH = 500
    #: Attempts after a refusal (pool exhausted, too many clients): about a minute.
    RETRIES = 8

    def __init__(self, write: Write = record_engine_events) -> None:
        self.write = write
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="loopkit-events", daemon=True)
        self._thread.start()

    def put(self, run_id: int, event: dict[str, Any], owned: Callable[[], bool]) -> None:
        self._queue.put((run_id, event, owned))

    def flush(self) -> Future[None]:
        """Return a future done once every event queued before this call is stored."""
        done: Future[None] = Future()
        self._queue.put(done)
        return done

    def close(self) -> None:
        self._queue.put(self._STOP)
        self._thread.join(timeout=10)

    def _work(self) -> None:
        stopping = False
        while not stopping:
            items = [self._queue.get()]
            while len(items) < self.BATCH:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            batches: dict[int, list[dict[str, Any]]] = defaultdict(list)
            owners: dict[int, Callable[[], bool]] = {}
            flushes: list[Future[None]] = []
            for item in items:
                if item is self._STOP:
                    stopping = True
                elif isinstance(item, Future):
                    flushes.append(item)
                else:
                    run_id, event, owned = item
                    batches[run_id].append(event)
                    owners[run_id] = owned
            for events in batches.values():
                coalesce_deltas(events)
            try:
                for run_id, events in batches.items():
                    if owners[run_id]():  # a run taken over by another worker is theirs
                        self._store(run_id, events)
                if batches:
                    give_back()
            except Exception:  # the writer outlives any batch: a run must not wait forever
                logger.exception("the event writer failed on a batch")
            for done in flushes:
                done.set_result(None)
        connection.close()

    def _store(self, run_id: int, events: list[dict[str, Any]]) -> None:
        """Write one run's batch; a database that refuses for now is waited for."""
        for attempt in range(self.RETRIES + 1):
            try:
                self.write(run_id, events)
                return
            except Exception as exc:
                if attempt < self.RETRIES and is_refusal(exc):
                    give_back()
                    time.sleep(min(2.0**attempt, 10.0))
                    continue
                logger.exception("could not store %d events of run %s", len(events), run_id)
                return


def coalesce_deltas(events: list[dict[str, Any]]) -> None:
    """Join, in place, a batch's streamed pieces of one model call into one event.

    A writer that fell behind (hundreds of runs streaming) stores one
    ``step_output`` per call and batch instead of one per piece: the text is
    the pieces joined, ``chars`` the last piece's (the call's length so far).
    A piece joins the last one of its call unless another event of that step
    came between them, so every step's events keep their order.
    """
    open_calls: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
    kept: list[dict[str, Any]] = []
    for event in events:
        if event.get("type") != "step_output":
            key = event.get("key")
            for call in [c for c in open_calls if c[0] == key]:
                del open_calls[call]
            kept.append(event)
            continue
        call = (event.get("key"), event.get("round"), event.get("call"))
        joined = open_calls.get(call)
        if joined is None:
            open_calls[call] = dict(event)
            kept.append(open_calls[call])
            continue
        joined["text"] = str(joined.get("text", "")) + str(event.get("text", ""))
        joined["chars"] = event.get("chars", joined.get("chars"))
        joined["seq"] = event.get("seq", joined.get("seq"))
        joined["at"] = event.get("at", joined.get("at"))
    events[:] = kept


#: Events a resumed run replays from its checkpoints (``resumed=True``).
REPLAYED = ("step_started", "step_finished", "verification_round")
Replay = tuple[str, str | None, int | None]


def _replay_key(event: Event) -> Replay:
    return (event.type, getattr(event, "key", None), getattr(event, "round", None))


class DatabaseSink(Sink):
    """Hand one run's events to the process's ``EventWriter`` (never blocks the loop).

    A resumed run replays its finished steps: a replay of an event the run
    has stored already is dropped, so each step's events are stored once; a
    replay of one lost with a killed worker (stored as ``resumed``) fills the gap.
    """

    #: The run page shows the agents' text as it streams (``step_output`` events).
    wants_deltas = True

    def __init__(
        self,
        run_id: int,
        writer: EventWriter,
        owned: Callable[[], bool] = lambda: True,
        stored: frozenset[Replay] = frozenset(),
    ) -> None:
        self.run_id = run_id
        self.writer = writer
        self.owned = owned
        self.stored = stored

    def emit(self, event: Event) -> None:
        if getattr(event, "resumed", False) and _replay_key(event) in self.stored:
            return
        self.writer.put(self.run_id, event.as_dict(), self.owned)


def make_llm(run: Run, loop: spec.Loop, providers: Providers | None = None) -> LLM:
    """Return the dry-run provider (per the loop's ``dryRun`` options) or the live one,
    which sends ``team:NAME`` models to the team's *providers*."""
    if run.dry_run:
        from loopkit.llm import DryRunProvider

        options = loop.dry_run
        latency = (options.latency_ms if options else None) or int(
            getattr(settings, "LOOPKIT_DRY_RUN_LATENCY_MS", 0)
            or os.environ.get("LOOPKIT_DRY_RUN_LATENCY_MS", 0)
        )
        return DryRunProvider(
            checker_scores=[float(s) for s in options.checker_scores] if options else [],
            latency_ms=int(latency),
        )
    from loopkit.llm import LiteLLMProvider

    return LiteLLMProvider(providers=providers)


def traced(llm: LLM, sink: Sink) -> tuple[LLM, list[Sink]]:
    """Return a run's client and sinks, traced when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

    ``OTEL_*`` settings LoopKit cannot honour are logged and the run goes on
    untraced: a worker's telemetry is not worth a team's runs.
    """
    try:
        return tracing.instrument(llm, [sink])
    except ConfigError as exc:
        logger.error("runs are not traced: %s", exc)
        return llm, [sink]


class Prepared:
    """What a run needs from the database before it starts (read in a database thread)."""

    def __init__(self, run: Run, resume: bool) -> None:
        loop = parse_loop(run.loop_yaml, run.loop_name)
        if run.model:  # chosen for this run: in place of the loop's model, not a step's own
            loop = loop.model_copy(update={"model": run.model})
        self.loop = loop
        # The team's providers (keys decrypted, registered for redaction); a dry run needs none.
        self.providers = Providers() if run.dry_run else team_providers(run.team_id)
        self.store = OrmStore(run.team_id)
        self.resume = resume and self.store.get_run(str(run.pk)) is not None
        self.stored: frozenset[Replay] = frozenset()
        if self.resume:
            rows = RunEvent.objects.filter(run_id=run.pk, type__in=REPLAYED).values_list(
                "type", "payload__key", "payload__round"
            )
            self.stored = frozenset((t, k, r) for t, k, r in rows)


async def run_with_engine(
    run: Run,
    token: CancelToken,
    *,
    resume: bool,
    sink: Sink,
    prepared: Prepared,
) -> RunResult:
    """Run *run*'s loop to its end (or to a suspension); return the engine's result.

    *prepared* comes from ``Prepared(run, resume)`` (database work: call it in a
    database thread, not in the event loop).
    """
    loop = prepared.loop
    options = RunOptions(
        inputs=dict(run.inputs),
        # No payload (a manual run): a dry run reads a sample of its trigger's (the engine's).
        payload=run.trigger_payload or None,
        run_id=str(run.pk),
        resume=prepared.resume,
        start_seq=run.last_seq,
        lost_calls=run.lost_calls,  # paid by a dead worker: they count against maxModelCalls
        config_path=f"{run.loop_name} v{run.version_number}",
        # A loop that names no model uses the team's default provider.
        project_model=prepared.providers.default_model(),
        # A test run of a draft (runs.drafts): its pinned steps call no model, and it
        # leaves the loop's memory as the last real run wrote it.
        pinned=dict(run.pinned or {}),
        remember=not run.is_test,
    )
    # Connectors (MCP servers, HTTP APIs, SQL) and skills for live runs; a dry run calls no tool.
    tools = None
    if not run.dry_run:
        from loopkit.connectors.provider import ConnectorTools

        root = Path(getattr(settings, "LOOPKIT_PROJECT_ROOT", settings.BASE_DIR))
        tools = ConnectorTools(loop, root=root)
    llm, sinks = traced(make_llm(run, loop, prepared.providers), sink)
    approver: Approver = OrmApprover(run.pk, loop)
    recorder = None
    if records(run, prepared.resume):
        recorder = Recorder(loop)
        recorder.inputs, recorder.payload = dict(run.inputs), options.payload
        recorder.defaults = recorded_defaults(options.project_model)
        if reads_memory(run.loop_yaml):
            namespace = (loop.memory.namespace if loop.memory else None) or loop.name
            recorder.memory = await asyncio.get_running_loop().run_in_executor(
                None, lambda: prepared.store.get_memory(namespace)
            )
        llm = RecordingLLM(llm, recorder)
        approver = RecordingApprover(approver, recorder)
        if tools is not None:
            tools.toolbox = RecordingToolbox(tools.toolbox, recorder)
    result = await run_loop(
        loop,
        llm,
        sinks=sinks,
        store=prepared.store,
        approver=approver,
        cancel=token,
        options=options,
        tool_provider=tools,
    )
    if recorder is not None and result.status != "suspended":
        await asyncio.get_running_loop().run_in_executor(None, lambda: save_cassette(run, recorder))
    return result


def records(run: Run, resume: bool) -> bool:
    """Whether a run is recorded into a cassette: a live run of a saved version, run whole.

    A dry run answers from no model (its replay would not be the loop's); a test run
    of a draft has no version to test; a resumed run did its first part elsewhere.
    """
    return not (run.dry_run or run.is_test or resume or run.pinned)


def reads_memory(loop_yaml: str) -> bool:
    """Whether the loop's templates may read ``memory`` (its recording keeps it)."""
    return re.search(r"\bmemory\s*[.\[|]", loop_yaml) is not None


def save_cassette(run: Run, recorder: Recorder) -> None:
    """Store the run's cassette (secrets masked); a failure is logged, never the run's."""
    try:
        cassette = recorder.cassette(extra_secrets=secret_names([run.loop_yaml]))
        data = gzip.compress(cassette.dumps().encode("utf-8"))
        RunCassette.objects.update_or_create(
            run_id=run.pk, defaults={"data": data, "calls": len(cassette.calls)}
        )
    except Exception:
        logger.exception("could not store the cassette of run %s", run.pk)
    finally:
        give_back()

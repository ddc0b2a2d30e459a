"""The adapter between a Run row and ``loopkit.engine.run_loop``.

The worker thread runs the engine in its own event loop. Events go to a
``DatabaseSink`` whose one thread writes them with ``record_engine_events``
(the ORM must not run in the event loop's thread); the ORM store and the
approver are offloaded the same way. A resumed run passes its id and
``resume=True``: the engine reads its record and checkpoints from the
``OrmStore`` and answers finished steps from them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

from loopkit.engine.cancellation import CancelToken
from loopkit.engine.events import Event
from loopkit.engine.runner import RunOptions, run_loop
from loopkit.llm import LLM
from loopkit.providers import Providers
from loopkit.sinks import Sink
from providers.services import team_providers
from runs.approvals import OrmApprover
from runs.memory import OrmStore
from runs.models import Run
from runs.services import parse_loop

logger = logging.getLogger(__name__)


class DatabaseSink(Sink):
    """Store events from one thread of its own, in order, a batch per transaction.

    ``emit`` (the engine's event-loop thread) only queues; the thread takes
    every event waiting and writes them with one commit, so a burst of
    events (a wide parallel group) does not queue up behind one commit each.
    """

    _STOP = object()
    BATCH = 200
    #: The run page shows the agents' text as it streams (``step_output`` events).
    wants_deltas = True

    def __init__(
        self,
        run_id: int,
        write: Callable[[int, list[dict[str, Any]]], Any],
        owned: Callable[[], bool] = lambda: True,
    ) -> None:
        self.run_id = run_id
        self.write = write
        self.owned = owned
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._work, name=f"loopkit-sink-{run_id}", daemon=True
        )
        self._thread.start()

    def emit(self, event: Event) -> None:
        self._queue.put(event.as_dict())

    def _work(self) -> None:
        try:
            stopping = False
            while not stopping:
                batch = [self._queue.get()]
                while len(batch) < self.BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                if any(item is self._STOP for item in batch):
                    stopping = True
                    batch = [item for item in batch if item is not self._STOP]
                if batch and self.owned():  # a run taken over by another worker is theirs
                    try:
                        self.write(self.run_id, batch)
                    except Exception:
                        logger.exception("could not store events of run %s", self.run_id)
        finally:
            connection.close()  # this thread's connection: the thread ends with the run

    def close(self) -> None:
        self._queue.put(self._STOP)
        self._thread.join()


def _close_connection() -> None:
    """Close the calling thread's database connection (``connection`` resolves per thread)."""
    connection.close()


def make_llm(run: Run, loop: Any, providers: Providers | None = None) -> LLM:
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


def run_with_engine(
    run: Run,
    token: CancelToken,
    *,
    resume: bool,
    on_events: Callable[[int, list[dict[str, Any]]], Any],
    owned: Callable[[], bool] = lambda: True,
) -> dict[str, Any]:
    """Run *run* to its end; return ``{"status", "error"}`` from the engine's result.

    *owned* says whether this worker still holds the run; once it does not,
    the run's events are no longer written by this execution.
    """
    loop = parse_loop(run.loop_yaml, run.loop_name)
    if run.model:  # chosen for this run: in place of the loop's model, not a step's own
        loop = loop.model_copy(update={"model": run.model})
    # The team's providers (keys decrypted, registered for redaction); a dry run needs none.
    providers = Providers() if run.dry_run else team_providers(run.team_id)
    sink = DatabaseSink(run.pk, on_events, owned)
    store = OrmStore(run.team_id)
    options = RunOptions(
        inputs=dict(run.inputs),
        # No payload (a manual run): a dry run reads a sample of its trigger's (the engine's).
        payload=run.trigger_payload or None,
        run_id=str(run.pk),
        resume=resume and store.get_run(str(run.pk)) is not None,
        start_seq=run.last_seq,
        config_path=f"{run.loop_name} v{run.version_number}",
        # A loop that names no model uses the team's default provider.
        project_model=providers.default_model(),
        lost_calls=run.lost_calls,  # paid by a dead worker: they count against maxModelCalls
    )
    # Connectors (MCP servers, HTTP APIs, SQL) and skills for live runs; a dry run calls no tool.
    tools = None
    if not run.dry_run:
        from loopkit.connectors.provider import ConnectorTools

        root = Path(getattr(settings, "LOOPKIT_PROJECT_ROOT", settings.BASE_DIR))
        tools = ConnectorTools(loop, root=root)

    async def main() -> Any:
        # The ORM store and the approver run in the loop's default executor: one thread
        # of our own, whose database connection is closed when the run ends (threads of
        # asyncio's own executor would each leave a connection open behind them).
        event_loop = asyncio.get_running_loop()
        event_loop.set_default_executor(ThreadPoolExecutor(1, f"loopkit-orm-{run.pk}"))
        try:
            return await run_loop(
                loop,
                make_llm(run, loop, providers),
                sinks=[sink],
                store=store,
                approver=OrmApprover(run.pk, loop),
                cancel=token,
                options=options,
                tool_provider=tools,
            )
        finally:
            await event_loop.run_in_executor(None, _close_connection)

    try:
        result = asyncio.run(main())
    finally:
        sink.close()
    return {"status": result.status, "error": result.error or ""}

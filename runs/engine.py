"""The adapter between a Run row and ``loopkit.engine.run_loop``.

The worker thread runs the engine in its own event loop. Events go to a
``BackgroundSink`` whose one thread writes them with ``record_engine_event``
(the ORM must not run in the event loop's thread); the ORM store and the
approver are offloaded the same way. A resumed run passes its id and
``resume=True``: the engine reads its record and checkpoints from the
``OrmStore`` and answers finished steps from them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

from loopkit.engine.cancellation import CancelToken
from loopkit.engine.events import Event
from loopkit.engine.runner import RunOptions, run_loop
from loopkit.llm import LLM
from loopkit.sinks import BackgroundSink, Sink
from runs.approvals import OrmApprover
from runs.memory import OrmStore
from runs.models import Run
from runs.services import parse_loop


class DatabaseSink(Sink):
    """Store each event (then push it); runs in the BackgroundSink's thread."""

    def __init__(self, run_id: int, write: Callable[[int, dict[str, Any]], Any]) -> None:
        self.run_id = run_id
        self.write = write

    def emit(self, event: Event) -> None:
        self.write(self.run_id, event.as_dict())

    def close(self) -> None:
        connection.close()  # this thread's connection: the thread ends with the run


def make_llm(run: Run, loop: Any) -> LLM:
    """Return the dry-run provider (per the loop's ``dryRun`` options) or the live one."""
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

    return LiteLLMProvider()


def run_with_engine(
    run: Run,
    token: CancelToken,
    *,
    resume: bool,
    on_event: Callable[[int, dict[str, Any]], Any],
) -> dict[str, Any]:
    """Run *run* to its end; return ``{"status", "error"}`` from the engine's result."""
    loop = parse_loop(run.loop_yaml, run.loop_name)
    sink = BackgroundSink(DatabaseSink(run.pk, on_event))
    store = OrmStore(run.team_id)
    options = RunOptions(
        inputs=dict(run.inputs),
        payload=run.trigger_payload,
        run_id=str(run.pk),
        resume=resume and store.get_run(str(run.pk)) is not None,
        start_seq=run.last_seq,
        config_path=f"{run.loop_name} v{run.version_number}",
    )
    # Connectors (MCP servers, HTTP APIs, SQL) and skills for live runs; a dry run calls no tool.
    tools = None
    if not run.dry_run:
        from loopkit.connectors.provider import ConnectorTools

        root = Path(getattr(settings, "LOOPKIT_PROJECT_ROOT", settings.BASE_DIR))
        tools = ConnectorTools(loop, root=root)
    try:
        result = asyncio.run(
            run_loop(
                loop,
                make_llm(run, loop),
                sinks=[sink],
                store=store,
                approver=OrmApprover(run.pk, loop),
                cancel=token,
                options=options,
                tool_provider=tools,
            )
        )
    finally:
        sink.close()
    return {"status": result.status, "error": result.error or ""}

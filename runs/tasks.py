"""Huey task wiring for runs: what each task calls, and the queue the lifecycle uses.

The work is elsewhere: ``runs.host`` executes runs, ``runs.lifecycle`` moves
them between statuses and recovers lost ones, ``runs.triggers`` fires
schedules and completion triggers. Tasks are enqueued after commit
(``transaction.on_commit``), so a worker never looks for a run that is not
committed yet.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime

from django.conf import settings
from django.db import close_old_connections
from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task, on_shutdown

from loopkit import tracing
from loopkit_web.db import is_refusal
from runs import lifecycle, triggers
from runs.host import host
from runs.models import Run

logger = logging.getLogger(__name__)

#: How long a deferred run (its team at the concurrency limit) waits before retrying.
DEFER_SECONDS = 1.0
#: How long a claim refused by a busy database waits before retrying.
BUSY_SECONDS = 2.0


@on_shutdown()
def flush_traces() -> None:
    """Export the spans a stopping worker still holds (runs traced with ``OTEL_*`` set)."""
    tracing.flush()


@db_task()
def execute_run(run_id: int, attempt: int | None = None) -> str:
    """Start (or resume) one run on this process's run host; return what happened.

    The task ends once the run is started: the run goes on as an asyncio task
    of the host. Inline (``HUEY_IMMEDIATE``: tests) it waits for the run.
    """
    try:
        started = host().execute(run_id, attempt)
    except Exception as exc:
        if not is_refusal(exc):
            raise
        logger.warning("database busy; claiming run %s again in %ss: %s", run_id, BUSY_SECONDS, exc)
        execute_run.schedule((run_id, attempt), delay=BUSY_SECONDS)
        return "busy"
    if started == "defer":
        execute_run.schedule((run_id, attempt), delay=DEFER_SECONDS)
        return "defer"
    if isinstance(started, str):
        return started
    if settings.HUEY.get("immediate"):
        return started.result()
    return "started"


@db_task()
def run_completed(run_id: int) -> list[int]:
    """Start the loops whose trigger is this run's completion (with its status)."""
    run = Run.objects.filter(pk=run_id).first()
    return triggers.fire_completion_triggers(run) if run is not None else []


@db_task()
def notify_run(run_id: int, what: str) -> list[int]:
    """Tell the run's team that it waits for approval or failed (notifications app).

    A failure to send is logged (and kept on the notification's row), never raised.
    """
    from notifications.services import notify_run as tell

    try:
        return tell(run_id, what)
    except Exception:
        logger.exception("the %s notification of run %s failed", what, run_id)
        return []


class HueyQueue:
    """``lifecycle.Queue`` on Huey."""

    def execute(
        self, run_id: int, attempt: int | None = None, *, at: datetime | None = None
    ) -> None:
        if at is None:
            execute_run(run_id, attempt)
        else:
            execute_run.schedule((run_id, attempt), eta=at)

    def completed(self, run_id: int) -> None:
        run_completed(run_id)

    def notify(self, run_id: int, what: str) -> None:
        notify_run(run_id, what)


lifecycle.set_queue(HueyQueue())


def fire_crons(now: datetime | None = None) -> list[int]:
    close_old_connections()
    return triggers.fire_due_crons(now)


@db_task()
def fire_crons_at(now_iso: str) -> dict[str, object]:
    """Fire the schedules due at *now_iso* (a scheduler tick with a given time); say who fired."""
    return {"pid": os.getpid(), "runs": fire_crons(datetime.fromisoformat(now_iso))}


@db_periodic_task(crontab(minute="*"))
def cron_tick() -> list[int]:
    """Every minute: start the runs of loops whose cron schedule is due."""
    return fire_crons()


@db_task()
def recover_runs() -> dict[str, list[int]]:
    """Run the recovery sweep now (what the periodic task does every minute)."""
    return lifecycle.recover()


@db_periodic_task(crontab(minute="*"))
def recovery_tick() -> dict[str, list[int]]:
    """Every minute: recover runs of lost workers and wake suspended runs that are due."""
    return lifecycle.recover()

"""Huey tasks: execute a run, fire due cron schedules, recover runs of lost workers.

Enqueue ``execute_run`` only through ``transaction.on_commit`` (``start_run``
does), so a worker never looks for a run that is not committed yet.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta

from django.db import close_old_connections
from django.db.models import F
from django.utils import timezone
from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from runs import conf
from runs.models import ACTIVE, Run, Status

logger = logging.getLogger(__name__)

#: How long a deferred run (its team at the concurrency limit) waits before retrying.
DEFER_SECONDS = 1.0


@db_task()
def execute_run(run_id: int, attempt: int | None = None) -> str:
    """Execute (or, with *attempt*, resume) one run."""
    from runs.execution import execute

    result = execute(run_id, attempt)
    if result == "defer":
        execute_run.schedule((run_id, attempt), delay=DEFER_SECONDS)
    return result


def fire_crons(now: datetime | None = None) -> list[int]:
    from runs.triggers import fire_due_crons

    close_old_connections()
    return fire_due_crons(now)


@db_task()
def fire_crons_at(now_iso: str) -> dict[str, object]:
    """Fire the schedules due at *now_iso* (a scheduler tick with a given time); say who fired."""
    return {"pid": os.getpid(), "runs": fire_crons(datetime.fromisoformat(now_iso))}


@db_periodic_task(crontab(minute="*"))
def cron_tick() -> list[int]:
    """Every minute: start the runs of loops whose cron schedule is due."""
    return fire_crons()


def recover_stale_runs(now: datetime | None = None) -> dict[str, list[int]]:
    """Resume (or fail) active runs whose worker stopped beating; re-enqueue lost queued runs.

    A run is taken over with a conditional UPDATE on its stale heartbeat, so
    two recoverers never both resume it. A run past ``max_attempts`` fails
    with the reason.
    """
    from runs.services import finish_without_worker

    now = now or timezone.now()
    cutoff = now - timedelta(seconds=conf.stale_seconds())
    resumed: list[int] = []
    failed: list[int] = []
    requeued: list[int] = []
    for run in Run.objects.filter(status__in=ACTIVE, heartbeat_at__lt=cutoff):
        taken = Run.objects.filter(
            pk=run.pk, status__in=ACTIVE, heartbeat_at__lt=cutoff, attempt=run.attempt
        ).update(heartbeat_at=now, worker="recovering", attempt=F("attempt") + 1)
        if not taken:
            continue
        run.refresh_from_db()
        if run.attempt > conf.max_attempts():
            reason = (
                f"the worker running it stopped responding {run.attempt - 1} times; "
                "giving up (LOOPKIT_RUN_MAX_ATTEMPTS)"
            )
            if finish_without_worker(run, Status.FAILED, reason, set(ACTIVE)):
                failed.append(run.pk)
            continue
        from runs.recorder import record_event, record_lost_calls

        record_event(
            run.pk,
            "run_recovered",
            {"attempt": run.attempt, "reason": "the worker stopped responding"},
        )
        record_lost_calls(run.pk)  # the calls the dead worker had in flight (paid, unseen)
        execute_run(run.pk, run.attempt)
        resumed.append(run.pk)
    # A queued run whose task was lost with its worker: enqueue it again (claims are idempotent).
    for run_id in Run.objects.filter(status=Status.QUEUED, heartbeat_at__lt=cutoff).values_list(
        "pk", flat=True
    ):
        if Run.objects.filter(pk=run_id, status=Status.QUEUED, heartbeat_at__lt=cutoff).update(
            heartbeat_at=now
        ):
            execute_run(run_id)
            requeued.append(run_id)
    if resumed or failed or requeued:
        logger.warning("recovery: resumed %s, failed %s, requeued %s", resumed, failed, requeued)
    return {"resumed": resumed, "failed": failed, "requeued": requeued}


@db_task()
def recover_runs() -> dict[str, list[int]]:
    """Run the recovery scan now (what the periodic task does every minute)."""
    return recover_stale_runs()


@db_periodic_task(crontab(minute="*"))
def recovery_tick() -> dict[str, list[int]]:
    """Every minute: recover runs whose heartbeat is stale."""
    return recover_stale_runs()

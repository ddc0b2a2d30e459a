"""Execute one run in a worker: claim it, run the engine, keep it alive, finish it.

A run is claimed with a conditional UPDATE (queued -> running, or a recovered
run whose attempt number matches), so two workers never execute the same run.
While the engine works, a heartbeat thread stamps ``heartbeat_at`` and turns
a cancel request into the engine's cancel token. The final status is written
with ``Run.transition`` from the active statuses only: a terminal status is
never overwritten.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from loopkit import secrets
from loopkit.engine.cancellation import CancelToken
from loopkit_web.teams.models import Team
from runs import conf
from runs.models import ACTIVE, TERMINAL, Run, Status
from runs.recorder import record_engine_events, record_event

logger = logging.getLogger(__name__)

RECOVERING = "recovering"


def worker_ident() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"[:200]


def claim(run_id: int, attempt: int | None) -> Run | str | None:
    """Take run *run_id* for this worker; return it, None (not ours) or "defer" (team busy)."""
    ident = worker_ident()
    now = timezone.now()
    with transaction.atomic():
        run = Run.objects.filter(pk=run_id).first()
        if run is None or run.status in TERMINAL:
            return None
        # Claims of one team are serialised so the concurrency limit holds across workers.
        team = Team.objects.select_for_update().filter(pk=run.team_id).first()
        if attempt is None:
            busy = Run.objects.filter(team_id=run.team_id, status__in=ACTIVE).count()
            if busy >= conf.concurrency_for(team.slug if team is not None else ""):
                Run.objects.filter(pk=run_id, status=Status.QUEUED).update(heartbeat_at=now)
                return "defer"
            won = run.transition(
                Status.RUNNING,
                allowed_from={Status.QUEUED},
                started_at=now,
                heartbeat_at=now,
                attempt=run.attempt + 1,
                worker=ident,
            )
        else:
            won = bool(
                Run.objects.filter(
                    pk=run_id, status__in=ACTIVE, attempt=attempt, worker=RECOVERING
                ).update(worker=ident, heartbeat_at=now)
            )
            if won:
                run.refresh_from_db()
    return run if won else None


class Heartbeat(threading.Thread):
    """Stamp the run alive every few seconds and fire *token* when a cancel is requested."""

    def __init__(self, run_id: int, token: CancelToken) -> None:
        super().__init__(name=f"loopkit-heartbeat-{run_id}", daemon=True)
        self.run_id = run_id
        self.token = token
        self.stopped = threading.Event()
        self.lost = threading.Event()
        self.worker = worker_ident()

    def run(self) -> None:
        interval = conf.heartbeat_seconds()
        poll = min(interval, 0.5)
        last_beat = 0.0
        try:
            while not self.stopped.wait(poll):
                now = timezone.now()
                rows = Run.objects.filter(pk=self.run_id).values_list("cancel_requested", "status")
                row = rows.first()
                if row is None or row[1] in TERMINAL:
                    self.token.cancel("the run was finished elsewhere")
                    return
                if row[0] and not self.token.cancelled:
                    self.token.cancel("cancelled by a user")
                if now.timestamp() - last_beat >= interval:
                    beat = Run.objects.filter(
                        pk=self.run_id, status__in=ACTIVE, worker=self.worker
                    ).update(heartbeat_at=now)
                    if not beat:
                        # Recovery gave the run to another worker (this one looked dead):
                        # stop, and leave the run's events and status to the new owner.
                        self.lost.set()
                        self.token.cancel("another worker took this run over")
                        return
                    last_beat = now.timestamp()
        except Exception:
            logger.exception("heartbeat of run %s failed", self.run_id)
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)


def finish(run: Run, status: str, *, error: str = "") -> bool:
    """Write the final status once (from an active status only) and fire completion triggers."""
    from runs.triggers import fire_completion_triggers

    if status not in TERMINAL:
        status = Status.FAILED
    # A crash's message may quote a provider's key back (the engine's own errors are masked).
    error = secrets.redact(error)
    won = run.transition(status, allowed_from=ACTIVE, finished_at=timezone.now(), error=error)
    if won:
        fire_completion_triggers(run)
    return won


def execute(run_id: int, attempt: int | None = None) -> str:
    """Execute run *run_id* (or resume it, when *attempt* is given); return what happened."""
    close_old_connections()
    claimed = claim(run_id, attempt)
    if claimed == "defer":
        return "defer"
    if not isinstance(claimed, Run):
        return "skipped"
    run = claimed
    token = CancelToken()
    heartbeat = Heartbeat(run.pk, token)
    heartbeat.start()
    try:
        outcome = run_engine(
            run, token, resume=attempt is not None, owned=lambda: not heartbeat.lost.is_set()
        )
    except Exception as exc:  # our bug or the environment's: the run fails, with the reason
        logger.exception("run %s crashed", run.pk)
        outcome = {"status": Status.FAILED, "error": secrets.redact(f"{type(exc).__name__}: {exc}")}
        if not heartbeat.lost.is_set():
            record_event(
                run.pk,
                "run_finished",
                {"loop": run.loop_name, "status": Status.FAILED, "error": outcome["error"]},
            )
    finally:
        heartbeat.stop()
    if heartbeat.lost.is_set():
        return "lost"
    finish(run, str(outcome["status"]), error=str(outcome.get("error") or ""))
    return str(outcome["status"])


def run_engine(
    run: Run, token: CancelToken, *, resume: bool, owned: Callable[[], bool]
) -> dict[str, Any]:
    """Run the loop with the engine, storing its events; return ``{"status", "error"}``."""
    from runs.engine import run_with_engine

    return run_with_engine(run, token, resume=resume, on_events=record_engine_events, owned=owned)

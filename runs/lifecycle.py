"""The life of a run, in one place: create, claim, suspend, wake, finish, cancel, recover.

::

    queued ──claim──▶ running ──finish──▶ succeeded | failed | cancelled | ...
                        │  ▲
                 suspend│  │claim (woken: a decision, or the gate's deadline)
                        ▼  │
              waiting_for_approval, held by no worker

Every status change is one conditional UPDATE (``Run.transition`` or a
filtered ``update``), so of two workers, or a worker and a request, racing,
exactly one wins and a terminal status is never overwritten.

A run held by a worker has ``worker`` set to that process's identity and a
fresh ``heartbeat_at``; a suspended run has ``worker=""`` and holds nothing:
no thread, no connection, no polling. What wakes it is enqueued by whoever
makes it resumable (a decision, the deadline's scheduled task, the minute's
sweep for anything lost).

This module never imports the Huey tasks: ``runs.tasks`` registers itself
with ``set_queue`` when Django loads it (every process that runs tasks or
enqueues them has it loaded), so the dependency goes one way.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from builder.models import Loop
from loopkit import secrets, spec
from loopkit.engine import context
from loopkit_web.audit.services import record
from loopkit_web.teams.models import Team
from runs import conf
from runs.inputs import RunRefused, coerce_inputs, parse_loop, resolve_inputs
from runs.models import (
    ACTIVE,
    TERMINAL,
    ApprovalRequest,
    ApprovalStatus,
    Run,
    Status,
    TriggerType,
)
from runs.recorder import finished_payload, record_event, record_lost_calls

logger = logging.getLogger(__name__)

#: ``Run.worker`` of a run taken over by recovery, until a worker claims it.
RECOVERING = "recovering"
#: ``Run.worker`` of a suspended run: no worker holds it.
SUSPENDED = ""


class Queue(Protocol):
    """What the lifecycle asks of the task queue (``runs.tasks`` implements it)."""

    def execute(
        self, run_id: int, attempt: int | None = None, *, at: datetime | None = None
    ) -> None: ...

    def completed(self, run_id: int) -> None: ...

    def notify(self, run_id: int, what: str) -> None:
        """Tell the run's team (``approval``: it waits at a gate; ``failed``: it failed)."""
        ...


_queue: Queue | None = None


def set_queue(queue: Queue) -> None:
    global _queue
    _queue = queue


def queue() -> Queue:
    if _queue is None:
        # Loaded by runs.apps.RunsConfig.ready: a process without it has no Django set up.
        raise RuntimeError("runs.tasks is not loaded: django.setup() first")
    return _queue


# ── Notifications (docs/notifications.md) ───────────────────────────────

#: The terminal statuses a run's team is told about: every one but succeeded and cancelled.
NOTIFIED_FAILURES = TERMINAL - {Status.SUCCEEDED, Status.CANCELLED}


def _notify(run_id: int, what: str) -> None:
    """Enqueue telling *run_id*'s team about *what* once the transaction commits.

    ``robust``: a queue that cannot take the task is logged, never fails the run.
    """
    transaction.on_commit(lambda: queue().notify(run_id, what), robust=True)


def _actor_label(actor: Any) -> str:
    if actor is not None and getattr(actor, "is_authenticated", False):
        return str(actor.get_username())
    return ""


# ── Create ───────────────────────────────────────────────────────────────


def check_model(model: str) -> None:
    """Refuse a run's model override longer than the ``Run.model`` column."""
    if len(model.strip()) > 200:
        raise RunRefused("model must be at most 200 characters (a LiteLLM model string)")


def run_inputs(
    parsed: spec.Loop, inputs: dict[str, Any] | None, *, dry_run: bool
) -> dict[str, Any]:
    """The inputs a run of *parsed* stores: converted to their declared types, and for a
    dry run completed as the engine runs it (declared defaults, else typed placeholders)."""
    given = coerce_inputs(parsed, dict(inputs or {}))
    if dry_run:
        given = context.resolve_inputs(parsed, given, dry_run=True)
    return resolve_inputs(parsed, given)


def start_run(
    loop: Loop,
    *,
    trigger_type: str,
    payload: dict[str, Any] | None = None,
    inputs: dict[str, Any] | None = None,
    dry_run: bool = False,
    actor: Any = None,
    request: Any = None,
    label: str = "",
    rerun_of: Run | None = None,
    model: str = "",
) -> Run:
    """Create a queued run of *loop*'s current version and enqueue it after commit.

    *actor* is the user who started it (None for cron, webhook and event
    triggers, which are described by *label*). The firing is audited.
    Inputs are converted to their declared types (``coerce_inputs``); *model*,
    when given, is this run's model in place of the loop's own ``model:``
    (a step naming its own model keeps it).
    """
    if rerun_of is not None:
        yaml_text, version, number = (
            rerun_of.loop_yaml,
            rerun_of.loop_version,
            rerun_of.version_number,
        )
    else:
        if loop.version == 0:
            raise RunRefused(f"the loop '{loop.name}' has no saved version yet")
        version = loop.current()
        yaml_text, number = version.yaml, version.number
    check_model(model)
    dry_run = dry_run or conf.dry_run_only()
    parsed = parse_loop(yaml_text, loop.name)
    values = run_inputs(parsed, inputs, dry_run=dry_run)
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    with transaction.atomic():
        run = Run.objects.create(
            team=loop.team,
            loop=loop,
            loop_version=version,
            loop_name=loop.name,
            version_number=number,
            loop_yaml=yaml_text,
            trigger_type=trigger_type,
            trigger_payload=payload or {},
            inputs=values,
            dry_run=dry_run,
            model=model.strip(),
            rerun_of=rerun_of,
            started_by=user,
            started_by_label=_actor_label(user) or label or trigger_type,
            heartbeat_at=timezone.now(),
        )
        record(
            request if request is not None else user,
            f"run.triggered.{trigger_type}",
            run,
            after={
                "loop": loop.name,
                "version": number,
                "trigger": trigger_type,
                "dry_run": dry_run,
                **({"model": run.model} if run.model else {}),
                "by": run.started_by_label,
            },
            actor_label=label,
        )
        run_id = run.pk
        transaction.on_commit(lambda: queue().execute(run_id))
    return run


def rerun(run: Run, *, actor: Any, request: Any = None) -> Run:
    """Start a new run of the same loop version with the same inputs and trigger payload."""
    if run.loop is None:
        raise RunRefused("the loop of this run was deleted; it cannot be re-run", status=409)
    return start_run(
        run.loop,
        trigger_type=TriggerType.RERUN,
        payload=run.trigger_payload,
        inputs=run.inputs,
        dry_run=run.dry_run,
        actor=actor,
        request=request,
        rerun_of=run,
        model=run.model,
    )


# ── Claim ────────────────────────────────────────────────────────────────


class Claim:
    """A run a worker now holds; ``resume`` says whether the engine picks it up again."""

    def __init__(self, run: Run, resume: bool) -> None:
        self.run = run
        self.resume = resume


def _held() -> Q:
    """Runs a worker holds: running, or waiting inside a worker (not suspended)."""
    return Q(status=Status.RUNNING) | (Q(status=Status.WAITING) & ~Q(worker=SUSPENDED))


def claim(run_id: int, attempt: int | None, worker: str) -> Claim | str | None:
    """Take run *run_id* for *worker*; return the claim, None (nothing to do) or "defer".

    Three kinds of claim: a queued run (within its team's concurrency limit,
    else "defer"), a suspended run woken up (status ``waiting_for_approval``
    and no worker), and a run recovery took over (*attempt* matches).
    """
    now = timezone.now()
    with transaction.atomic():
        run = Run.objects.filter(pk=run_id).first()
        if run is None or run.status in TERMINAL:
            return None
        if run.status == Status.QUEUED:
            # Claims of one team are serialised so the concurrency limit holds across workers.
            team = Team.objects.select_for_update().filter(pk=run.team_id).first()
            busy = Run.objects.filter(_held(), team_id=run.team_id).count()
            if busy >= conf.concurrency_for(team.slug if team is not None else ""):
                Run.objects.filter(pk=run_id, status=Status.QUEUED).update(heartbeat_at=now)
                return "defer"
            won = run.transition(
                Status.RUNNING,
                allowed_from={Status.QUEUED},
                started_at=now,
                heartbeat_at=now,
                attempt=run.attempt + 1,
                worker=worker,
            )
            return Claim(run, resume=False) if won else None
        if run.status == Status.WAITING and run.worker == SUSPENDED:
            woken = Run.objects.filter(pk=run_id, status=Status.WAITING, worker=SUSPENDED).update(
                status=Status.RUNNING, worker=worker, heartbeat_at=now
            )
            if not woken:
                return None
        elif attempt is not None:
            taken = Run.objects.filter(
                pk=run_id, status__in=ACTIVE, attempt=attempt, worker=RECOVERING
            ).update(worker=worker, heartbeat_at=now)
            if not taken:
                return None
        else:
            return None  # held by a worker already
        run.refresh_from_db()
    return Claim(run, resume=True)


# ── Suspend and wake ─────────────────────────────────────────────────────


def suspend(run: Run, worker: str, resume_at: float | None) -> bool:
    """Park *run* (its engine stopped at a wait): release it, and arrange its wake-up.

    The gate's deadline is scheduled (``resume_at``); a decision stored while
    the run was still being parked is seen here, after the run is released,
    so it is never missed (``decide`` wakes a run it finds released).
    """
    parked = Run.objects.filter(pk=run.pk, status__in=ACTIVE, worker=worker).update(
        status=Status.WAITING, worker=SUSPENDED, heartbeat_at=timezone.now()
    )
    if not parked:
        return False
    run.status, run.worker = Status.WAITING, SUSPENDED
    if resume_at is not None:
        queue().execute(run.pk, at=datetime.fromtimestamp(resume_at, tz=UTC))
    if not ApprovalRequest.objects.filter(run_id=run.pk, status=ApprovalStatus.PENDING).exists():
        wake(run.pk)
    if not run.is_test:  # once per gate: the task skips gates already told
        _notify(run.pk, "approval")
    return True


def wake(run_id: int) -> bool:
    """Enqueue the resume of a suspended run; False if it is not suspended."""
    if not Run.objects.filter(pk=run_id, status=Status.WAITING, worker=SUSPENDED).exists():
        return False
    queue().execute(run_id)
    return True


# ── Finish ───────────────────────────────────────────────────────────────


def finish(
    run: Run,
    status: str,
    error: str = "",
    *,
    allowed_from: frozenset[str] | set[str] = ACTIVE,
    announce: bool = False,
    **only: Any,
) -> bool:
    """Make *run* terminal once; return whether this call did.

    *announce*: the engine did not record ``run_finished`` (a crash, a cancel
    while queued or suspended, a lost worker): record it here, with the totals
    the run has stored. *only* narrows the UPDATE (``worker=...``). The loops
    triggered by this one's completion are enqueued after commit, not started
    from here.
    """
    if status not in TERMINAL:
        status = Status.FAILED
    # A crash's message may quote a provider's key back (the engine's own errors are masked).
    error = secrets.redact(error)
    now = timezone.now()
    with transaction.atomic():
        won = Run.objects.filter(pk=run.pk, status__in=list(allowed_from), **only).update(
            status=status, finished_at=now, error=error
        )
        if not won:
            return False
        run.refresh_from_db()
        if announce:
            record_event(run.pk, "run_finished", finished_payload(run, status, error))
        run_id = run.pk
        if not run.is_test:  # a draft's test run starts no other loop and tells nobody
            transaction.on_commit(lambda: queue().completed(run_id))
            if status in NOTIFIED_FAILURES:
                _notify(run_id, "failed")
    return True


def request_cancel(run: Run, *, actor: Any, request: Any = None) -> bool:
    """Ask *run* to stop at its next safe point; return False if it had already finished.

    A queued or suspended run is cancelled at once (a suspended run's pending
    approval is closed); a running one by its worker, whose heartbeat sees
    ``cancel_requested`` within a second and fires the engine's cancel token.
    """
    if run.status in TERMINAL:
        return False
    Run.objects.filter(pk=run.pk).update(cancel_requested=True)
    run.cancel_requested = True
    record(request if request is not None else actor, "run.cancel_requested", run)
    record_event(run.pk, "cancel_requested", {"by": _actor_label(actor)})
    if finish(
        run,
        Status.CANCELLED,
        "cancelled while waiting for approval",
        allowed_from={Status.WAITING},
        announce=True,
        worker=SUSPENDED,
    ):
        ApprovalRequest.objects.filter(run_id=run.pk, status=ApprovalStatus.PENDING).update(
            status=ApprovalStatus.REJECTED,
            decided_at=timezone.now(),
            decided_by_label="cancel",
            comment="the run was cancelled",
        )
        return True
    finish(
        run,
        Status.CANCELLED,
        "cancelled before it started",
        allowed_from={Status.QUEUED},
        announce=True,
    )
    return True


# ── Recover ──────────────────────────────────────────────────────────────


def recover(now: datetime | None = None) -> dict[str, list[int]]:
    """Take over what lost its worker, and wake what a lost task should have woken.

    * a held run whose worker stopped beating is resumed by another worker
      (a conditional UPDATE on its stale heartbeat: two recoverers never both
      take it), or failed after ``max_attempts``;
    * a queued run whose task was lost is enqueued again (claims are idempotent);
    * a suspended run that is due (its approval decided, or its deadline past)
      is woken: the scheduled task that should have done it may have been lost.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=conf.stale_seconds())
    resumed: list[int] = []
    failed: list[int] = []
    requeued: list[int] = []
    for run in Run.objects.filter(_held(), heartbeat_at__lt=cutoff):
        taken = Run.objects.filter(
            _held(), pk=run.pk, heartbeat_at__lt=cutoff, attempt=run.attempt
        ).update(heartbeat_at=now, worker=RECOVERING, attempt=F("attempt") + 1)
        if not taken:
            continue
        run.refresh_from_db()
        if run.attempt > conf.max_attempts():
            reason = (
                f"the worker running it stopped responding {run.attempt - 1} times; "
                "giving up (LOOPKIT_RUN_MAX_ATTEMPTS)"
            )
            record_lost_calls(run.pk)  # the last dead worker's calls in flight
            if finish(run, Status.FAILED, reason, announce=True):
                failed.append(run.pk)
            continue
        record_event(
            run.pk,
            "run_recovered",
            {"attempt": run.attempt, "reason": "the worker stopped responding"},
        )
        record_lost_calls(run.pk)  # the calls the dead worker had in flight (paid, unseen)
        queue().execute(run.pk, run.attempt)
        resumed.append(run.pk)
    for run_id in Run.objects.filter(status=Status.QUEUED, heartbeat_at__lt=cutoff).values_list(
        "pk", flat=True
    ):
        if Run.objects.filter(pk=run_id, status=Status.QUEUED, heartbeat_at__lt=cutoff).update(
            heartbeat_at=now
        ):
            queue().execute(run_id)
            requeued.append(run_id)
    pending = ApprovalRequest.objects.filter(run=OuterRef("pk"), status=ApprovalStatus.PENDING)
    overdue = pending.filter(expires_at__lt=now)
    # Decided but not woken for a while (its wake-up task was lost), or past its deadline.
    due = Run.objects.filter(status=Status.WAITING, worker=SUSPENDED).filter(
        (~Exists(pending) & Q(heartbeat_at__lt=cutoff)) | Exists(overdue)
    )
    woken = list(due.values_list("pk", flat=True)[:1000])
    for run_id in woken:
        queue().execute(run_id)
    if resumed or failed or requeued or woken:
        logger.warning(
            "recovery: resumed %s, failed %s, requeued %s, woke %s",
            resumed,
            failed,
            requeued,
            woken,
        )
    return {"resumed": resumed, "failed": failed, "requeued": requeued, "woken": woken}

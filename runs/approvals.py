"""Approval gates in the web app: a stored question, a decision, a run that is woken.

``OrmApprover`` is the engine's approver for web runs. It ``suspends``: at a
gate nobody has decided, it stores an ``ApprovalRequest`` row (one per run
and step, so the resumed run finds the one it asked) and raises
``Suspended``; the run parks and releases its worker (``runs.lifecycle``).
``decide_approval`` (the page and the API) stores the decision and wakes the
run; the gate's deadline wakes it too, and the resumed run's approver then
closes the row as the step's ``onTimeout`` says. Nothing polls.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from loopkit import spec
from loopkit.engine.approval import ApprovalDecision, Approver
from loopkit.engine.approval import ApprovalRequest as EngineRequest
from loopkit.errors import Suspended
from loopkit_web.audit.services import record
from loopkit_web.teams.models import ROLE_RANK, Membership
from runs import lifecycle
from runs.inputs import RunRefused
from runs.models import ApprovalRequest, ApprovalStatus, Run, Status


def _step(loop: spec.Loop, key: str) -> spec.ApprovalStep | None:
    for path, step in spec.iter_loop_steps(loop):  # the pipeline, onPass and onFail
        if path == key and isinstance(step, spec.ApprovalStep):
            return step
    return None


def _decision(row: ApprovalRequest) -> ApprovalDecision:
    return ApprovalDecision(
        approved=row.status == ApprovalStatus.APPROVED,
        by=row.decided_by_label or None,
        reason=row.comment or None,
        timed_out=row.decided_by_label == "timeout",
    )


class OrmApprover(Approver):
    """Answer a gate from its stored decision, close it at its deadline, else suspend."""

    suspends = True

    def __init__(self, run_id: int, loop: spec.Loop) -> None:
        self.run_id = run_id
        self.loop = loop

    def _look(self, request: EngineRequest) -> ApprovalDecision | None:
        """Return the gate's decision (closing it if its deadline passed), or None."""
        step = _step(self.loop, request.key)
        on_timeout = (step.on_timeout if step is not None else None) or "reject"
        expires = (
            datetime.fromtimestamp(request.deadline, tz=UTC)
            if request.deadline is not None
            else None
        )
        with transaction.atomic():
            row, _ = ApprovalRequest.objects.get_or_create(
                run_id=self.run_id,
                step=request.label or request.key,
                defaults={
                    "question": request.question,
                    "approvers": list(request.approvers),
                    "on_timeout": on_timeout,
                    "expires_at": expires,
                },
            )
            if row.status == ApprovalStatus.PENDING:
                Run.objects.filter(pk=self.run_id, status=Status.RUNNING).update(
                    status=Status.WAITING
                )
        if row.status != ApprovalStatus.PENDING:
            return _decision(row)
        if row.expires_at is None or timezone.now() < row.expires_at:
            return None
        approve = row.on_timeout == "approve"
        ApprovalRequest.objects.filter(pk=row.pk, status=ApprovalStatus.PENDING).update(
            status=ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED,
            decided_at=timezone.now(),
            decided_by_label="timeout",
            comment=f"no decision in time (onTimeout: {row.on_timeout})",
        )
        row.refresh_from_db()  # a person may have decided first: theirs stands
        return _decision(row)

    async def decide(self, request: EngineRequest) -> ApprovalDecision:
        decision = await asyncio.to_thread(self._look, request)
        if decision is not None:
            return decision
        who = request.label or request.key
        raise Suspended(
            f"waiting for approval of '{who}'", key=request.key, resume_at=request.deadline
        )


# ── Deciding ─────────────────────────────────────────────────────────────


def can_approve(membership: Membership | None, approval: ApprovalRequest) -> bool:
    """Return True if *membership* may decide *approval*.

    An empty approver list means editors and above. Roles in the list allow
    that role and the roles above it; other names are user names.
    """
    if membership is None:
        return False
    allowed = approval.approvers or ["editor"]
    role_rank = ROLE_RANK[membership.role]
    for who in allowed:
        if who in ROLE_RANK and role_rank >= ROLE_RANK[who]:
            return True
        if who == membership.user.get_username():
            return True
    return False


class ApprovalRefused(RunRefused):
    pass


def decide_approval(
    approval: ApprovalRequest,
    *,
    approved: bool,
    comment: str,
    membership: Membership | None,
    request: Any = None,
) -> ApprovalRequest:
    """Store a decision on a pending approval and wake its run (after commit)."""
    if not can_approve(membership, approval):
        allowed = ", ".join(approval.approvers or ["editor"])
        raise ApprovalRefused(f"only {allowed} (or higher) may decide this approval", status=403)
    user = membership.user if membership is not None else None
    status = ApprovalStatus.APPROVED if approved else ApprovalStatus.REJECTED
    with transaction.atomic():
        changed = ApprovalRequest.objects.filter(
            pk=approval.pk, status=ApprovalStatus.PENDING
        ).update(
            status=status,
            decided_at=timezone.now(),
            decided_by=user,
            decided_by_label=user.get_username() if user is not None else "",
            comment=comment,
        )
        if not changed:
            raise ApprovalRefused("this approval was already decided", status=409)
        approval.refresh_from_db()
        record(
            request if request is not None else user,
            "run.approval_" + ("approved" if approved else "rejected"),
            approval.run,
            after={"step": approval.step, "comment": comment},
        )
        run_id = approval.run_id
        transaction.on_commit(lambda: lifecycle.wake(run_id))
    return approval

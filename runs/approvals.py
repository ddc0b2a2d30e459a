"""The web app's approval gate: a database row the browser decides, a run that waits.

``OrmApprover.decide`` stores an ``ApprovalRequest`` row (one per run and
step, so a resumed run finds the one it was waiting on), marks the run
``waiting_for_approval`` and polls the row until someone decides it. The
engine enforces the gate's timeout by cancelling the wait; the row is then
closed as the step's ``onTimeout`` says.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from django.db import close_old_connections
from django.utils import timezone

from loopkit import spec
from loopkit.engine.approval import ApprovalDecision, Approver
from loopkit.engine.approval import ApprovalRequest as EngineRequest
from runs.models import ApprovalRequest, ApprovalStatus, Run, Status

#: Seconds between two looks at the decision row.
POLL_SECONDS = 0.25


def _step(loop: spec.Loop, key: str) -> spec.ApprovalStep | None:
    for path, step in spec.iter_steps(loop.pipeline):
        if path == key and isinstance(step, spec.ApprovalStep):
            return step
    return None


class OrmApprover(Approver):
    def __init__(self, run_id: int, loop: spec.Loop) -> None:
        self.run_id = run_id
        self.loop = loop

    def _open(self, request: EngineRequest) -> int:
        close_old_connections()
        step = _step(self.loop, request.key)
        on_timeout = (step.on_timeout if step is not None else None) or "reject"
        expires = (
            timezone.now() + timedelta(seconds=request.timeout_s) if request.timeout_s else None
        )
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
            Run.objects.filter(pk=self.run_id, status=Status.RUNNING).update(status=Status.WAITING)
        return row.pk

    def _poll(self, approval_id: int) -> ApprovalRequest | None:
        row = ApprovalRequest.objects.get(pk=approval_id)
        return None if row.status == ApprovalStatus.PENDING else row

    def _resume(self) -> None:
        Run.objects.filter(pk=self.run_id, status=Status.WAITING).update(status=Status.RUNNING)

    def _timed_out(self, approval_id: int) -> None:
        row = ApprovalRequest.objects.get(pk=approval_id)
        if Run.objects.filter(pk=self.run_id, cancel_requested=True).exists():
            status, by, comment = ApprovalStatus.REJECTED, "cancel", "the run was cancelled"
        else:
            approve = row.on_timeout == "approve"
            status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
            by, comment = "timeout", f"no decision in time (onTimeout: {row.on_timeout})"
        ApprovalRequest.objects.filter(pk=approval_id, status=ApprovalStatus.PENDING).update(
            status=status, decided_at=timezone.now(), decided_by_label=by, comment=comment
        )

    async def decide(self, request: EngineRequest) -> ApprovalDecision:
        approval_id = await asyncio.to_thread(self._open, request)
        try:
            while True:
                row = await asyncio.to_thread(self._poll, approval_id)
                if row is not None:
                    return ApprovalDecision(
                        approved=row.status == ApprovalStatus.APPROVED,
                        by=row.decided_by_label or None,
                        reason=row.comment or None,
                    )
                await asyncio.sleep(POLL_SECONDS)
        except asyncio.CancelledError:
            # The engine's timeout (or a cancel) ended the wait: close the row as the step says.
            await asyncio.shield(asyncio.to_thread(self._timed_out, approval_id))
            raise
        finally:
            await asyncio.shield(asyncio.to_thread(self._resume))

"""Approval gates: the seam between a paused run and whoever answers it.

The engine emits ``approval_requested``, marks the run
``waiting_for_approval`` in the store and awaits ``Approver.decide``; a
gate's ``timeoutMinutes`` is enforced by the engine (``onTimeout`` decides,
default reject). The CLI answers from flags or the terminal; the web app
implements ``decide`` by waiting for a decision row written by the browser.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field


@dataclass
class ApprovalRequest:
    """What an approver is asked; ``outputs`` maps finished step labels to their output."""

    run_id: str
    loop: str
    key: str
    label: str | None
    question: str
    approvers: list[str] = field(default_factory=list)
    timeout_s: float | None = None
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass
class ApprovalDecision:
    approved: bool
    by: str | None = None
    reason: str | None = None


class Approver(ABC):
    """Answers approval gates.

    Contract: ``decide`` returns when someone allowed (see
    ``request.approvers``) has decided; it may wait as long as it likes (the
    engine applies the gate's timeout and cancels the wait) and must let
    ``asyncio.CancelledError`` through (the run was cancelled meanwhile).
    """

    @abstractmethod
    async def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        """Return the decision on ``request``."""


class StaticApprover(Approver):
    """Give the same answer to every gate (``--approve`` / ``--reject``, dry runs, tests)."""

    def __init__(self, approved: bool, by: str = "static", reason: str | None = None) -> None:
        self.decision = ApprovalDecision(approved=approved, by=by, reason=reason)
        self.requests: list[ApprovalRequest] = []

    async def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        self.requests.append(request)
        return self.decision

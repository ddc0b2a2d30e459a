"""Approval gates: the seam between a paused run and whoever answers it.

The engine emits ``approval_requested`` (once per gate, even across resumes:
a checkpoint remembers when the question was asked), marks the run
``waiting_for_approval`` in the store and awaits ``Approver.decide``.

Two kinds of approver:

* one that waits (the CLI: flags or the terminal). The engine enforces the
  gate's ``timeoutMinutes`` by cancelling the wait (``onTimeout`` decides,
  default reject);
* one that ``suspends`` (the web app): ``decide`` returns a decision already
  made, or one it closed itself because ``request.deadline`` passed
  (``timed_out=True``), or raises ``loopkit.errors.Suspended``: the run
  checkpoints and ends as ``suspended``, holding nothing, and is resumed
  (``RunOptions.resume``) when a decision is stored or the deadline comes.
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
    #: When the question was first asked, and when the gate times out (epoch seconds).
    asked_at: float = 0.0
    deadline: float | None = None


@dataclass
class ApprovalDecision:
    approved: bool
    by: str | None = None
    reason: str | None = None
    #: Closed by the gate's deadline (``onTimeout``), not by a person.
    timed_out: bool = False


class Approver(ABC):
    """Answers approval gates.

    Contract: ``decide`` returns when someone allowed (see
    ``request.approvers``) has decided; it may wait as long as it likes (the
    engine applies the gate's timeout and cancels the wait) and must let
    ``asyncio.CancelledError`` through (the run was cancelled meanwhile).
    An approver with ``suspends = True`` never waits: see the module's docstring.
    """

    #: True: ``decide`` raises ``Suspended`` instead of waiting and applies the deadline.
    suspends: bool = False

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

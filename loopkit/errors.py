"""The whole LoopKit error vocabulary, split by whose fault it is.

- ``SpecError``: the YAML author's (found at load or validation).
- ``ConfigError``: the deployment's (missing settings, env vars, services).
- ``RunError`` and its children: the run's (budget, verification, provider).
- ``ControlFlow`` signals: raised and caught by the engine itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class LoopKitError(Exception):
    """Root of every error LoopKit raises on purpose."""

    code: str = "loopkit_error"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a loop file, with where it is and how to fix it."""

    message: str
    path: str = ""
    file: str | None = None
    line: int | None = None
    column: int | None = None
    code: str = "invalid"
    hint: str | None = None

    @property
    def location(self) -> str:
        """Return ``file:line:column`` (as much of it as is known)."""
        parts = [self.file or "<string>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def __str__(self) -> str:
        where = f" ({self.path})" if self.path else ""
        hint = f" Hint: {self.hint}" if self.hint else ""
        return f"{self.location}: {self.message}{where}{hint}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "path": self.path,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "code": self.code,
            "hint": self.hint,
        }


class SpecError(LoopKitError):
    """A loop or project file is invalid; ``problems`` lists every problem found."""

    code = "spec_error"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ConfigError(LoopKitError):
    """The deployment is misconfigured (a missing env var, an unreachable service)."""

    code = "config_error"


class ResumeRefused(ConfigError):
    """A run cannot be resumed as asked: no such run, another loop's, already
    succeeded, or a live run resumed dry (or the reverse). Its record is left as it was."""

    code = "resume_refused"


@dataclass
class RunError(LoopKitError):
    """A run could not finish as asked."""

    message: str
    step: str | None = None
    retryable: bool = False
    code: str = "run_error"

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


@dataclass
class BudgetExceeded(RunError):
    """A hard budget limit would be or was exceeded.

    ``limit`` names the budget dimension (``maxTokens``, ``maxCostUsd``,
    ``maxDurationMinutes``, ``maxIterations``, ``maxModelCalls``); ``allowed``
    and ``observed`` are in that dimension's unit.
    """

    limit: str = ""
    allowed: float = 0.0
    observed: float = 0.0
    code: str = "budget_exceeded"


@dataclass
class ProviderError(RunError):
    """The model provider failed (after retries, if the failure was transient)."""

    status_code: int | None = None
    code: str = "provider_error"


@dataclass
class VerificationFailed(RunError):
    """The checker did not pass the makers' output within ``maxRounds``."""

    rounds: int = 0
    score: float | None = None
    issues: list[str] = field(default_factory=list)
    code: str = "verification_failed"


class ControlFlow(LoopKitError):
    """Base of signals the engine raises and catches itself."""

    code = "control_flow"


class WaitForRoom(ControlFlow):
    """A call's output cap does not fit next to other calls' reservations yet: it waits
    for them to commit (``BudgetTracker.room_freed``) instead of taking a fragment."""

    code = "wait_for_room"


class Cancelled(ControlFlow):
    """The run was asked to stop at the next safe point."""

    code = "cancelled"


class Suspended(ControlFlow):
    """The run parks until something outside it happens (an approval decided, a gate's
    deadline): it checkpoints, releases its worker and is resumed later with ``resume``.

    Raised by an approver that ``suspends`` instead of waiting. ``resume_at`` (epoch
    seconds) is when the run must be resumed even if nothing happens: the gate's deadline.
    """

    code = "suspended"

    def __init__(self, reason: str, *, key: str = "", resume_at: float | None = None) -> None:
        self.reason = reason
        self.key = key
        self.resume_at = resume_at
        super().__init__(reason)


class ApprovalRejected(ControlFlow):
    """A human approval gate was rejected (or timed out with ``onTimeout: reject``)."""

    code = "approval_rejected"

    def __init__(self, step: str, reason: str) -> None:
        self.step = step
        self.reason = reason
        super().__init__(f"Approval '{step}' was rejected: {reason}")

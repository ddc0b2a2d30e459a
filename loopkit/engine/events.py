"""Typed run events: the engine's only interface to the outside world.

Every state change of a run is one event. Events carry a per-run sequence
number ``seq`` (1, 2, 3, ... in emission order, also across a resume), the run
id, a ``type`` string and a UTC timestamp. ``as_dict()`` returns plain JSON
data (what the JSON-lines sink writes and what the web app stores); field
names there are the dataclass attribute names.

Event types (``type``):

- ``run_started``: the run began (or resumed).
- ``step_started`` / ``step_finished`` / ``step_failed``: an agent step or a
  group (``kind`` is ``agent``, ``parallel``, ``sequential``, ``conditional``,
  ``approval``, ``plan``, ``tool``); ``step_finished`` carries tokens by kind, cost,
  duration and output (agents and tool steps) and ``resumed=True`` when a
  checkpoint answered it. The actions after verification are the group
  ``onPass`` or ``onFail`` (kind ``sequential``), their steps ``onPass[0]``, ...
- ``step_output``: a piece of an agent step's answer while the model streams
  it (``text`` is the new piece, ``chars`` the length of the call's text so
  far, ``call`` counts the step's model calls, retries included: a new
  ``call`` starts the text again). Emitted only when a sink wants deltas and
  the provider streams; ``step_finished`` still carries the whole output.
- ``tool_called``: one tool call inside an agent step's tool-use loop (or a
  tool check's call, keyed ``verify.checks[i]``, or a tool step's call;
  ``dry_run`` when a dry run did not make a tool step's call: the would-be
  call, ``arguments`` as rendered, no ``result``).
- ``output_truncated``: the model stopped at the output cap (``finish_reason``
  ``length``): ``limit`` is the ``max_tokens`` sent (``None``: none was sent,
  the provider's own limit), ``output_tokens`` those of the cut answer,
  ``allowed`` whether the step accepts it (``allowTruncation``); when it does
  not, the step fails (``output_truncated``).
- ``plan_made``: a plan step's planner chose the next steps (or finished,
  or asked for more than ``maxIterations`` allows: ``limit_reached``).
- ``verification_round``: one Maker/Checker round with its verdict (``skipped``
  when no maker has run at all, so there was nothing to verify): the blocking
  ``issues``, the ``minor`` ones, every issue structured (``findings``),
  ``stalled`` when its blocking issues repeat an earlier round's, and what the
  deterministic checks (``verify.checks``) found before the checker (``checks``).
- ``budget_warning``: a budget dimension passed 80 % of its limit, or a price
  is unknown so a cost limit cannot be enforced.
- ``approval_requested`` / ``approval_resolved``: a human gate (the run is
  ``waiting_for_approval`` between the two).
- ``run_suspended``: the run parked at an undecided gate and holds nothing
  (an approver that ``suspends``); it goes on with a ``run_started`` whose
  ``resumed`` is true, which replays its finished steps and rounds from
  checkpoints (``resumed=True`` on their events).
- ``run_finished``: the final status and totals. ``lost_calls`` (only when
  above 0) counts model calls an earlier attempt had in flight when its
  worker died (``RunOptions.lost_calls``): they are in ``requests`` (and
  counted against ``maxModelCalls``) but their tokens and cost are in no
  total, so the cost is not the run's whole cost even when ``cost_known``
  (every price known) is true. With verification: ``verification`` (how it
  ended), ``best_round`` (whose outputs the run returns) and ``accepted``
  (``best`` / ``approved`` when the run succeeded without a passing round).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

#: Final statuses of a run (``waiting_for_approval`` and ``running`` are transient).
RunStatus = Literal["succeeded", "failed", "verification_failed", "budget_exceeded", "cancelled"]
FINAL_STATUSES: tuple[str, ...] = (
    "succeeded",
    "failed",
    "verification_failed",
    "budget_exceeded",
    "cancelled",
)
StepKind = Literal[
    "agent", "parallel", "sequential", "conditional", "approval", "checker", "plan", "tool"
]


@dataclass
class Tokens:
    """Token counts by kind. ``input`` excludes cached reads and cache writes;
    ``output`` excludes reasoning, so ``total`` counts every token once."""

    input: int = 0
    output: int = 0
    cached_read: int = 0
    cache_write: int = 0
    reasoning: int = 0

    @property
    def total(self) -> int:
        return self.input + self.output + self.cached_read + self.cache_write + self.reasoning

    @property
    def up(self) -> int:
        """Tokens sent to the model (all input kinds)."""
        return self.input + self.cached_read + self.cache_write

    @property
    def down(self) -> int:
        """Tokens received from the model (output and reasoning)."""
        return self.output + self.reasoning

    def add(self, other: Tokens) -> None:
        self.input += other.input
        self.output += other.output
        self.cached_read += other.cached_read
        self.cache_write += other.cache_write
        self.reasoning += other.reasoning

    def as_dict(self) -> dict[str, int]:
        return {
            "input": self.input,
            "output": self.output,
            "cached_read": self.cached_read,
            "cache_write": self.cache_write,
            "reasoning": self.reasoning,
            "total": self.total,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tokens:
        return cls(**{k: int(data.get(k, 0)) for k in _TOKEN_KINDS})


_TOKEN_KINDS = ("input", "output", "cached_read", "cache_write", "reasoning")


@dataclass(kw_only=True)
class Event:
    """Base of every event. ``seq`` and ``run_id`` are set by the run's emitter."""

    type: ClassVar[str] = "event"
    seq: int = 0
    run_id: str = ""
    at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        """Return the event as JSON-serialisable data, ``type`` first."""
        data: dict[str, Any] = {"type": self.type, **self.__dict__}
        tokens = data.get("tokens")
        if tokens is not None:
            data["tokens"] = tokens.as_dict()
        return data


@dataclass(kw_only=True)
class RunStarted(Event):
    type: ClassVar[str] = "run_started"
    loop: str
    config: str | None = None
    dry_run: bool = False
    resumed: bool = False
    pipeline_steps: int = 0
    makers: list[str] = field(default_factory=list)
    checker: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, float] = field(default_factory=dict)


@dataclass(kw_only=True)
class StepStarted(Event):
    type: ClassVar[str] = "step_started"
    key: str
    label: str | None
    kind: StepKind
    round: int = 1
    model: str | None = None
    members: list[str] = field(default_factory=list)
    #: An agent step's rendered prompt (the user message the model is sent),
    #: secrets redacted; None for other steps and steps resumed from a checkpoint.
    prompt: str | None = None
    #: Answered from a checkpoint (a resumed run replays its finished steps).
    resumed: bool = False
    #: Answered with an output pinned for the run (``RunOptions.pinned``): no model call.
    pinned: bool = False


@dataclass(kw_only=True)
class StepFinished(Event):
    type: ClassVar[str] = "step_finished"
    key: str
    label: str | None
    kind: StepKind
    round: int = 1
    model: str | None = None
    tokens: Tokens = field(default_factory=Tokens)
    cost: float | None = 0.0
    duration_ms: float = 0.0
    output: str | None = None
    agents: int = 0
    resumed: bool = False
    branch: str | None = None
    #: ``output`` is the JSON text of an answer parsed against the step's schema.
    structured: bool = False
    #: The output was pinned for the run (``RunOptions.pinned``): no model call, no usage.
    pinned: bool = False


@dataclass(kw_only=True)
class StepFailed(Event):
    type: ClassVar[str] = "step_failed"
    key: str
    label: str | None
    kind: StepKind
    round: int = 1
    error: str
    code: str
    duration_ms: float = 0.0
    attempt: int = 1
    will_retry: bool = False


@dataclass(kw_only=True)
class StepOutput(Event):
    type: ClassVar[str] = "step_output"
    key: str
    label: str | None
    round: int = 1
    call: int = 1
    text: str = ""
    chars: int = 0


@dataclass(kw_only=True)
class ToolCalled(Event):
    type: ClassVar[str] = "tool_called"
    key: str
    label: str | None
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    result: str = ""
    is_error: bool = False
    duration_ms: float = 0.0
    #: A tool step of a dry run: the call was not made (``arguments`` say what it would send).
    dry_run: bool = False


@dataclass(kw_only=True)
class OutputTruncated(Event):
    type: ClassVar[str] = "output_truncated"
    key: str
    label: str | None
    kind: StepKind = "agent"
    round: int = 1
    limit: int | None = None
    output_tokens: int = 0
    allowed: bool = False


@dataclass(kw_only=True)
class PlanMade(Event):
    type: ClassVar[str] = "plan_made"
    key: str
    label: str | None
    iteration: int
    max_iterations: int
    steps: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    reason: str | None = None
    limit_reached: bool = False


@dataclass(kw_only=True)
class VerificationRound(Event):
    type: ClassVar[str] = "verification_round"
    round: int
    max_rounds: int
    checker: str
    passed: bool
    score: float | None
    issues: list[str] = field(default_factory=list)
    reason: str | None = None
    tokens: Tokens = field(default_factory=Tokens)
    cost: float | None = 0.0
    duration_ms: float = 0.0
    will_retry: bool = False
    #: No maker has run (every maker's step sat in a branch not taken), so the
    #: checker was not asked: there was nothing to verify.
    skipped: bool = False
    #: Answered from a checkpoint (a resumed run replays its finished rounds).
    resumed: bool = False
    #: Issues below ``blockOn``: reported, not sent back to the makers (``issues``
    #: holds the blocking ones).
    minor: list[str] = field(default_factory=list)
    #: Every issue, structured: text, severity, location, new (the checker's word),
    #: checker, tagged (it gave a severity), blocks, repeated (an earlier round's).
    findings: list[dict[str, Any]] = field(default_factory=list)
    #: The blocking issues all repeat an earlier round's: no more rounds are spent.
    stalled: bool = False
    #: What ``verify.checks`` did before the checker, in order: name, kind (schema |
    #: regex | tool), passed (None when skipped), message, severity, duration_ms, skipped.
    checks: list[dict[str, Any]] = field(default_factory=list)


@dataclass(kw_only=True)
class BudgetWarning(Event):
    type: ClassVar[str] = "budget_warning"
    limit: str
    allowed: float | None
    observed: float | None
    message: str


@dataclass(kw_only=True)
class ApprovalRequested(Event):
    type: ClassVar[str] = "approval_requested"
    key: str
    label: str | None
    question: str
    approvers: list[str] = field(default_factory=list)
    timeout_s: float | None = None
    on_timeout: str = "reject"


@dataclass(kw_only=True)
class ApprovalResolved(Event):
    type: ClassVar[str] = "approval_resolved"
    key: str
    label: str | None
    approved: bool
    by: str | None = None
    reason: str | None = None
    timed_out: bool = False


@dataclass(kw_only=True)
class RunFinished(Event):
    type: ClassVar[str] = "run_finished"
    loop: str
    status: RunStatus
    duration_ms: float
    tokens: Tokens = field(default_factory=Tokens)
    cost: float | None = 0.0
    cost_known: bool = True
    steps: int = 0
    requests: int = 0
    iterations: int = 0
    rounds: int = 0
    error: str | None = None
    error_code: str | None = None
    limit: str | None = None
    projection: dict[str, Any] | None = None
    lost_calls: int = 0
    #: How verification ended: ``passed``, ``skipped``, ``stalled`` or ``failed``.
    verification: str | None = None
    #: The round whose outputs the run returns (the passing one, else the best by score).
    best_round: int | None = None
    #: ``best`` (``onFail: accept-best``) or ``approved`` (an approved escalation): the
    #: run succeeded with the best round's outputs although no round passed.
    accepted: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data = super().as_dict()
        if not self.lost_calls:  # only a resumed run that lost calls says so
            del data["lost_calls"]
        for name in ("verification", "best_round", "accepted"):
            if data[name] is None:  # only a run with verification says how it went
                del data[name]
        return data


@dataclass(kw_only=True)
class RunSuspended(Event):
    """The run parked at a wait (an approval gate) and released its worker; a
    ``run_started`` with ``resumed`` follows when it is resumed. ``resume_at``
    (epoch seconds) is the gate's deadline, if it has one."""

    type: ClassVar[str] = "run_suspended"
    loop: str
    key: str = ""
    reason: str = ""
    resume_at: float | None = None
    duration_ms: float = 0.0


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        RunStarted,
        StepStarted,
        StepFinished,
        StepFailed,
        StepOutput,
        ToolCalled,
        OutputTruncated,
        PlanMade,
        VerificationRound,
        BudgetWarning,
        ApprovalRequested,
        ApprovalResolved,
        RunSuspended,
        RunFinished,
    )
}

"""Hard budget limits: check before each model call (reserve), check after (commit).

A call first *reserves* its estimated share: input tokens counted from the
rendered messages (with a margin), an output cap, its estimated cost and one
model call. The output cap is what the provider is told (``max_tokens``), so a
provider that honours it can never push a run past ``maxTokens``; a wide
parallel fan-out cannot overshoot either, because every member's reservation
is held until its response is committed. When a call's share does not leave room for ``MIN_OUTPUT`` output tokens,
``reserve`` raises ``BudgetExceeded`` *before* the request is sent, naming the
limit and the observed value. ``commit`` replaces the reservation by the real
usage and cost and raises if the real figures passed a limit after all
(an input estimate that was too low); ``warnings`` reports each dimension once
when it passes 80 %.

Iterations are passes of the loop, not calls: the run starts each one with
``begin_iteration`` (the pipeline and one verification round are iteration 1,
each retry round the next), which raises before a pass that ``maxIterations``
does not allow. ``maxModelCalls`` caps the calls themselves.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from loopkit import spec
from loopkit.engine.events import Tokens
from loopkit.errors import BudgetExceeded

#: Output tokens a call may produce when the budget does not constrain it further.
DEFAULT_OUTPUT_CAP = 4096
#: A call whose share of the budget leaves room for fewer output tokens is not sent.
MIN_OUTPUT = 64
#: The fraction of a limit at which a ``budget_warning`` is emitted.
WARN_AT = 0.8


@dataclass
class BudgetLimits:
    """The run's limits (``None``: no limit). Duration is in seconds here."""

    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_duration_s: float | None = None
    max_iterations: int | None = None
    max_model_calls: int | None = None

    @classmethod
    def from_spec(cls, budget: spec.Budget | None) -> BudgetLimits:
        if budget is None:
            return cls()
        return cls(
            max_tokens=budget.max_tokens,
            max_cost_usd=None if budget.max_cost_usd is None else float(budget.max_cost_usd),
            max_duration_s=(
                None
                if budget.max_duration_minutes is None
                else float(budget.max_duration_minutes) * 60.0
            ),
            max_iterations=budget.max_iterations,
            max_model_calls=budget.max_model_calls,
        )

    def as_dict(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.max_tokens is not None:
            out["maxTokens"] = self.max_tokens
        if self.max_cost_usd is not None:
            out["maxCostUsd"] = self.max_cost_usd
        if self.max_duration_s is not None:
            out["maxDurationMinutes"] = self.max_duration_s / 60.0
        if self.max_iterations is not None:
            out["maxIterations"] = self.max_iterations
        if self.max_model_calls is not None:
            out["maxModelCalls"] = self.max_model_calls
        return out


@dataclass
class Reservation:
    """One call's held share of the budget; ``max_output`` is the cap to send."""

    tokens: int
    cost: float
    max_output: int | None
    calls: int = 1
    open: bool = True


@dataclass
class Warning:
    limit: str
    allowed: float | None
    observed: float | None
    message: str


@dataclass
class BudgetTracker:
    """Usage against limits for one run (not thread-safe: one event loop)."""

    limits: BudgetLimits
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=-1.0)
    tokens: Tokens = field(default_factory=Tokens)
    cost: float = 0.0
    cost_known: bool = True
    #: Model calls made (answered), and passes of the loop begun.
    calls: int = 0
    iterations: int = 0
    reserved_tokens: int = 0
    reserved_cost: float = 0.0
    reserved_calls: int = 0
    elapsed_before: float = 0.0
    _warned: set[str] = field(default_factory=set)
    _pending: list[Warning] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.started < 0:
            self.started = self.clock()

    # ── Reading ──────────────────────────────────────────────────────────

    @property
    def elapsed(self) -> float:
        """Seconds spent on the run (including earlier attempts before a resume)."""
        return self.elapsed_before + self.clock() - self.started

    def remaining_seconds(self) -> float | None:
        if self.limits.max_duration_s is None:
            return None
        return self.limits.max_duration_s - self.elapsed

    def has_warnings(self) -> bool:
        """Return whether ``warnings()`` has anything to report."""
        return bool(self._pending)

    def warnings(self) -> list[Warning]:
        """Return (and forget) the warnings raised since the last call."""
        out, self._pending = self._pending, []
        return out

    # ── Before a call ────────────────────────────────────────────────────

    def check_time(self) -> None:
        remaining = self.remaining_seconds()
        if remaining is not None:
            if remaining <= 0:
                raise self.exceeded_time()
            self._maybe_warn(
                "maxDurationMinutes",
                self.elapsed / self.limits.max_duration_s if self.limits.max_duration_s else 0.0,
                self.limits.max_duration_s / 60.0 if self.limits.max_duration_s else None,
                self.elapsed / 60.0,
            )

    def exceeded_time(self) -> BudgetExceeded:
        allowed = (self.limits.max_duration_s or 0.0) / 60.0
        observed = self.elapsed / 60.0
        return BudgetExceeded(
            f"Exceeded the maxDurationMinutes limit of {allowed:g} "
            f"(duration={observed:.4f} minutes)",
            limit="maxDurationMinutes",
            allowed=allowed,
            observed=observed,
        )

    def reserve(
        self,
        input_tokens: int,
        *,
        input_price: float | None = None,
        output_price: float | None = None,
        output_cap: int = DEFAULT_OUTPUT_CAP,
        share: int = 1,
        step: str | None = None,
    ) -> Reservation:
        """Hold a call's share of the budget, or raise ``BudgetExceeded`` before it is sent.

        ``input_tokens`` is the estimate of the prompt; prices are USD per
        token (``None`` when unknown). The returned ``max_output`` is the
        largest answer the budget allows, never more than ``output_cap``;
        ``share`` is how many calls start together (a parallel group's
        width), so that each takes only its share of what is left.
        """
        lim = self.limits
        if lim.max_duration_s is not None:
            self.check_time()
        input_tokens = math.ceil(input_tokens * 1.05) + 8
        if lim.max_model_calls is not None:
            wanted = self.calls + self.reserved_calls + 1
            if wanted > lim.max_model_calls:
                raise BudgetExceeded(
                    f"Stopping before call {wanted}: it would exceed the maxModelCalls limit "
                    f"of {lim.max_model_calls} (calls={wanted})",
                    step=step,
                    limit="maxModelCalls",
                    allowed=lim.max_model_calls,
                    observed=wanted,
                )
        cap = output_cap
        if lim.max_tokens is not None:
            used = self.tokens.total
            available = lim.max_tokens - used - self.reserved_tokens - input_tokens
            least = min(MIN_OUTPUT, output_cap)
            each = available // max(share, 1)
            if each < least:
                observed = used + self.reserved_tokens + input_tokens + least
                raise BudgetExceeded(
                    f"Stopping before a call that would exceed the maxTokens limit of "
                    f"{lim.max_tokens} (tokens={observed}: used {used}, "
                    f"reserved {self.reserved_tokens}, this call needs at least {input_tokens + least})",
                    step=step,
                    limit="maxTokens",
                    allowed=lim.max_tokens,
                    observed=observed,
                )
            cap = min(cap, each)
        est_cost = 0.0
        if lim.max_cost_usd is not None:
            if input_price is None or output_price is None:
                self._warn_once(
                    "maxCostUsd:unknown",
                    Warning(
                        "maxCostUsd",
                        lim.max_cost_usd,
                        None,
                        "the model's price is unknown, so maxCostUsd cannot be enforced "
                        "for this call (register the model's prices with LiteLLM)",
                    ),
                )
            else:
                spent = self.cost + self.reserved_cost
                room = lim.max_cost_usd - spent - input_tokens * input_price
                least = min(MIN_OUTPUT, output_cap)
                min_cost = spent + input_tokens * input_price + least * output_price
                if room / max(share, 1) < least * output_price:
                    raise BudgetExceeded(
                        f"Stopping before a call that would exceed the maxCostUsd limit of "
                        f"{lim.max_cost_usd:g} (cost={min_cost:.6f}: spent {self.cost:.6f}, "
                        f"reserved {self.reserved_cost:.6f})",
                        step=step,
                        limit="maxCostUsd",
                        allowed=lim.max_cost_usd,
                        observed=min_cost,
                    )
                if output_price > 0:
                    cap = min(cap, int(room / output_price / max(share, 1)))
                est_cost = input_tokens * input_price + cap * output_price
        held = input_tokens + cap if lim.max_tokens is not None else 0
        self.reserved_tokens += held
        self.reserved_cost += est_cost
        self.reserved_calls += 1
        return Reservation(tokens=held, cost=est_cost, max_output=cap)

    # ── After a call ─────────────────────────────────────────────────────

    def release(self, reservation: Reservation) -> None:
        """Give back a reservation whose call produced no usage (it failed)."""
        if reservation.open:
            reservation.open = False
            self.reserved_tokens -= reservation.tokens
            self.reserved_cost -= reservation.cost
            self.reserved_calls -= reservation.calls

    def commit(
        self,
        reservation: Reservation | None,
        tokens: Tokens,
        cost: float | None,
        *,
        step: str | None = None,
    ) -> None:
        """Record a call's real usage; raise ``BudgetExceeded`` if a limit is now passed."""
        if reservation is not None:
            self.release(reservation)
        self.record(tokens, cost, calls=1)
        self.check_after(step)

    def record(self, tokens: Tokens, cost: float | None, calls: int = 0) -> None:
        """Add usage without checking (a resumed run's earlier steps)."""
        self.tokens.add(tokens)
        self.calls += calls
        if cost is None:
            self.cost_known = False
        else:
            self.cost += cost

    def check_after(self, step: str | None = None) -> None:
        lim = self.limits
        if lim.max_tokens is not None:
            total = self.tokens.total
            if total > lim.max_tokens:
                raise BudgetExceeded(
                    f"Exceeded the maxTokens limit of {lim.max_tokens} (tokens={total})",
                    step=step,
                    limit="maxTokens",
                    allowed=lim.max_tokens,
                    observed=total,
                )
            self._maybe_warn("maxTokens", total / lim.max_tokens, lim.max_tokens, total)
        if lim.max_cost_usd is not None:
            if self.cost > lim.max_cost_usd:
                raise BudgetExceeded(
                    f"Exceeded the maxCostUsd limit of {lim.max_cost_usd:g} (cost={self.cost:.6f})",
                    step=step,
                    limit="maxCostUsd",
                    allowed=lim.max_cost_usd,
                    observed=self.cost,
                )
            self._maybe_warn(
                "maxCostUsd", self.cost / lim.max_cost_usd, lim.max_cost_usd, self.cost
            )
        if lim.max_model_calls is not None:
            self._maybe_warn(
                "maxModelCalls",
                self.calls / lim.max_model_calls,
                lim.max_model_calls,
                self.calls,
            )
        if lim.max_duration_s is not None and self.elapsed >= lim.max_duration_s:
            raise self.exceeded_time()

    # ── Iterations ───────────────────────────────────────────────────────

    def allows_iteration(self, number: int) -> bool:
        """Return whether ``maxIterations`` lets pass ``number`` (1-based) start."""
        return self.limits.max_iterations is None or number <= self.limits.max_iterations

    def iteration_exceeded(self, number: int) -> BudgetExceeded:
        allowed = self.limits.max_iterations or 0
        return BudgetExceeded(
            f"Stopping before iteration {number}: it would exceed the maxIterations limit "
            f"of {allowed} (iterations={number})",
            limit="maxIterations",
            allowed=allowed,
            observed=number,
        )

    def begin_iteration(self, number: int) -> None:
        """Start pass ``number`` of the loop, or raise ``BudgetExceeded`` before it.

        ``number`` is the pass itself, not an increment: a resumed run replays
        its passes from the first and counts each once. A retry pass that
        brings the count to 80 % of the limit is warned about (a first pass
        never is: ``maxIterations: 1`` is a choice, not a runaway).
        """
        if not self.allows_iteration(number):
            raise self.iteration_exceeded(number)
        self.iterations = number
        lim = self.limits.max_iterations
        if lim is not None and number > 1:
            self._maybe_warn("maxIterations", number / lim, lim, number)

    def _maybe_warn(self, limit: str, ratio: float, allowed: float | None, observed: float) -> None:
        if ratio >= WARN_AT:
            self._warn_once(
                limit,
                Warning(
                    limit,
                    allowed,
                    observed,
                    f"{limit} is at {ratio:.0%} of its limit ({observed:g} of {allowed:g})",
                ),
            )

    def _warn_once(self, key: str, warning: Warning) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self._pending.append(warning)

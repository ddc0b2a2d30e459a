"""Hard budget limits: check before each model call (reserve), check after (commit).

A call first *reserves* its estimated share: input tokens counted from the
rendered messages (with a margin), an output cap, its estimated cost and one
iteration. Under a token or cost limit the output cap is what the provider is
told (``max_tokens``), so a provider that honours it can never push a run past
``maxTokens``; a wide parallel fan-out cannot overshoot either, because every
member's reservation is held until its response is committed. The cap is what
the call needs (the step's ``maxOutputTokens``, else ``DEFAULT_OUTPUT_CAP``,
else the rest of a smaller budget), never a fragment of it: a call that does
not fit beside the calls in flight waits for them (``WaitForRoom``,
``room_freed``), and a call the rest of the budget cannot hold (its
``maxOutputTokens``, or ``MIN_OUTPUT`` tokens) makes ``reserve`` raise
``BudgetExceeded`` *before* the request is sent, naming the limit and the
observed value. ``commit`` replaces the reservation by the real
usage and cost and raises if the real figures passed a limit after all
(an input estimate that was too low); ``warnings`` reports each dimension once
when it passes 80 %.

Iterations are passes of the loop, not calls: the run starts each one with
``begin_iteration`` (the pipeline and one verification round are iteration 1,
each retry round the next), which raises before a pass that ``maxIterations``
does not allow. ``maxModelCalls`` caps the calls themselves.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from loopkit import spec
from loopkit.engine.events import Tokens
from loopkit.errors import BudgetExceeded, WaitForRoom

#: The output cap of a call under a token or cost limit when its step sets no
#: ``maxOutputTokens`` (without a limit, no cap is sent).
DEFAULT_OUTPUT_CAP = 4096
#: A call the rest of the budget leaves fewer output tokens than this is not sent.
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
    #: The limit whose rest set ``max_output`` (below ``DEFAULT_OUTPUT_CAP``), if any:
    #: an answer cut there ran out of budget (``BudgetTracker.cut_short``).
    limited_by: str | None = None


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
    #: Reservations not yet committed or released (the calls in flight).
    in_flight: int = 0
    elapsed_before: float = 0.0
    _warned: set[str] = field(default_factory=set)
    _pending: list[Warning] = field(default_factory=list)
    _waiters: list[asyncio.Future[None]] = field(default_factory=list)

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
        output_cap: int | None = None,
        step: str | None = None,
    ) -> Reservation:
        """Hold a call's share of the budget, or raise ``BudgetExceeded`` before it is sent.

        ``input_tokens`` is the estimate of the prompt; prices are USD per
        token (``None`` when unknown); ``output_cap`` is the answer the call
        needs room for (a step's ``maxOutputTokens``; ``None``: not said).

        The returned ``max_output`` is the cap to send. Without a token or
        (priced) cost limit it is ``output_cap`` (``None``: send none). Under
        one, it is ``output_cap``, else ``DEFAULT_OUTPUT_CAP``, else (when the
        rest of the budget is smaller) all that is left. A budget never
        shrinks it to a fragment of that: when calls in flight hold the room
        it needs, ``WaitForRoom`` is raised (await ``room_freed()`` and try
        again); when even the whole rest of the budget is too small (for
        ``output_cap``, or ``MIN_OUTPUT`` tokens without one),
        ``BudgetExceeded``.
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
        return self._reserve_output(input_tokens, input_price, output_price, output_cap, step)

    def _reserve_output(
        self,
        input_tokens: int,
        input_price: float | None,
        output_price: float | None,
        output_cap: int | None,
        step: str | None,
    ) -> Reservation:
        """Hold the call's input and output cap (see ``reserve``)."""
        lim = self.limits
        # Output tokens the rest of each limit could pay for, other calls' reservations aside.
        tokens_rest = cost_rest = None
        if lim.max_tokens is not None:
            tokens_rest = lim.max_tokens - self.tokens.total - input_tokens
        cost_room = 0.0
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
                cost_room = lim.max_cost_usd - self.cost - input_tokens * input_price
                if output_price > 0:
                    cost_rest = math.floor(cost_room / output_price)
                elif cost_room < 0:
                    cost_rest = -1
        if tokens_rest is None and cost_rest is None:  # no limit constrains this answer
            self.reserved_calls += 1
            self.in_flight += 1
            return Reservation(tokens=0, cost=0.0, max_output=output_cap)
        if cost_rest is None or (tokens_rest is not None and tokens_rest <= cost_rest):
            limit, rest = "maxTokens", cast(int, tokens_rest)
        else:
            limit, rest = "maxCostUsd", cost_rest
        least = output_cap if output_cap is not None else MIN_OUTPUT
        if rest < least:
            raise self._cannot_afford(
                limit, input_tokens, least, output_cap, input_price, output_price, step
            )
        need = output_cap if output_cap is not None else min(DEFAULT_OUTPUT_CAP, rest)
        held = input_tokens + need if tokens_rest is not None else 0
        est_cost = (
            input_tokens * input_price + need * output_price
            if input_price is not None and output_price is not None
            else 0.0
        )
        fits = (tokens_rest is None or tokens_rest - self.reserved_tokens >= need) and (
            cost_rest is None or cost_room - self.reserved_cost >= need * (output_price or 0)
        )
        # Never a fragment: the room other calls hold comes back when they commit.
        if not fits and self.in_flight > 0:
            raise WaitForRoom()
        self.reserved_tokens += held
        self.reserved_cost += est_cost
        self.reserved_calls += 1
        self.in_flight += 1
        by = limit if output_cap is None and rest < DEFAULT_OUTPUT_CAP else None
        return Reservation(tokens=held, cost=est_cost, max_output=need, limited_by=by)

    def cut_short(self, reservation: Reservation, step: str | None = None) -> BudgetExceeded:
        """Return the error of an answer cut at the rest of the budget (``limited_by``)."""
        limit = reservation.limited_by or "maxTokens"
        if limit == "maxTokens":
            allowed, observed = float(self.limits.max_tokens or 0), float(self.tokens.total)
            shown = f"tokens={self.tokens.total}"
        else:
            allowed, observed = self.limits.max_cost_usd or 0.0, self.cost
            shown = f"cost={self.cost:.6f}"
        return BudgetExceeded(
            f"{step or 'a call'}: the answer was cut at the {reservation.max_output} output "
            f"tokens left within the {limit} limit of {allowed:g} ({shown})",
            step=step,
            limit=limit,
            allowed=allowed,
            observed=observed,
        )

    def _cannot_afford(
        self,
        limit: str,
        input_tokens: int,
        least: int,
        output_cap: int | None,
        input_price: float | None,
        output_price: float | None,
        step: str | None,
    ) -> BudgetExceeded:
        lim = self.limits
        cap = f": its input and maxOutputTokens {output_cap}" if output_cap is not None else ""
        if limit == "maxTokens":
            used = self.tokens.total
            observed: float = used + input_tokens + least
            return BudgetExceeded(
                f"Stopping before a call that would exceed the maxTokens limit of "
                f"{lim.max_tokens} (tokens={observed}: used {used}, "
                f"this call needs at least {input_tokens + least}{cap})",
                step=step,
                limit="maxTokens",
                allowed=float(lim.max_tokens or 0),
                observed=observed,
            )
        observed = self.cost + input_tokens * (input_price or 0) + least * (output_price or 0)
        return BudgetExceeded(
            f"Stopping before a call that would exceed the maxCostUsd limit of "
            f"{lim.max_cost_usd:g} (cost={observed:.6f}: spent {self.cost:.6f}, "
            f"this call needs at least {observed - self.cost:.6f}{cap})",
            step=step,
            limit="maxCostUsd",
            allowed=lim.max_cost_usd or 0.0,
            observed=observed,
        )

    async def room_freed(self) -> None:
        """Wait until a reservation is given back (after ``reserve`` raised ``WaitForRoom``)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    # ── After a call ─────────────────────────────────────────────────────

    def release(self, reservation: Reservation) -> None:
        """Give back a reservation whose call produced no usage (it failed)."""
        if reservation.open:
            reservation.open = False
            self.reserved_tokens -= reservation.tokens
            self.reserved_cost -= reservation.cost
            self.reserved_calls -= reservation.calls
            self.in_flight -= 1
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

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

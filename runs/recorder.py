"""Store run events as RunEvent rows (numbered without gaps) and keep the run's totals.

``record_event`` is the one writer of RunEvent rows. It numbers events
itself (``Run.last_seq + 1`` under a row lock), so the numbering stays
gap-free and unique across a worker crash and resume even if the engine's
own counter restarts; the engine's number is kept in the payload as
``engine_seq``. The row is committed before it is pushed to the browsers.
In the same transaction it adds each agent step's tokens and cost to the
run's ``RunModel`` row of that step's model (verification rounds under ""),
so what a run spent per model is exact and filterable while it runs.

``record_lost_calls`` is called when a run is taken over from a worker that
stopped: the agent steps that worker had started and not finished made model
calls that were paid but whose usage no event carries, and the resumed run
makes them again. It records them as one ``calls_lost`` event; the run's
``lost_calls`` counts them and its cost is no longer whole (``cost_known``
false, ``cost_usd`` the known part: ``Run.cost_label``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from runs import live
from runs.models import Checkpoint, Run, RunEvent, RunModel

# Fields of an engine event that are the envelope, not the payload.
_ENVELOPE = ("type", "seq", "run_id")


def payload_of(event: dict[str, Any]) -> dict[str, Any]:
    """Return an engine event's data without its envelope (the engine's seq is kept)."""
    data = {k: v for k, v in event.items() if k not in _ENVELOPE}
    if event.get("seq"):
        data["engine_seq"] = event["seq"]
    return data


def _prices_known(run: Run) -> bool:
    """Whether every recorded call had a known price (``cost_usd`` is then their sum).

    ``cost_known`` alone says less: it is also false once calls were lost, while
    the cost of the calls recorded is still known and still added up.
    """
    return run.cost_known or run.cost_usd is not None


def _totals_update(run: Run, type_: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Return the Run field updates an event implies (live totals for the run page)."""
    fields: dict[str, Any] = {}
    model = payload.get("model")
    if model and model not in run.models_used:
        fields["models_used"] = [*run.models_used, model]
    counted = (type_ == "step_finished" and payload.get("kind") == "agent") or (
        type_ == "verification_round"
    )
    if counted and not payload.get("resumed"):
        tokens = payload.get("tokens") or {}
        fields["tokens_in"] = F("tokens_in") + int(tokens.get("input", 0))
        fields["tokens_out"] = F("tokens_out") + int(tokens.get("output", 0))
        fields["tokens_cached"] = F("tokens_cached") + int(tokens.get("cached_read", 0))
        fields["tokens_reasoning"] = F("tokens_reasoning") + int(tokens.get("reasoning", 0))
        cost = payload.get("cost")
        if cost is None:
            fields["cost_known"] = False
            fields["cost_usd"] = None
        elif _prices_known(run):
            fields["cost_usd"] = (run.cost_usd or Decimal(0)) + Decimal(str(cost))
    if type_ == "calls_lost":
        # Paid, usage unknown: the cost is no longer whole; what is known stays shown.
        fields["lost_calls"] = run.lost_calls + int(payload.get("calls") or 0)
        fields["cost_known"] = False
        if _prices_known(run):
            fields["cost_usd"] = run.cost_usd or Decimal(0)
    if type_ == "verification_round":
        fields["verification_rounds"] = int(payload.get("round") or 0)
        fields["final_score"] = payload.get("score")
    if type_ == "step_finished" and payload.get("kind") == "agent" and payload.get("label"):
        key = str(payload["label"])
        fields["outputs"] = {**run.outputs, key: payload.get("output")}
    if type_ == "run_finished":
        tokens = payload.get("tokens") or {}
        cost = payload.get("cost")
        lost = max(run.lost_calls, int(payload.get("lost_calls") or 0))
        # The engine's cost_known says whether every price was known (and its payload has
        # lost_calls when there are any). A payload written from the run's own row (a run
        # failed without a worker) says false for lost calls alone: the live tally, which
        # kept cost_usd, tells that apart from an unknown price.
        prices_known = cost is not None and bool(payload.get("cost_known", True))
        if cost is not None and lost and "lost_calls" not in payload:
            prices_known = run.cost_usd is not None
        fields.update(
            tokens_in=int(tokens.get("input", 0)),
            tokens_out=int(tokens.get("output", 0)),
            tokens_cached=int(tokens.get("cached_read", 0)),
            tokens_reasoning=int(tokens.get("reasoning", 0)),
            # Never whole with lost calls: their usage is in no total.
            cost_known=prices_known and not lost,
            cost_usd=Decimal(str(cost)) if prices_known else None,
        )
        if payload.get("rounds"):
            fields["verification_rounds"] = int(payload["rounds"])
    return fields


class ModelUsage:
    """Tokens and cost per model, added up from engine events (see ``RunModel``)."""

    def __init__(self) -> None:
        # model -> [tokens_in, tokens_out, cost (None: unknown)]
        self.models: dict[str, list[Any]] = {}

    def add(self, type_: str, payload: dict[str, Any]) -> None:
        """Count one event: an agent step under its model, a verification round under ""."""
        if type_ == "calls_lost":
            # A lost call's cost is unknown: so is its model's (like an unknown price).
            for step in payload.get("steps") or []:
                if step.get("model"):
                    self.models.setdefault(str(step["model"]), [0, 0, Decimal(0)])[2] = None
            return
        model = str(payload.get("model") or "")
        if model:
            self.models.setdefault(model, [0, 0, Decimal(0)])
        counted = (type_ == "step_finished" and payload.get("kind") == "agent") or (
            type_ == "verification_round"
        )
        if not counted or payload.get("resumed"):
            return
        if type_ == "verification_round":
            model = ""  # the engine records a round's checkers, not a model
        entry = self.models.setdefault(model, [0, 0, Decimal(0)])
        tokens = payload.get("tokens") or {}
        entry[0] += int(tokens.get("input", 0))
        entry[1] += int(tokens.get("output", 0))
        cost = payload.get("cost")
        if cost is None or entry[2] is None:
            entry[2] = None
        else:
            entry[2] += Decimal(str(cost))


def _store_usage(run: Run, usage: ModelUsage) -> None:
    """Add *usage* to the run's RunModel rows (one UPDATE per model, an INSERT for a new one).

    ``F("cost_usd") + x`` stays NULL once NULL: an unknown price stays unknown.
    """
    for model, (tokens_in, tokens_out, cost) in usage.models.items():
        cost = None if cost is None else cost.quantize(Decimal("0.000001"))
        updated = RunModel.objects.filter(run_id=run.pk, model=model).update(
            tokens_in=F("tokens_in") + tokens_in,
            tokens_out=F("tokens_out") + tokens_out,
            cost_usd=None if cost is None else F("cost_usd") + cost,
        )
        if not updated:
            RunModel.objects.create(
                run_id=run.pk,
                team_id=run.team_id,
                model=model,
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                cost_usd=cost,
                created_at=run.created_at,
            )


def record_events(run_id: int, events: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Store events of run *run_id* in one transaction, update its totals, then push them.

    One commit for a batch: a sink that falls behind catches up in a few
    commits instead of one per event.
    """
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        stored = _store_events(run, events)
    return _push(run_id, stored)


def _store_events(run: Run, events: list[tuple[str, dict[str, Any]]]) -> list[RunEvent]:
    """Store *events* of *run* (locked by the caller's transaction) and update its totals."""
    from django.db.models.expressions import Combinable

    stored: list[RunEvent] = []
    seq = run.last_seq
    usage = ModelUsage()
    for type_, payload in events:
        seq += 1
        stored.append(RunEvent.objects.create(run=run, seq=seq, type=type_, payload=payload))
        usage.add(type_, payload)
        updates = _totals_update(run, type_, payload)
        if updates:
            Run.objects.filter(pk=run.pk).update(**updates)
            for name, value in updates.items():
                if not isinstance(value, Combinable):
                    setattr(run, name, value)
    if not run.is_test:  # the per-model figures are the dashboard's: no test run of a draft
        _store_usage(run, usage)
    Run.objects.filter(pk=run.pk).update(last_seq=seq, heartbeat_at=timezone.now())
    run.last_seq = seq
    return stored


def _push(run_id: int, stored: list[RunEvent]) -> list[dict[str, Any]]:
    """Push committed events to the run's watchers; return them as messages."""
    messages = [event.as_message() for event in stored]
    for message in messages:
        live.push(run_id, message)
    return messages


def finished_payload(run: Run, status: str, error: str = "") -> dict[str, Any]:
    """Return the ``run_finished`` payload of a run ended outside the engine (a crash,
    a cancel while queued or suspended, a lost worker): the totals it has stored."""
    end = run.finished_at or timezone.now()
    return {
        "loop": run.loop_name,
        "status": status,
        "error": error or None,
        "duration_ms": 0.0
        if run.started_at is None
        else (end - run.started_at).total_seconds() * 1000,
        "tokens": {
            "input": run.tokens_in,
            "output": run.tokens_out,
            "cached_read": run.tokens_cached,
            "reasoning": run.tokens_reasoning,
        },
        "cost": None if run.cost_usd is None else float(run.cost_usd),
        "cost_known": run.cost_known,
    }


def record_event(run_id: int, type_: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Store one event of run *run_id*, update the run's totals, then push it; return it."""
    return record_events(run_id, [(type_, payload)])[0]


def record_engine_event(run_id: int, event: dict[str, Any]) -> dict[str, Any]:
    """Store one engine event (``Event.as_dict()``)."""
    return record_event(run_id, str(event["type"]), payload_of(event))


def record_engine_events(run_id: int, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Store engine events (``Event.as_dict()``) in one transaction."""
    return record_events(run_id, [(str(e["type"]), payload_of(e)) for e in events])


#: The events that tell which agent steps an attempt left in flight.
_FLIGHT_EVENTS = ("step_started", "step_finished", "step_failed", "run_recovered", "calls_lost")


def _in_flight(rows: list[tuple[str, dict[str, Any]]], attempt: int) -> list[dict[str, Any]]:
    """Return the agent steps attempt *attempt* started live and did not finish.

    An attempt's events run from the ``run_recovered`` event that began it (the
    first attempt: from the start) to the next ``run_recovered``. A step is
    finished by ``step_finished`` or by a ``step_failed`` that is not retried
    (one that is retried goes on calling) of the same key and round.
    """
    begun = attempt <= 1
    started: dict[tuple[str, int], dict[str, Any]] = {}
    for type_, p in rows:
        if type_ == "run_recovered":
            if begun:
                break
            begun = int(p.get("attempt") or 0) == attempt
            continue
        if not begun or p.get("kind") != "agent":
            continue
        at = (str(p.get("key")), int(p.get("round") or 1))
        if type_ == "step_started" and not p.get("resumed"):
            started[at] = {"key": at[0], "label": p.get("label"), "round": at[1]}
            if p.get("model"):
                started[at]["model"] = p["model"]
        elif type_ == "step_finished" or (type_ == "step_failed" and not p.get("will_retry")):
            started.pop(at, None)
    return list(started.values())


def record_lost_calls(run_id: int, attempt: int | None = None) -> int:
    """Record the model calls attempt *attempt* of run *run_id* lost; return how many.

    Call it once the run has been taken over from a worker that stopped
    (*attempt*: the attempt that worker ran, by default ``Run.attempt - 1``,
    the run having just been given the next one). Each agent step that attempt
    started live and neither finished nor checkpointed had a model call in
    flight: paid, its usage in no event, and made again on resume. They are
    recorded as one ``calls_lost`` event ``{"calls", "steps": [{"key",
    "label", "round", "model"}], "attempt"}``, added to ``Run.lost_calls``, and
    the run's cost is no longer whole (``cost_known`` false, ``cost_usd`` kept
    as the known part; each such step's model's ``RunModel`` cost unknown).

    One transaction, under the run's row lock; called again for the same
    attempt it records nothing. A step counts one call: one that had made
    tool-use rounds or answered again had made more (a lower bound).
    """
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        attempt = run.attempt - 1 if attempt is None else attempt
        rows = list(
            RunEvent.objects.filter(run_id=run_id, type__in=_FLIGHT_EVENTS)
            .order_by("seq")
            .values_list("type", "payload")
        )
        if attempt < 1 or any(
            type_ == "calls_lost" and p.get("attempt") == attempt for type_, p in rows
        ):
            return 0
        steps = _in_flight(rows, attempt)
        # A step whose checkpoint was saved finished (its events died with the worker):
        # the resumed run answers it from the checkpoint, so its call is not lost.
        keys = {f"r{s['round']}:{s['key']}": s for s in steps}
        done = set(
            Checkpoint.objects.filter(run_id=run_id, key__in=list(keys)).values_list(
                "key", flat=True
            )
        )
        lost = [s for key, s in keys.items() if key not in done]
        if not lost:
            return 0
        payload = {"calls": len(lost), "steps": lost, "attempt": attempt}
        stored = _store_events(run, [("calls_lost", payload)])
    _push(run_id, stored)
    return len(lost)

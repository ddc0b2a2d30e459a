"""Store run events as RunEvent rows (numbered without gaps) and keep the run's totals.

``record_event`` is the one writer of RunEvent rows. It numbers events
itself (``Run.last_seq + 1`` under a row lock), so the numbering stays
gap-free and unique across a worker crash and resume even if the engine's
own counter restarts; the engine's number is kept in the payload as
``engine_seq``. The row is committed before it is pushed to the browsers.
In the same transaction it adds each agent step's tokens and cost to the
run's ``RunModel`` row of that step's model (verification rounds under ""),
so what a run spent per model is exact and filterable while it runs.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from runs import live
from runs.models import Run, RunEvent, RunModel

# Fields of an engine event that are the envelope, not the payload.
_ENVELOPE = ("type", "seq", "run_id")


def payload_of(event: dict[str, Any]) -> dict[str, Any]:
    """Return an engine event's data without its envelope (the engine's seq is kept)."""
    data = {k: v for k, v in event.items() if k not in _ENVELOPE}
    if event.get("seq"):
        data["engine_seq"] = event["seq"]
    return data


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
        elif run.cost_known:
            fields["cost_usd"] = (run.cost_usd or Decimal(0)) + Decimal(str(cost))
    if type_ == "verification_round":
        fields["verification_rounds"] = int(payload.get("round") or 0)
        fields["final_score"] = payload.get("score")
    if type_ == "step_finished" and payload.get("kind") == "agent" and payload.get("label"):
        key = str(payload["label"])
        fields["outputs"] = {**run.outputs, key: payload.get("output")}
    if type_ == "run_finished":
        tokens = payload.get("tokens") or {}
        cost = payload.get("cost")
        fields.update(
            tokens_in=int(tokens.get("input", 0)),
            tokens_out=int(tokens.get("output", 0)),
            tokens_cached=int(tokens.get("cached_read", 0)),
            tokens_reasoning=int(tokens.get("reasoning", 0)),
            cost_known=bool(payload.get("cost_known", cost is not None)) and cost is not None,
            cost_usd=None if cost is None else Decimal(str(cost)),
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
    from django.db.models.expressions import Combinable

    stored: list[RunEvent] = []
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        seq = run.last_seq
        usage = ModelUsage()
        for type_, payload in events:
            seq += 1
            stored.append(RunEvent.objects.create(run=run, seq=seq, type=type_, payload=payload))
            usage.add(type_, payload)
            updates = _totals_update(run, type_, payload)
            if updates:
                Run.objects.filter(pk=run_id).update(**updates)
                for name, value in updates.items():
                    if not isinstance(value, Combinable):
                        setattr(run, name, value)
        _store_usage(run, usage)
        Run.objects.filter(pk=run_id).update(last_seq=seq, heartbeat_at=timezone.now())
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

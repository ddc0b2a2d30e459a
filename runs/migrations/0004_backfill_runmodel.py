"""Fill RunModel for the runs recorded before it existed.

A run's split per model is added up from its stored ``step_finished`` and
``verification_round`` events, as the recorder does. A run without such events
(imported, or recorded before events carried figures) gets its totals under its
one model, or, when it used several, under "" with an empty row per model: its
split is not known, and the runs list's model filter still finds it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import migrations

BATCH = 5000


def backfill(apps: Any, schema_editor: Any) -> None:
    from runs.recorder import ModelUsage

    Run = apps.get_model("runs", "Run")
    RunEvent = apps.get_model("runs", "RunEvent")
    RunModel = apps.get_model("runs", "RunModel")
    usages: dict[int, ModelUsage] = {}
    events = (
        RunEvent.objects.filter(type__in=("step_finished", "verification_round"))
        .values_list("run_id", "type", "payload")
        .iterator(chunk_size=BATCH)
    )
    for run_id, type_, payload in events:
        usages.setdefault(run_id, ModelUsage()).add(type_, payload or {})
    rows: list[Any] = []
    fields = (
        "id",
        "team_id",
        "created_at",
        "models_used",
        "tokens_in",
        "tokens_out",
        "cost_usd",
        "cost_known",
    )
    for run in Run.objects.values(*fields).iterator(chunk_size=BATCH):
        usage = usages.pop(run["id"], None)
        models = [str(m) for m in run["models_used"] or [] if m]
        if usage is None:
            usage = ModelUsage()
            cost = run["cost_usd"] if run["cost_known"] else None
            if models or run["tokens_in"] or run["tokens_out"] or cost != 0:
                owner = models[0] if len(models) == 1 else ""
                usage.models[owner] = [run["tokens_in"], run["tokens_out"], cost]
        for model in models:
            usage.models.setdefault(model, [0, 0, Decimal(0)])
        for model, (tokens_in, tokens_out, cost) in usage.models.items():
            rows.append(
                RunModel(
                    run_id=run["id"],
                    team_id=run["team_id"],
                    model=model,
                    tokens_in=tokens_in,
                    tokens_out=tokens_out,
                    cost_usd=None if cost is None else Decimal(cost).quantize(Decimal("0.000001")),
                    created_at=run["created_at"],
                )
            )
        if len(rows) >= BATCH:
            RunModel.objects.bulk_create(rows)
            rows = []
    RunModel.objects.bulk_create(rows)


def forget(apps: Any, schema_editor: Any) -> None:
    apps.get_model("runs", "RunModel").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("runs", "0003_runmodel")]

    operations = [migrations.RunPython(backfill, forget)]

"""The dashboard's figures for one team and one period.

Every figure is one database query whose count does not depend on the number
of runs: totals and breakdowns are aggregated by the database, time series are
bucketed there with ``Trunc``. Python only fills empty buckets and divides.

Costs are the engine's recorded figures. A run whose price was unknown
(``cost_known`` false or ``cost_usd`` null) adds nothing to the cost totals and is
counted in ``unknown_cost_runs`` instead, so a reader never mistakes it for a
free run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import yaml
from django.db import connection
from django.db.models import Avg, Count, F, Max, Q, QuerySet, Sum, TextField
from django.db.models.functions import Cast, Coalesce, Trunc

from dashboard.periods import Period, iso
from runs.models import Run

SUCCEEDED = "succeeded"
VERIFICATION_FAILED = "verification_failed"
BUDGET_EXCEEDED = "budget_exceeded"
TERMINAL = ("succeeded", "failed", "verification_failed", "budget_exceeded", "cancelled")
ACTIVE = ("queued", "running", "waiting_for_approval")
LOW_GRADES = ("C", "D", "F")
TOP_N = 10

KNOWN_COST = Q(cost_known=True, cost_usd__isnull=False)
UNKNOWN_COST = ~KNOWN_COST
VERIFIED = Q(verification_rounds__gt=0)


def team_runs(team: Any) -> QuerySet[Run]:
    """Return every run of *team* (the only entry point: no figure crosses teams)."""
    return Run.objects.for_team(team)


def period_runs(team: Any, period: Period) -> QuerySet[Run]:
    """Return *team*'s runs created inside *period*."""
    return team_runs(team).filter(created_at__gte=period.start, created_at__lt=period.end)


def _metrics() -> dict[str, Any]:
    """Return the aggregates shared by totals, series and breakdowns."""
    return {
        "runs": Count("pk"),
        "succeeded": Count("pk", filter=Q(status=SUCCEEDED)),
        "finished": Count("pk", filter=Q(status__in=TERMINAL)),
        "verified_passed": Count("pk", filter=VERIFIED & Q(status=SUCCEEDED)),
        "verified_failed": Count("pk", filter=VERIFIED & Q(status=VERIFICATION_FAILED)),
        "tokens_in": Coalesce(Sum("tokens_in"), 0),
        "tokens_out": Coalesce(Sum("tokens_out"), 0),
        "cost": Sum("cost_usd", filter=KNOWN_COST),
        "known_cost_runs": Count("pk", filter=KNOWN_COST),
        "unknown_cost_runs": Count("pk", filter=UNKNOWN_COST),
    }


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _money(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.000001"))


def _finish(row: dict[str, Any]) -> dict[str, Any]:
    """Add the derived rates to an aggregate row and normalise its cost."""
    verified = row["verified_passed"] + row["verified_failed"]
    # No known cost is not a zero cost: the figure stays unknown (None).
    row["cost"] = _money(row["cost"]) if row["known_cost_runs"] else None
    row["tokens"] = row["tokens_in"] + row["tokens_out"]
    row["success_rate"] = _rate(row["succeeded"], row["finished"])
    row["verification_pass_rate"] = _rate(row["verified_passed"], verified)
    row["cost_per_run"] = (
        (row["cost"] / row["known_cost_runs"]).quantize(Decimal("0.000001"))
        if row["cost"] is not None
        else None
    )
    return row


def totals(team: Any, period: Period) -> dict[str, Any]:
    """Return the period's totals: runs, rates, rounds, tokens, cost, unknown-cost runs."""
    row = period_runs(team, period).aggregate(
        **_metrics(),
        failed=Count("pk", filter=Q(status="failed")),
        verification_failed=Count("pk", filter=Q(status=VERIFICATION_FAILED)),
        budget_exceeded=Count("pk", filter=Q(status=BUDGET_EXCEEDED)),
        cancelled=Count("pk", filter=Q(status="cancelled")),
        active=Count("pk", filter=Q(status__in=ACTIVE)),
        verified_runs=Count("pk", filter=VERIFIED),
        mean_rounds=Avg("verification_rounds", filter=VERIFIED),
    )
    row["mean_rounds"] = round(row["mean_rounds"], 2) if row["mean_rounds"] is not None else None
    return _finish(row)


def series(team: Any, period: Period) -> list[dict[str, Any]]:
    """Return one row per bucket of the period (empty buckets included), oldest first."""
    return _bucketed(period_runs(team, period), period)


def _bucketed(runs: QuerySet[Run], period: Period) -> list[dict[str, Any]]:
    rows = (
        runs.annotate(bucket=Trunc("created_at", period.bucket, tzinfo=UTC))
        .values("bucket")
        .annotate(**_metrics())
        .order_by("bucket")
    )
    by_bucket = {_as_utc(row["bucket"]): row for row in rows}
    out = []
    for start in period.buckets():
        row = by_bucket.get(start)
        if row is None:
            row = {key: 0 for key in _metrics()}
            row["cost"] = None
        row = _finish(dict(row))
        row["bucket"] = iso(start)
        out.append(row)
    return out


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def by_loop(team: Any, period: Period) -> list[dict[str, Any]]:
    """Return the period's figures per loop, most expensive first.

    Runs of a deleted loop (``loop`` null) share one row named by their
    recorded ``loop_name``.
    """
    rows = (
        period_runs(team, period)
        .values("loop_id")
        .annotate(
            loop_name=Coalesce(Max("loop__name"), Max("loop_name")),
            **_metrics(),
        )
        .order_by(F("cost").desc(nulls_last=True), "-runs", "loop_name")
    )
    return [_finish(dict(row)) for row in rows]


def by_model(team: Any, period: Period) -> list[dict[str, Any]]:
    """Return the period's figures per model (from ``models_used``), most expensive first.

    A run that used several models counts in the row of each: the run records
    its totals, not a split per model. Runs that used no model (queued, dry
    runs) share the row whose ``model_name`` is None.
    """
    run = Run._meta
    col = {f.name: f.column for f in run.concrete_fields}
    if connection.vendor == "postgresql":
        unnest = f"LEFT JOIN LATERAL jsonb_array_elements_text(r.{col['models_used']}::jsonb) AS m(value) ON true"
    else:
        unnest = f"LEFT JOIN json_each(r.{col['models_used']}) AS m ON 1"
    known = f"(r.{col['cost_known']} AND r.{col['cost_usd']} IS NOT NULL)"
    verified = f"r.{col['verification_rounds']} > 0"
    status = f"r.{col['status']}"
    terminal = ", ".join(["%s"] * len(TERMINAL))
    sql = f"""
        SELECT m.value AS model_name,
               COUNT(*) AS runs,
               SUM(CASE WHEN {status} = %s THEN 1 ELSE 0 END) AS succeeded,
               SUM(CASE WHEN {status} IN ({terminal}) THEN 1 ELSE 0 END) AS finished,
               SUM(CASE WHEN {verified} AND {status} = %s THEN 1 ELSE 0 END) AS verified_passed,
               SUM(CASE WHEN {verified} AND {status} = %s THEN 1 ELSE 0 END) AS verified_failed,
               COALESCE(SUM(r.{col["tokens_in"]}), 0) AS tokens_in,
               COALESCE(SUM(r.{col["tokens_out"]}), 0) AS tokens_out,
               SUM(CASE WHEN {known} THEN r.{col["cost_usd"]} END) AS cost,
               SUM(CASE WHEN {known} THEN 1 ELSE 0 END) AS known_cost_runs,
               SUM(CASE WHEN {known} THEN 0 ELSE 1 END) AS unknown_cost_runs
        FROM {run.db_table} r {unnest}
        WHERE r.{col["team"]} = %s AND r.{col["created_at"]} >= %s AND r.{col["created_at"]} < %s
        GROUP BY m.value
    """
    params = [
        SUCCEEDED,
        *TERMINAL,
        SUCCEEDED,
        VERIFICATION_FAILED,
        _team_id(team),
        # As the ORM would write them (SQLite compares datetimes as text).
        connection.ops.adapt_datetimefield_value(period.start),
        connection.ops.adapt_datetimefield_value(period.end),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [c[0] for c in cursor.description]
        rows = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
    for row in rows:
        for key in names[1:]:
            if key != "cost":
                row[key] = int(row[key] or 0)
    out = [_finish(row) for row in rows]
    out.sort(
        key=lambda r: (r["cost"] is None, -(r["cost"] or 0), -r["runs"], r["model_name"] or "")
    )
    return out


def using_model(runs: QuerySet[Run], model: str) -> QuerySet[Run]:
    """Return the *runs* whose ``models_used`` lists *model*.

    A JSON ``contains`` lookup is not available on SQLite, so this matches the
    quoted name in the stored JSON text, which both databases write the same way.
    """
    import json

    return runs.alias(models_text=Cast("models_used", TextField())).filter(
        models_text__contains=json.dumps(model)
    )


def _team_id(team: Any) -> int:
    return int(getattr(team, "pk", team))


def most_expensive(team: Any, period: Period, limit: int = TOP_N) -> list[Run]:
    """Return the period's costliest runs (known costs only), costliest first."""
    return list(
        period_runs(team, period)
        .filter(KNOWN_COST)
        .select_related("loop")
        .order_by("-cost_usd", "-created_at")[:limit]
    )


@dataclass(frozen=True)
class BudgetLimits:
    max_tokens: int | None
    max_cost_usd: Decimal | None


def budget_of(yaml_text: str) -> BudgetLimits:
    """Return the ``budget:`` limits of a loop's YAML (none when absent or unreadable)."""
    try:
        data = yaml.safe_load(yaml_text)
    except yaml.YAMLError:
        return BudgetLimits(None, None)
    budget = data.get("budget") if isinstance(data, dict) else None
    if not isinstance(budget, dict):
        return BudgetLimits(None, None)
    tokens = budget.get("maxTokens")
    cost = budget.get("maxCostUsd")
    return BudgetLimits(
        int(tokens) if isinstance(tokens, int | float) and not isinstance(tokens, bool) else None,
        Decimal(str(cost))
        if isinstance(cost, int | float) and not isinstance(cost, bool)
        else None,
    )


def budgets(team: Any, period: Period, limit: int = TOP_N) -> list[dict[str, Any]]:
    """Return the loops whose runs came closest to (or over) their per-run budget.

    ``usage`` is the highest share of a limit that one run of the loop used in
    the period: its peak cost over ``maxCostUsd`` or its peak tokens over
    ``maxTokens``, each run measured against the budget of the loop version it
    ran. A loop with a ``budget_exceeded`` run is over budget whatever its
    peaks say. Loops without a budget and without such runs are left out.
    """
    from builder.models import LoopVersion

    rows = list(
        period_runs(team, period)
        .values("loop_id", "loop_version_id")
        .annotate(
            loop_name=Coalesce(Max("loop__name"), Max("loop_name")),
            runs=Count("pk"),
            exceeded=Count("pk", filter=Q(status=BUDGET_EXCEEDED)),
            peak_cost=Max("cost_usd", filter=KNOWN_COST),
            peak_tokens=Max(F("tokens_in") + F("tokens_out")),
        )
    )
    version_ids = {r["loop_version_id"] for r in rows if r["loop_version_id"] is not None}
    yaml_by_version = dict(LoopVersion.objects.filter(pk__in=version_ids).values_list("pk", "yaml"))
    loops: dict[Any, dict[str, Any]] = {}
    for row in rows:
        limits = budget_of(yaml_by_version.get(row["loop_version_id"], ""))
        shares = []
        if limits.max_cost_usd and row["peak_cost"] is not None:
            shares.append(Decimal(str(row["peak_cost"])) / limits.max_cost_usd)
        if limits.max_tokens and row["peak_tokens"] is not None:
            shares.append(Decimal(row["peak_tokens"]) / limits.max_tokens)
        usage = float(max(shares)) if shares else None
        entry = loops.setdefault(
            row["loop_id"],
            {
                "loop_id": row["loop_id"],
                "loop_name": row["loop_name"],
                "runs": 0,
                "exceeded": 0,
                "usage": None,
                "max_cost_usd": None,
                "max_tokens": None,
                "peak_cost": None,
                "peak_tokens": None,
            },
        )
        entry["runs"] += row["runs"]
        entry["exceeded"] += row["exceeded"]
        if usage is not None and (entry["usage"] is None or usage > entry["usage"]):
            entry.update(
                usage=round(usage, 4),
                max_cost_usd=limits.max_cost_usd,
                max_tokens=limits.max_tokens,
                peak_cost=_money(row["peak_cost"]) if row["peak_cost"] is not None else None,
                peak_tokens=row["peak_tokens"],
            )
    out = [e for e in loops.values() if e["usage"] is not None or e["exceeded"]]
    for entry in out:
        entry["over"] = bool(entry["exceeded"]) or (entry["usage"] or 0) >= 1
    out.sort(key=lambda r: (not r["over"], -(r["usage"] or 0), r["loop_name"] or ""))
    return out[:limit]


def low_lrs_loops(team: Any) -> list[Any]:
    """Return the team's loops whose current LRS grade is below B, lowest score first."""
    from builder.models import Loop

    return list(
        Loop.objects.for_team(team)
        .filter(lrs_grade__in=LOW_GRADES)
        .order_by(F("lrs_score").asc(nulls_first=True), "name")
    )


def dashboard(team: Any, period: Period) -> dict[str, Any]:
    """Return every figure of the dashboard."""
    return {
        "period": period.as_dict(),
        "totals": totals(team, period),
        "series": series(team, period),
        "by_loop": by_loop(team, period),
        "by_model": by_model(team, period),
        "budgets": budgets(team, period),
        "most_expensive": most_expensive(team, period),
        "low_lrs": low_lrs_loops(team),
    }


def loop_figures(loop: Any, period: Period) -> dict[str, Any]:
    """Return one loop's section: runs over time, cost per run trend, pass rate, LRS."""
    runs = period_runs(loop.team_id, period).filter(loop=loop)
    return {
        "totals": _finish(runs.aggregate(**_metrics())),
        "series": _bucketed(runs, period),
        "lrs_score": loop.lrs_score,
        "lrs_grade": loop.lrs_grade,
    }

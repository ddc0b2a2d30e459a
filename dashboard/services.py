"""The dashboard's figures for one team and one period.

The number of queries does not depend on the number of runs: finished hours
are read from the hourly rollups (dashboard/rollups.py), the rest of a period
from its runs, and both are tallied the same way. Totals, the time series, the
breakdowns by loop and by model and the budget table all come from one such
read; the most expensive runs and the low-LRS loops are one query each.

Costs are the engine's recorded figures. A run whose price was unknown
(``cost_known`` false or ``cost_usd`` null) adds nothing to the cost totals and is
counted in ``unknown_cost_runs`` instead, so a reader never mistakes it for a
free run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypedDict

import yaml
from django.db import connection
from django.db.models import DateTimeField, F, Func, Q, QuerySet

from dashboard import rollups
from dashboard.periods import Period, iso
from dashboard.rollups import Tally
from runs.models import Run, RunModel

LOW_GRADES = ("C", "D", "F")
TOP_N = 10

# Run fields no list shows: left out of list queries (a run's YAML is kilobytes).
HEAVY_FIELDS = ("loop_yaml", "inputs", "outputs", "trigger_payload", "error")

KNOWN_COST = Q(cost_known=True, cost_usd__isnull=False)
VERIFIED = Q(verification_rounds__gt=0)


def team_runs(team: Any) -> QuerySet[Run]:
    """Return every run of *team* (the only entry point: no figure crosses teams)."""
    return Run.objects.real().for_team(team)  # not the editor's test runs of drafts


def period_runs(team: Any, period: Period) -> QuerySet[Run]:
    """Return *team*'s runs created inside *period*."""
    return team_runs(team).filter(created_at__gte=period.start, created_at__lt=period.end)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _money(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.000001"))


def _finish(t: Tally) -> dict[str, Any]:
    """Return a tally as a figures row: counters, rates, and a cost that stays unknown
    (None) when no run of the group had a known price."""
    row = t.counters()
    row["finished"] = (
        t.succeeded + t.failed + t.verification_failed + t.budget_exceeded + t.cancelled
    )
    row["tokens"] = t.tokens_in + t.tokens_out
    row["success_rate"] = _rate(t.succeeded, row["finished"])
    row["verification_pass_rate"] = _rate(t.verified_passed, t.verified_passed + t.verified_failed)
    row["mean_rounds"] = round(t.rounds / t.verified_runs, 2) if t.verified_runs else None
    row["cost"] = _money(t.cost) if t.known_cost_runs else None
    row["cost_per_run"] = (
        (t.cost / t.known_cost_runs).quantize(Decimal("0.000001")) if t.known_cost_runs else None
    )
    return row


class Figures(TypedDict):
    """What ``figures`` returns: one period's figures of a team (or of one loop)."""

    totals: dict[str, Any]
    series: list[dict[str, Any]]
    by_loop: list[dict[str, Any]]
    by_model: list[dict[str, Any]]
    budgets: list[dict[str, Any]]


def figures(team: Any, period: Period, loop_id: int | None = None) -> Figures:
    """Return totals, series, by_loop, by_model and budgets of *team*'s runs in *period*."""
    tallies = rollups.collect(team, period.start, period.end, period.bucket, loop_id=loop_id)
    total = Tally()
    buckets = {start: Tally() for start in period.buckets()}
    loops: dict[Any, Tally] = {}
    versions: dict[tuple[Any, Any], Tally] = {}
    for (hour, loop, version), t in tallies.by_loop.items():
        total.merge(t)
        buckets.setdefault(hour, Tally()).merge(t)
        loops.setdefault(loop, Tally()).merge(t)
        versions.setdefault((loop, version), Tally()).merge(t)
    models: dict[str, Tally] = {}
    for model, t in tallies.by_model.items():
        models.setdefault(model, Tally()).merge(t)

    series = []
    for start, t in sorted(buckets.items()):
        row = _finish(t)
        row["bucket"] = iso(start)
        series.append(row)
    by_loop = []
    for loop, t in loops.items():
        row = _finish(t)
        row.update(loop_id=loop, loop_name=tallies.loop_names.get(loop))
        by_loop.append(row)
    by_loop.sort(key=_costliest_first("loop_name"))
    by_model = []
    for model, t in models.items():
        row = _finish(t)
        row["model_name"] = model or None
        by_model.append(row)
    by_model.sort(key=_costliest_first("model_name"))
    return {
        "totals": _finish(total),
        "series": series,
        "by_loop": by_loop,
        "by_model": by_model,
        "budgets": _budgets(versions, tallies.loop_names),
    }


def _costliest_first(name: str) -> Any:
    def key(row: dict[str, Any]) -> tuple[Any, ...]:
        return (row["cost"] is None, -(row["cost"] or 0), -row["runs"], row[name] or "")

    return key


def totals(team: Any, period: Period) -> dict[str, Any]:
    """Return the period's totals: runs, rates, rounds, tokens, cost, unknown-cost runs."""
    return figures(team, period)["totals"]


def series(team: Any, period: Period) -> list[dict[str, Any]]:
    """Return one row per bucket of the period (empty buckets included), oldest first."""
    return figures(team, period)["series"]


def by_loop(team: Any, period: Period) -> list[dict[str, Any]]:
    """Return the period's figures per loop, most expensive first (unknown cost last)."""
    return figures(team, period)["by_loop"]


def by_model(team: Any, period: Period) -> list[dict[str, Any]]:
    """Return the period's figures per model, most expensive first.

    A run that used several models counts as a run in the row of each, with
    that model's own tokens and cost (``runs.RunModel``), so the rows' tokens
    and costs add up to the totals. The row whose ``model_name`` is None holds
    what was recorded without a model: verification rounds' tokens and cost,
    and runs that used no model (queued, dry runs).
    """
    return figures(team, period)["by_model"]


def budgets(team: Any, period: Period) -> list[dict[str, Any]]:
    """Return the loops whose runs came closest to (or over) their per-run budget."""
    return figures(team, period)["budgets"]


def most_expensive(team: Any, period: Period, limit: int = TOP_N) -> list[Run]:
    """Return the period's costliest runs (known costs only), costliest first."""
    runs = team_runs(team).filter(KNOWN_COST)
    if connection.vendor == "sqlite":
        # Walk the (team, -cost_usd) index and stop after *limit* runs of the period:
        # without statistics SQLite would rather read the whole period by the
        # (team, created_at) index and sort it. A unary + hides created_at from the
        # planner (PostgreSQL keeps statistics and needs no hint).
        runs = runs.alias(
            created=Func(F("created_at"), template="+%(expressions)s", output_field=DateTimeField())
        ).filter(created__gte=period.start, created__lt=period.end)
    else:
        runs = runs.filter(created_at__gte=period.start, created_at__lt=period.end)
    return list(runs.defer(*HEAVY_FIELDS).order_by("-cost_usd", "-created_at")[:limit])


@dataclass(frozen=True)
class BudgetLimits:
    max_tokens: int | None
    max_cost_usd: Decimal | None


def budget_of(yaml_text: str) -> BudgetLimits:
    """Return the ``budget:`` limits of a loop's YAML (none when absent or unreadable)."""
    try:
        data = yaml.load(yaml_text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
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


def _budgets(
    versions: dict[tuple[Any, Any], Tally], names: dict[Any, str], limit: int = TOP_N
) -> list[dict[str, Any]]:
    """Return the loops whose runs came closest to (or over) their per-run budget.

    ``usage`` is the highest share of a limit that one run of the loop used in
    the period: its peak cost over ``maxCostUsd`` or its peak tokens over
    ``maxTokens``, each run measured against the budget of the loop version it
    ran. A loop with a ``budget_exceeded`` run is over budget whatever its
    peaks say. Loops without a budget and without such runs are left out.
    """
    from builder.models import LoopVersion

    version_ids = {version for _, version in versions if version is not None}
    yaml_by_version = dict(LoopVersion.objects.filter(pk__in=version_ids).values_list("pk", "yaml"))
    loops: dict[Any, dict[str, Any]] = {}
    for (loop, version), t in versions.items():
        limits = budget_of(yaml_by_version.get(version, ""))
        shares = []
        if limits.max_cost_usd and t.peak_cost is not None:
            shares.append(t.peak_cost / limits.max_cost_usd)
        if limits.max_tokens and t.peak_tokens is not None:
            shares.append(Decimal(t.peak_tokens) / limits.max_tokens)
        usage = float(max(shares)) if shares else None
        entry = loops.setdefault(
            loop,
            {
                "loop_id": loop,
                "loop_name": names.get(loop),
                "runs": 0,
                "exceeded": 0,
                "usage": None,
                "max_cost_usd": None,
                "max_tokens": None,
                "peak_cost": None,
                "peak_tokens": None,
            },
        )
        entry["runs"] += t.runs
        entry["exceeded"] += t.budget_exceeded
        if usage is not None and (entry["usage"] is None or usage > entry["usage"]):
            entry.update(
                usage=round(usage, 4),
                max_cost_usd=limits.max_cost_usd,
                max_tokens=limits.max_tokens,
                peak_cost=_money(t.peak_cost) if t.peak_cost is not None else None,
                peak_tokens=t.peak_tokens,
            )
    out = [e for e in loops.values() if e["usage"] is not None or e["exceeded"]]
    for entry in out:
        entry["over"] = bool(entry["exceeded"]) or (entry["usage"] or 0) >= 1
    out.sort(key=lambda r: (not r["over"], -(r["usage"] or 0), r["loop_name"] or ""))
    return out[:limit]


def using_model(
    runs: QuerySet[Run],
    team: Any,
    model: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Run]:
    """Return the *runs* (of *team*) that used *model* (exact name).

    ``id IN (run ids of one range of the RunModel index (team, model,
    -created_at))``: the database reads only that model's entries, bounded by
    the runs list's own dates (a RunModel row carries its run's created_at),
    instead of each run's ``models_used`` JSON.
    """
    return runs.filter(pk__in=model_usage(team, model, since, until).values("run_id"))


def model_usage(
    team: Any, model: str, since: datetime | None = None, until: datetime | None = None
) -> QuerySet[RunModel]:
    """Return the RunModel rows of *team*'s runs of *model* created in [since, until)."""
    rows = RunModel.objects.for_team(team).filter(model=model)
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    if until is not None:
        rows = rows.filter(created_at__lt=until)
    return rows


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
        **figures(team, period),
        "most_expensive": most_expensive(team, period),
        "low_lrs": low_lrs_loops(team),
    }


def loop_figures(loop: Any, period: Period) -> dict[str, Any]:
    """Return one loop's section: runs over time, cost per run trend, pass rate, LRS."""
    data = figures(loop.team_id, period, loop_id=loop.pk)
    return {
        "totals": data["totals"],
        "series": data["series"],
        "lrs_score": loop.lrs_score,
        "lrs_grade": loop.lrs_grade,
    }

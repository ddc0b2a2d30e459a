"""Pages: the runs list (filters, sorting, pages, CSV) and the team dashboard (charts, CSV)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from builder.models import Loop
from dashboard import rollups, services
from dashboard.exports import RUN_COLUMNS, TABLES, csv_response, run_row, table_rows
from dashboard.filters import STATUSES, RunFilter
from dashboard.models import ModelHour
from dashboard.periods import PRESET_LABELS, Period, PeriodError, parse_period
from loopkit_web.accounts.decorators import download_view
from loopkit_web.teams.models import Membership
from loopkit_web.teams.scoping import require_role
from runs.models import Status, TriggerType

PAGE_SIZE = 50


def _team(request: HttpRequest) -> Any:
    return require_role(request, "viewer").team


def _filtered(request: HttpRequest) -> tuple[Any, RunFilter, Any]:
    team = _team(request)
    f = RunFilter.from_params(request.GET)
    return team, f, f.apply(services.team_runs(team).defer(*services.HEAVY_FIELDS), team)


@login_required
def run_list(request: HttpRequest) -> HttpResponse:
    team, f, qs = _filtered(request)
    paginator = Paginator(qs, PAGE_SIZE)
    paginator.count = f.count(qs, team)  # (a cached_property: the list needs no second count)
    page = paginator.get_page(request.GET.get("page"))
    columns = [
        ("loop", "Loop"),
        ("status", "Status"),
        (None, "Trigger"),
        (None, "Started by"),
        ("created", "Created (UTC)"),
        ("duration", "Duration"),
        ("tokens_in", "Tokens in"),
        ("tokens_out", "Tokens out"),
        ("cost", "Cost"),
        ("score", "Score"),
        ("rounds", "Rounds"),
    ]
    context = {
        "team": team,
        "filter": f,
        "page": page,
        "query": f.query(page=None),
        "columns": [
            {
                "key": key,
                "label": label,
                "query": f.sort_query(key) if key else "",
                "sorted": (
                    ("desc" if f.sort.startswith("-") else "asc")
                    if key and f.sort.lstrip("-") == key
                    else ""
                ),
            }
            for key, label in columns
        ],
        "loops": Loop.objects.for_team(team).order_by("name").only("pk", "name"),
        "statuses": [(s, Status(s).label) for s in STATUSES],
        "triggers": TriggerType.choices,
        # Suggestions for the model filter: the models of the last 30 days' rollups.
        "models": ModelHour.objects.filter(team=team, hour__gte=timezone.now() - timedelta(days=30))
        .exclude(model="")
        .order_by("model")
        .values_list("model", flat=True)
        .distinct(),
        "users": Membership.objects.filter(team=team)
        .select_related("user")
        .order_by("user__username"),
    }
    return render(request, "dashboard/run_list.html", context)


@download_view
def run_list_csv(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    team, _, qs = _filtered(request)
    return csv_response(
        RUN_COLUMNS,
        (run_row(r) for r in qs.iterator(chunk_size=2000)),
        f"runs-{team.slug}",
        stream=True,
    )


def _period(request: HttpRequest) -> tuple[Period | None, str]:
    try:
        return parse_period(request.GET), ""
    except PeriodError as exc:
        return None, str(exc)


def _runs_link(period: Period, **filters: Any) -> str:
    params: list[tuple[str, str]] = list(period.runs_params().items())
    for key, value in filters.items():
        values = value if isinstance(value, list | tuple) else [value]
        params.extend((key, str(v)) for v in values)
    return "?" + urlencode(params, safe=":")


def _chart_data(figures: dict[str, Any]) -> dict[str, Any]:
    """Return what the charts plot (JSON-safe: Decimal costs become floats, unknown stays null)."""

    def num(value: Any) -> float | None:
        return float(value) if isinstance(value, Decimal) else value

    series = figures["series"]
    return {
        "bucket": figures["period"]["bucket"],
        "labels": [row["bucket"] for row in series],
        "runs": [row["runs"] for row in series],
        "succeeded": [row["succeeded"] for row in series],
        "not_succeeded": [row["runs"] - row["succeeded"] for row in series],
        "success_rate": [row["success_rate"] for row in series],
        "verification_pass_rate": [row["verification_pass_rate"] for row in series],
        "tokens_in": [row["tokens_in"] for row in series],
        "tokens_out": [row["tokens_out"] for row in series],
        "cost": [num(row["cost"]) for row in series],
        "unknown_cost_runs": [row["unknown_cost_runs"] for row in series],
        "by_loop": {
            "labels": [row["loop_name"] or "(deleted)" for row in figures["by_loop"]],
            "cost": [num(row["cost"]) for row in figures["by_loop"]],
        },
        "by_model": {
            "labels": [row["model_name"] or "(no model)" for row in figures["by_model"]],
            "cost": [num(row["cost"]) for row in figures["by_model"]],
        },
    }


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    team = _team(request)
    period, error = _period(request)
    context: dict[str, Any] = {
        "team": team,
        "presets": PRESET_LABELS,
        "period": period,
        "error": error,
        "params": request.GET,
    }
    if period is None:
        return render(request, "dashboard/dashboard.html", context, status=400)
    figures = services.dashboard(team, period)
    for row in figures["by_loop"]:
        row["link"] = _runs_link(period, loop=row["loop_id"]) if row["loop_id"] else ""
    for row in figures["by_model"]:
        row["link"] = _runs_link(period, model=row["model_name"]) if row["model_name"] else ""
    for row in figures["budgets"]:
        row["link"] = _runs_link(period, loop=row["loop_id"]) if row["loop_id"] else ""
    terminal = list(rollups.TERMINAL)
    context.update(
        figures=figures,
        chart_data=_chart_data(figures),
        period_query=urlencode(period.as_params()),
        links={
            "runs": _runs_link(period),
            "finished": _runs_link(period, status=terminal),
            "succeeded": _runs_link(period, status="succeeded"),
            "failed": _runs_link(period, status="failed"),
            "verification_failed": _runs_link(period, status="verification_failed"),
            "budget_exceeded": _runs_link(period, status="budget_exceeded"),
            "cancelled": _runs_link(period, status="cancelled"),
            "active": _runs_link(period, status=list(rollups.ACTIVE)),
            "verified": _runs_link(period, verified=1),
            "verified_failed": _runs_link(period, verified=1, status="verification_failed"),
            "unknown_cost": _runs_link(period, cost="unknown"),
            "known_cost": _runs_link(period, cost="known", sort="-cost"),
        },
    )
    return render(request, "dashboard/dashboard.html", context)


@download_view
def dashboard_csv(
    request: HttpRequest, dashboard_table: str
) -> HttpResponse | StreamingHttpResponse:
    table = dashboard_table
    if table not in TABLES:
        raise Http404(f"No dashboard table {table!r}: use one of {', '.join(TABLES)}.")
    team = _team(request)
    period, error = _period(request)
    if period is None:
        return HttpResponse(error, status=400, content_type="text/plain; charset=utf-8")
    if table == "low_lrs":
        rows: Any = services.low_lrs_loops(team)
    else:
        rows = getattr(services, table)(team, period)
    return csv_response(
        TABLES[table], table_rows(table, rows), f"dashboard-{table}-{team.slug}-{period.key}"
    )

"""Template helpers: money and rates that show unknown as unknown, run links, the loop section.

In a template: ``{% load dashboard %}`` then ``{{ run.cost_usd|money }}``,
``{{ rate|pct }}``, ``{{ run|run_url }}`` and, on a loop's page,
``{% loop_dashboard loop %}``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import template
from django.urls import NoReverseMatch, reverse

from dashboard import services
from dashboard.periods import PeriodError, parse_period

register = template.Library()

# The runs app's page of one run (live or finished).
RUN_DETAIL_URL = "runs:run_detail"


@register.filter
def money(value: Any) -> str:
    """Return a cost in US dollars; None (price unknown) is "unknown", never $0."""
    if value is None or value == "":
        return "unknown"
    amount = Decimal(str(value))
    places = "0.01" if abs(amount) >= 1 or amount == 0 else "0.0001"
    return f"${amount.quantize(Decimal(places)):,}"


@register.filter
def run_cost(run: Any) -> str:
    """A run's cost; with lost calls (cost unknown), its known part and the calls it lacks."""
    lost = run.lost_calls
    if lost and run.cost_usd is not None:
        return f"{money(run.cost_usd)} + {lost} lost call{'' if lost == 1 else 's'}"
    return money(run.cost_usd if run.cost_known else None)


@register.filter
def pct(value: Any) -> str:
    """Return a 0-1 rate as a percentage; None (nothing to measure) is an em dash."""
    if value is None:
        return "—"
    return f"{float(value) * 100:.1f}%"


@register.filter
def thousands(value: Any) -> str:
    if value is None:
        return "—"
    return f"{int(value):,}"


@register.filter
def duration(run: Any) -> str:
    """Return the run's wall time as 1h02m, 3m05s or 4.2s (blank before it started)."""
    if run.started_at is None or run.finished_at is None:
        return "running" if run.started_at else ""
    seconds = (run.finished_at - run.started_at).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@register.filter
def run_url(run: Any) -> str:
    """Return the URL of the run's page, or "" while the runs app does not serve one."""
    try:
        return reverse(RUN_DETAIL_URL, args=[run.pk])
    except NoReverseMatch:
        return ""


@register.inclusion_tag("dashboard/_loop_section.html", takes_context=True)
def loop_dashboard(context: template.Context, loop: Any) -> dict[str, Any]:
    """Render a loop's runs over time, cost per run trend, pass rate and current LRS.

    The period comes from the page's ``?period=`` (default 30 days).
    """
    request = context.get("request")
    params: dict[str, Any] = dict(request.GET.items()) if request is not None else {}
    params.setdefault("period", "30d")
    try:
        period = parse_period(params)
    except PeriodError:
        period = parse_period({"period": "30d"})
    figures = services.loop_figures(loop, period)
    series = figures["series"]
    chart = {
        "bucket": period.bucket,
        "labels": [row["bucket"] for row in series],
        "runs": [row["runs"] for row in series],
        "cost_per_run": [
            float(row["cost_per_run"]) if row["cost_per_run"] is not None else None
            for row in series
        ],
    }
    return {
        "loop": loop,
        "period": period,
        "figures": figures,
        "chart": chart,
        "runs_query": f"loop={loop.pk}&since={period.runs_params()['since']}&until={period.runs_params()['until']}",
    }

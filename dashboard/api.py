"""API: the dashboard's figures and the filtered runs list, as JSON (mounted at /api/dashboard).

Every endpoint reads the caller's current team (an API token's team) and
needs the viewer role. Period and filter parameters are the pages' own.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Query, Router

from builder.models import Loop
from dashboard import services
from dashboard.filters import RunFilter
from dashboard.periods import Period, PeriodError, parse_period
from dashboard.schemas import DashboardOut, LoopFiguresOut, RunPageOut
from loopkit_web.errors import MAX_ID, Invalid, errors
from loopkit_web.teams.scoping import get_scoped_or_404, require_role

router = Router(tags=["dashboard"])
API_PREFIX = "/dashboard"
MAX_LIMIT = 500


def _period(request: HttpRequest) -> Period:
    try:
        return parse_period(request.GET)
    except PeriodError as exc:
        raise Invalid(str(exc)) from None


@router.get("", response={200: DashboardOut, **errors(404, 422)})
def figures(request: HttpRequest) -> Any:
    """Return every figure of the dashboard for ``period`` (24h, 7d, 30d, or custom with since/until)."""
    team = require_role(request, "viewer").team
    return services.dashboard(team, _period(request))


@router.get("/runs", response={200: RunPageOut, **errors(404, 422)})
def runs(
    request: HttpRequest,
    # ninja types Query as a generic alias for annotations; called as a default it is untyped.
    limit: int = Query(100, ge=1, le=MAX_LIMIT),  # type: ignore[type-arg]
    offset: int = Query(0, ge=0, le=MAX_ID),  # type: ignore[type-arg]
) -> Any:
    """Return the runs list with the page's filters (loop, status, trigger, user, model,
    since, until, verified, cost) and ``sort``; ``limit`` at most 500."""
    team = require_role(request, "viewer").team
    f = RunFilter.from_params(request.GET)
    if f.errors:
        raise Invalid("; ".join(f.errors.values()))
    qs = f.apply(services.team_runs(team).defer(*services.HEAVY_FIELDS), team)
    return {
        "count": f.count(qs, team),
        "limit": limit,
        "offset": offset,
        "runs": list(qs[offset : offset + limit]),
    }


@router.get("/loops/{id:loop_id}", response={200: LoopFiguresOut, **errors(404, 422)})
def loop_figures(request: HttpRequest, loop_id: int) -> Any:
    """Return one loop's runs over time, cost per run trend, pass rate and current LRS."""
    loop = get_scoped_or_404(Loop, request, pk=loop_id)
    require_role(request, "viewer", team=loop.team)
    period = _period(request)
    data = services.loop_figures(loop, period)
    return {
        "loop_id": loop.pk,
        "loop_name": loop.name,
        "period": period.as_dict(),
        **data,
    }

"""Pages: the team's audit log with filters, and its CSV / JSON exports."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils import timezone

from loopkit_web.accounts.decorators import download_view
from loopkit_web.audit.filters import AuditFilter, to_csv, to_json
from loopkit_web.audit.models import AuditEvent
from loopkit_web.teams.scoping import require_role, team_required


def _filtered(request: HttpRequest) -> tuple[AuditFilter, QuerySet[AuditEvent], object]:
    membership = require_role(request, "admin")
    f = AuditFilter.from_params(request.GET)
    qs: QuerySet[AuditEvent] = AuditEvent.objects.for_team_log(membership.team)
    if not f.errors:
        qs = f.apply(qs)
    return f, qs, membership.team


@login_required
@team_required
def event_list(request: HttpRequest) -> HttpResponse:
    f, qs, team = _filtered(request)
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    actions = (
        AuditEvent.objects.for_team_log(team)
        .order_by("action")
        .values_list("action", flat=True)
        .distinct()
    )
    return render(
        request,
        "audit/event_list.html",
        {
            "filter": f,
            "page": page,
            "team": team,
            "actions": actions,
            "query": "&".join(f"{k}={v}" for k, v in f.as_params().items()),
        },
    )


def _download(body: str, content_type: str, team: object, ext: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    slug = getattr(team, "slug", "team")
    response["Content-Disposition"] = f'attachment; filename="audit-{slug}-{stamp}.{ext}"'
    return response


def _refuse(f: AuditFilter) -> HttpResponse:
    return HttpResponseBadRequest("; ".join(f.errors.values()), content_type="text/plain")


@download_view
@team_required
def export_csv(request: HttpRequest) -> HttpResponse:
    f, qs, team = _filtered(request)
    if f.errors:
        return _refuse(f)
    return _download(to_csv(qs.iterator()), "text/csv; charset=utf-8", team, "csv")


@download_view
@team_required
def export_json(request: HttpRequest) -> HttpResponse:
    f, qs, team = _filtered(request)
    if f.errors:
        return _refuse(f)
    return _download(to_json(qs.iterator()), "application/json", team, "json")

"""Project-level pages: the home page and the error handlers."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.defaults import page_not_found, server_error

from loopkit_web.errors import ApiError, NotFound
from loopkit_web.http import AuthenticatedHttpRequest
from loopkit_web.teams.models import Membership
from loopkit_web.teams.scoping import current_team


@login_required
def home(request: AuthenticatedHttpRequest) -> HttpResponse:
    team = current_team(request)
    membership = Membership.objects.filter(team=team, user=request.user).first() if team else None
    return render(request, "home.html", {"team": team, "membership": membership})


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Answer unknown /api/ paths in JSON like the rest of the API."""
    if _is_api(request):
        return JsonResponse(NotFound("not found").body(), status=404)
    return page_not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        body = ApiError("internal server error", status=500).body()
        return JsonResponse(body, status=500)
    return server_error(request)

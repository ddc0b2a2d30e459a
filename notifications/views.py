"""The team's Notifications page: admins set the webhook and the recipients, and test them."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from loopkit_web.errors import ApiError
from loopkit_web.teams.models import Team
from loopkit_web.teams.scoping import get_scoped_or_404, require_role
from notifications import services
from notifications.models import Notification


def _admin_team(request: HttpRequest, team_id: int) -> Team:
    team: Team = get_scoped_or_404(Team, request, pk=team_id)
    require_role(request, "admin", team=team)
    return team


def _form_data(request: HttpRequest) -> dict[str, Any]:
    """Read the form: an empty URL field keeps the saved URL, "remove" clears it."""
    post = request.POST
    data: dict[str, Any] = {
        "email_recipients": post.get("email_recipients", ""),
        "on_approval": post.get("on_approval") == "on",
        "on_failure": post.get("on_failure") == "on",
    }
    if post.get("clear_webhook") == "on":
        data["webhook_url"] = ""
    elif post.get("webhook_url", "").strip():
        data["webhook_url"] = post["webhook_url"]
    return data


def _page(request: HttpRequest, team: Team, test: dict[str, str] | None = None) -> HttpResponse:
    row = services.settings_for(team)
    recent = Notification.objects.for_team(team).select_related("run")[:20]
    return render(
        request,
        "notifications/settings.html",
        {
            "team": team,
            "row": row,
            "recipients": "\n".join(row.email_recipients or []),
            "email_from": settings.DEFAULT_FROM_EMAIL,
            "recent": recent,
            "test": test,
            "tested": test is not None,
        },
    )


@login_required
def team_notifications(request: HttpRequest, team_id: int) -> HttpResponse:
    team = _admin_team(request, team_id)
    if request.method == "POST":
        try:
            services.update(request, team, _form_data(request))
        except ApiError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Notification settings saved.")
        return redirect("notifications:settings", team_id=team.pk)
    return _page(request, team)


@login_required
@require_POST
def test(request: HttpRequest, team_id: int) -> HttpResponse:
    team = _admin_team(request, team_id)
    return _page(request, team, test=services.send_test(request, team))

"""Template context for the base template: navigation and the team switcher."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

from loopkit_web.teams.scoping import current_team, visible_teams


def nav_items(request: HttpRequest) -> list[dict[str, Any]]:
    """Return the navigation entries; ones whose page does not exist yet have no URL."""
    items = []
    for label, name in settings.LOOPKIT_NAV:
        try:
            url: str | None = reverse(name)
        except NoReverseMatch:
            url = None
        items.append(
            {"label": label, "url": url, "active": url is not None and request.path.startswith(url)}
        )
    return items


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {
            "nav_items": [],
            "current_team": None,
            "switcher_teams": [],
            "signup_policy": settings.LOOPKIT_SIGNUP,
        }
    return {
        "nav_items": nav_items(request),
        "current_team": current_team(request),
        "switcher_teams": list(visible_teams(request)),
    }

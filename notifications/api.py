"""API: a team's notification settings (``/api/teams/{id}/notifications``), admins only.

The webhook URL is write-only: answers carry ``webhook_set`` and the masked
``webhook_hint``, never the URL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja import Field, Router, Schema

from loopkit_web.errors import errors
from loopkit_web.teams.models import Team
from loopkit_web.teams.scoping import get_scoped_or_404, require_role
from notifications import services
from notifications.models import TeamNotifications

API_PREFIX = "/teams"
router = Router(tags=["notifications"])


class NotificationsOut(Schema):
    webhook_set: bool
    webhook_hint: str
    email_recipients: list[str]
    email_from: str = Field(description="The sender: the deployment's DEFAULT_FROM_EMAIL.")
    on_approval: bool
    on_failure: bool
    updated_at: datetime | None


class NotificationsPatch(Schema):
    #: Absent or null: keep the URL; "": remove it.
    webhook_url: str | None = Field(
        default=None,
        max_length=services.MAX_URL,
        description='A Slack-compatible incoming webhook URL; "" removes it.',
    )
    email_recipients: list[str] | None = Field(default=None, max_length=services.MAX_RECIPIENTS)
    on_approval: bool | None = None
    on_failure: bool | None = None


class TestOut(Schema):
    ok: bool
    outcome: dict[str, str] = Field(
        description='Per channel (webhook, email): "sent" or the error; empty: nothing set.'
    )


def _out(row: TeamNotifications) -> dict[str, Any]:
    return {
        "webhook_set": bool(row.webhook_url_encrypted),
        "webhook_hint": row.webhook_url_hint,
        "email_recipients": list(row.email_recipients or []),
        "email_from": settings.DEFAULT_FROM_EMAIL,
        "on_approval": row.on_approval,
        "on_failure": row.on_failure,
        "updated_at": row.updated_at if row.pk is not None else None,
    }


def _team(request: HttpRequest, team_id: int) -> Team:
    team: Team = get_scoped_or_404(Team, request, pk=team_id)
    require_role(request, "admin", team=team)
    return team


@router.get("/{id:team_id}/notifications", response={200: NotificationsOut, **errors(403, 404)})
def get_notifications(request: HttpRequest, team_id: int) -> Any:
    """The team's notification settings (admins and owners)."""
    return _out(services.settings_for(_team(request, team_id)))


@router.patch(
    "/{id:team_id}/notifications",
    response={200: NotificationsOut, **errors(400, 403, 404, 413, 422)},
)
def update_notifications(request: HttpRequest, team_id: int, payload: NotificationsPatch) -> Any:
    """Change the fields given; a missing or null ``webhook_url`` keeps the URL."""
    team = _team(request, team_id)
    return _out(services.update(request, team, payload.dict(exclude_unset=True)))


@router.post("/{id:team_id}/notifications/test", response={200: TestOut, **errors(403, 404)})
def test_notifications(request: HttpRequest, team_id: int) -> Any:
    """Send a test message to the team's webhook and email now; say how each went."""
    outcome = services.send_test(request, _team(request, team_id))
    return {"ok": bool(outcome) and all(v == "sent" for v in outcome.values()), "outcome": outcome}

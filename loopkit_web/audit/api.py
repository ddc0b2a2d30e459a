"""API: the team's audit log (admins and owners)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from loopkit_web.audit.filters import AuditFilter
from loopkit_web.audit.models import AuditEvent
from loopkit_web.errors import MAX_ID, errors
from loopkit_web.teams.scoping import require_role

router = Router(tags=["audit"])


class AuditQuery(Schema):
    actor: str = ""
    action: str = ""
    target_type: str = ""
    target_id: str = ""
    since: date | None = None
    until: date | None = None
    limit: int = Field(100, description="Clamped to 1-1000.")
    offset: int = Field(0, le=MAX_ID, description="Negative counts as 0.")


class AuditEventOut(Schema):
    id: int
    created_at: datetime
    actor_id: int | None
    actor_label: str
    team_id: int | None
    action: str
    target_type: str
    target_id: str
    target_label: str
    changes: dict[str, Any]
    ip: str | None
    user_agent: str


@router.get("", response={200: list[AuditEventOut], **errors(403, 404, 422)})
def list_events(request: HttpRequest, filters: Query[AuditQuery]) -> Any:
    """List the current team's audit events, newest first."""
    membership = require_role(request, "admin")
    f = AuditFilter(
        actor=filters.actor,
        action=filters.action,
        target_type=filters.target_type,
        target_id=filters.target_id,
        since=filters.since,
        # The day after date.max does not exist: the filter adds one day to ``until``.
        until=min(filters.until, date.max - timedelta(days=1)) if filters.until else None,
    )
    limit = max(1, min(filters.limit, 1000))
    offset = max(0, filters.offset)
    return f.apply(AuditEvent.objects.for_team_log(membership.team))[offset : offset + limit]

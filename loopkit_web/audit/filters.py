"""Filtering audit events (the page, its exports and the API share this)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet
from django.utils import timezone

from loopkit_web.audit.models import AuditEvent

FILTER_FIELDS = ("actor", "action", "target_type", "target_id", "since", "until")
EXPORT_COLUMNS = (
    "id",
    "created_at",
    "actor_id",
    "actor_label",
    "team_id",
    "team_label",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "changes",
    "ip",
    "user_agent",
)


@dataclass
class AuditFilter:
    """Filters from a query string: actor (username), action (exact, or prefix ending
    in "."), target type and id, and a date range (inclusive, UTC days)."""

    actor: str = ""
    action: str = ""
    target_type: str = ""
    target_id: str = ""
    since: date | None = None
    until: date | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> AuditFilter:
        f = cls()
        for name in ("actor", "action", "target_type", "target_id"):
            setattr(f, name, str(params.get(name) or "").strip())
        for name in ("since", "until"):
            raw = str(params.get(name) or "").strip()
            if raw:
                try:
                    setattr(f, name, date.fromisoformat(raw))
                except ValueError:
                    f.errors[name] = f"{name} must be a date like 2026-01-31, not {raw!r}"
        return f

    def apply(self, qs: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        if self.actor:
            qs = qs.filter(actor_label=self.actor)
        if self.action:
            if self.action.endswith("."):
                qs = qs.filter(action__startswith=self.action)
            else:
                qs = qs.filter(action=self.action)
        if self.target_type:
            qs = qs.filter(target_type=self.target_type)
        if self.target_id:
            qs = qs.filter(target_id=self.target_id)
        tz = timezone.get_current_timezone()
        if self.since:
            qs = qs.filter(created_at__gte=datetime.combine(self.since, time.min, tzinfo=tz))
        if self.until:
            end = datetime.combine(self.until + timedelta(days=1), time.min, tzinfo=tz)
            qs = qs.filter(created_at__lt=end)
        return qs

    def as_params(self) -> dict[str, str]:
        return {
            name: str(getattr(self, name))
            for name in FILTER_FIELDS
            if getattr(self, name) not in ("", None)
        }


def event_row(event: AuditEvent) -> dict[str, Any]:
    """Return the export form of one event."""
    return {
        "id": event.pk,
        "created_at": event.created_at.isoformat(),
        "actor_id": event.actor_id,
        "actor_label": event.actor_label,
        "team_id": event.team_id,
        "team_label": event.team_label,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "target_label": event.target_label,
        "changes": event.changes,
        "ip": event.ip,
        "user_agent": event.user_agent,
    }


def to_json(events: Iterable[AuditEvent]) -> str:
    return json.dumps([event_row(e) for e in events], cls=DjangoJSONEncoder, indent=1)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True)
    # Spreadsheet apps run cells starting with these as formulas.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return "" if value is None else value


def to_csv(events: Iterable[AuditEvent]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    for event in events:
        row = event_row(event)
        writer.writerow([_csv_cell(row[c]) for c in EXPORT_COLUMNS])
    return out.getvalue()

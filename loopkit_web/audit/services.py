"""The one way to write the audit log.

Usage around a mutation::

    before = snapshot(membership)
    membership.role = "admin"
    membership.save()
    record(request, "membership.updated", membership, before=before, after=snapshot(membership))

``before=None`` means the target was created, ``after=None`` that it was
deleted. Only changed fields are stored, as ``{field: [before, after]}``.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models
from django.http import HttpRequest

from loopkit_web.audit.models import AuditEvent

# Never copied into the log, whatever model they belong to.
SENSITIVE_FIELDS = frozenset({"password", "token_hash", "token", "secret", "api_key"})
REDACTED = "[redacted]"


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return str(value)


def snapshot(instance: models.Model, fields: Iterable[str] | None = None) -> dict[str, Any]:
    """Return the concrete field values of *instance* as JSON-ready data.

    Foreign keys appear by attribute name (``team_id``); sensitive fields are
    redacted so their change is visible but not their value.
    """
    wanted = set(fields) if fields is not None else None
    data: dict[str, Any] = {}
    for field in instance._meta.concrete_fields:
        name = field.name
        if wanted is not None and name not in wanted and field.attname not in wanted:
            continue
        value = getattr(instance, field.attname)
        key = field.attname
        data[key] = REDACTED if name in SENSITIVE_FIELDS else _jsonable(value)
    return data


def diff(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[str, list[Any]]:
    """Return ``{field: [before, after]}`` for every field whose value differs."""
    old = dict(before or {})
    new = dict(after or {})
    changes: dict[str, list[Any]] = {}
    for key in sorted(old.keys() | new.keys()):
        a, b = _jsonable(old.get(key)), _jsonable(new.get(key))
        if a != b:
            changes[key] = [a, b]
    return changes


def _client_ip(request: HttpRequest) -> str | None:
    # REMOTE_ADDR only: X-Forwarded-For is client-controlled unless a trusted
    # proxy rewrites it, and the audit log must not record a forged address.
    return request.META.get("REMOTE_ADDR") or None


def record(
    request_or_actor: HttpRequest | AbstractBaseUser | AnonymousUser | None,
    action: str,
    target: models.Model | None = None,
    *,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    team: Any = None,
    target_type: str = "",
    target_id: str | int = "",
    target_label: str = "",
    actor_label: str = "",
) -> AuditEvent:
    """Write one audit event and return it.

    *request_or_actor* is the request (actor, IP and user agent come from it)
    or a user (scripts, tasks) or None (the system). *team* defaults to the
    target's ``team`` attribute, or the target itself if it is a Team.
    """
    request: HttpRequest | None = None
    actor: Any = request_or_actor
    if isinstance(request_or_actor, HttpRequest):
        request = request_or_actor
        actor = getattr(request, "user", None)
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None

    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or (target.pk if target.pk is not None else "")
        target_label = target_label or str(target)[:200]
        if team is None:
            if target._meta.label_lower == "teams.team":
                team = target
            else:
                team = getattr(target, "team", None)

    return AuditEvent.objects.create(
        actor=actor,
        actor_label=(actor.get_username() if actor is not None else actor_label)[:150],
        team=team,
        team_label=str(team)[:100] if team is not None else "",
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        target_label=target_label,
        changes=diff(before, after),
        ip=_client_ip(request) if request is not None else None,
        user_agent=(request.META.get("HTTP_USER_AGENT", "") if request is not None else "")[:300],
    )

"""What a loop page shows about starting a loop: the Run dialog's fields and how it starts.

``run_dialog`` describes the form of the Run dialog (one field per declared
input, a sample payload for a webhook loop); ``how_it_starts`` the loop's
trigger in words: a webhook's URL and GitHub set-up, a cron schedule in words
with its next firings, the events that start it.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from builder.models import Loop
from loopkit import spec

#: The HTML control of each input type (a number input for numbers, a checkbox for booleans).
_WIDGETS = {"string": "text", "number": "number", "integer": "number", "boolean": "checkbox"}


def sample_payload_text(trigger: spec.Trigger | None) -> str:
    """Return GitHub's example delivery of a webhook trigger's event as indented JSON ("" if none)."""
    if not isinstance(trigger, spec.WebhookTrigger):
        return ""
    from loopkit.webhooks import sample_payload

    found = sample_payload(trigger.event, trigger.actions[0] if trigger.actions else None)
    return "" if found is None else json.dumps(found, indent=2)


def run_dialog(loop: spec.Loop) -> dict[str, Any]:
    """Return the Run dialog's fields: ``inputs`` (name, widget, value...) and ``payload``."""
    fields = []
    for name, declared in loop.inputs.items():
        kind = declared.type or "string"
        default = declared.default
        fields.append(
            {
                "name": name,
                "type": kind,
                "widget": _WIDGETS[kind],
                "step": "1" if kind == "integer" else "any",
                "description": declared.description or "",
                "value": "" if default is None or kind == "boolean" else str(default),
                "checked": default is True,
                "required": bool(declared.required) and default is None,
            }
        )
    trigger = loop.effective_trigger
    return {
        "inputs": fields,
        "webhook": isinstance(trigger, spec.WebhookTrigger),
        "payload": sample_payload_text(trigger),
    }


def describe_cron(schedule: str) -> str:
    """Return a cron schedule in words ("At 09:00, Monday through Friday")."""
    from cron_descriptor import ExpressionDescriptor, Options

    options = Options()
    options.use_24hour_time_format = True
    return str(ExpressionDescriptor(schedule, options).get_description())


def next_firings(
    schedule: str, zone: str, now: datetime | None = None, count: int = 3
) -> list[datetime]:
    """Return the schedule's next *count* due times after *now*, in the time zone *zone*."""
    local_now = (now or timezone.now()).astimezone(ZoneInfo(zone))
    it = croniter(schedule, local_now)
    return [it.get_next(datetime) for _ in range(count)]


def how_it_starts(
    loop: Loop, parsed: spec.Loop, request: HttpRequest, now: datetime | None = None
) -> dict[str, Any]:
    """Return what the loop page's "How it starts" section shows for *parsed*'s trigger."""
    trigger = parsed.effective_trigger
    out: dict[str, Any] = {"type": trigger.type}
    if isinstance(trigger, spec.WebhookTrigger):
        path = reverse("runs:webhook", args=[loop.team.slug, loop.name])
        out.update(
            url=request.build_absolute_uri(path),
            event=trigger.event,
            actions=trigger.actions,
            secret_env=trigger.secret_env or "",
            secret_set=bool(trigger.secret_env and os.environ.get(trigger.secret_env)),
        )
    elif isinstance(trigger, spec.CronTrigger):
        zone = trigger.timezone or loop.team.timezone or "UTC"
        out.update(
            schedule=trigger.schedule,
            words=describe_cron(trigger.schedule),
            timezone=zone,
            team_zone=not trigger.timezone,
            next=[
                when.strftime("%a %Y-%m-%d %H:%M %Z")
                for when in next_firings(trigger.schedule, zone, now)
            ],
        )
    elif isinstance(trigger, spec.EventTrigger):
        upstream = (
            Loop.objects.filter(team=loop.team, name=trigger.loop).first() if trigger.loop else None
        )
        out.update(
            loop=trigger.loop,
            loop_url=reverse("builder:loop_detail", args=[upstream.pk]) if upstream else "",
            statuses=list(trigger.status),
            event=trigger.event,
        )
    return out

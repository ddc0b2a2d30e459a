"""The four triggers: manual (services.start_run), cron, webhook and event.

Each firing creates a run whose ``trigger_type`` and ``trigger_payload`` say
what fired it, and is audited by ``start_run``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from builder.models import Loop
from loopkit import spec
from loopkit.document import analyze
from loopkit.engine.payloads import (
    completion_payload,
    cron_payload,
    custom_event_payload,
    latest_due_time,
)
from runs import conf
from runs.inputs import RunRefused
from runs.lifecycle import start_run
from runs.models import CronFiring, Run, TriggerType

logger = logging.getLogger(__name__)


#: Parsed loop versions by (loop id, version, last save): a saved version never changes.
_SPECS: dict[tuple[int, int, str], spec.Loop | None] = {}
_SPECS_MAX = 2048


def current_spec(loop: Loop) -> spec.Loop | None:
    """Return the parsed current version of *loop*, or None if it has none or is invalid.

    Cron ticks and completion triggers look at every loop of a team: each
    version is parsed once per process.
    """
    if loop.version == 0:
        return None
    key = (loop.pk, loop.version, loop.updated_at.isoformat())
    if key not in _SPECS:
        text = loop.current().yaml  # a database error propagates: it must not be cached
        # A saved loop that no longer loads just does not fire.
        parsed = analyze(text, file=f"{loop.name}.yaml").loop
        if len(_SPECS) >= _SPECS_MAX:
            _SPECS.clear()
        _SPECS[key] = parsed
    return _SPECS[key]


# ── Webhook ──────────────────────────────────────────────────────────────


def signature_for(secret: str, body: bytes) -> str:
    """Return GitHub's ``X-Hub-Signature-256`` value for *body*."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    """Return True if *header* is the HMAC-SHA256 of *body* (constant-time compare)."""
    if not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(signature_for(secret, body), header.strip())


# ── Cron ─────────────────────────────────────────────────────────────────


def in_team_zone(trigger: spec.CronTrigger, team: Any) -> spec.CronTrigger:
    """Return *trigger* with the team's time zone when it names none (the team's default)."""
    if trigger.timezone:
        return trigger
    return trigger.model_copy(update={"timezone": team.timezone or "UTC"})


def fire_due_crons(now: datetime | None = None, *, window: timedelta | None = None) -> list[int]:
    """Start one run per loop whose schedule fell due in the last *window*; return run ids.

    Every worker's scheduler may call this at the same minute: the unique
    ``(loop, due_time)`` row lets exactly one of them create the run.
    """
    now = now or timezone.now()
    window = window or timedelta(minutes=5)
    started: list[int] = []
    for loop in Loop.objects.filter(version__gt=0).select_related("team"):
        parsed = current_spec(loop)
        if parsed is None or not isinstance(parsed.trigger, spec.CronTrigger):
            continue
        trigger = in_team_zone(parsed.trigger, loop.team)
        due = latest_due_time(trigger, now)
        if due <= now - window or due < loop.created_at - timedelta(minutes=1):
            continue
        try:
            with transaction.atomic():
                firing = CronFiring.objects.create(loop=loop, due_time=due)
                run = start_run(
                    loop,
                    trigger_type=TriggerType.CRON,
                    payload=cron_payload(trigger, due),
                    label=f"cron {trigger.schedule}",
                )
                firing.run = run
                firing.save(update_fields=["run"])
        except IntegrityError:
            continue  # another worker fired this due time
        except RunRefused as exc:
            logger.warning("cron could not start %s: %s", loop.name, exc.message)
            continue
        started.append(run.pk)
    return started


# ── Events ───────────────────────────────────────────────────────────────


def _chain_depth(run: Run) -> int:
    payload = run.trigger_payload if run.trigger_type == TriggerType.EVENT else {}
    return int(payload.get("depth", 0)) if isinstance(payload, dict) else 0


def fire_completion_triggers(run: Run) -> list[int]:
    """Start the team's loops whose trigger is this loop's completion with this status."""
    depth = _chain_depth(run) + 1
    if depth > conf.event_chain_limit():
        logger.warning("event chain from run %s is deeper than the limit; not firing", run.pk)
        return []
    started: list[int] = []
    for loop in Loop.objects.filter(team_id=run.team_id, version__gt=0):
        parsed = current_spec(loop)
        trigger = parsed.trigger if parsed is not None else None
        if not isinstance(trigger, spec.EventTrigger) or trigger.loop != run.loop_name:
            continue
        if trigger.status and run.status not in trigger.status:
            continue
        payload = completion_payload(run.loop_name, run.pk, run.status, depth)
        try:
            started.append(
                start_run(
                    loop,
                    trigger_type=TriggerType.EVENT,
                    payload=payload,
                    dry_run=run.dry_run,
                    label=f"event: {run.loop_name} {run.status}",
                ).pk
            )
        except RunRefused as exc:
            logger.warning("event trigger could not start %s: %s", loop.name, exc.message)
    return started


def raise_custom_event(
    team_id: int, name: str, payload: dict[str, Any], *, actor: Any, request: Any, dry_run: bool
) -> list[Run]:
    """Start the team's loops whose trigger is the custom event *name*; return the runs."""
    runs: list[Run] = []
    for loop in Loop.objects.filter(team_id=team_id, version__gt=0):
        parsed = current_spec(loop)
        trigger = parsed.trigger if parsed is not None else None
        if not isinstance(trigger, spec.EventTrigger) or trigger.event != name:
            continue
        runs.append(
            start_run(
                loop,
                trigger_type=TriggerType.EVENT,
                payload=custom_event_payload(name, payload),
                dry_run=dry_run,
                actor=actor,
                request=request,
                label=f"event: {name}",
            )
        )
    return runs

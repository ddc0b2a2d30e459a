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
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from builder.models import Loop
from loopkit import spec
from loopkit.document import analyze
from loopkit.engine.payloads import (
    completion_payload,
    cron_payload,
    custom_event_payload,
    due_times,
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


def fire_due_crons(now: datetime | None = None) -> list[int]:
    """Start a run per due time of each cron schedule that did not fire yet; return run ids.

    A due time missed while no worker ran still fires within the trigger's
    catch-up window (``catchUpMinutes``, 5 by default): each one, oldest first
    (``catchUp: all``, the default), or only the latest (``catchUp: latest``);
    at most ``LOOPKIT_CRON_CATCH_UP_LIMIT`` per loop and tick, the latest ones.
    A due time before the loop's latest firing, or before the loop existed, never fires.

    Every worker's scheduler may call this at the same minute: the unique
    ``(loop, due_time)`` row lets exactly one of them create each run.
    """
    now = now or timezone.now()
    limit = conf.cron_catch_up_limit()
    latest_firing = CronFiring.objects.filter(loop=OuterRef("pk")).order_by("-due_time")
    loops = (
        Loop.objects.filter(version__gt=0)
        .select_related("team")
        .annotate(last_due=Subquery(latest_firing.values("due_time")[:1]))
    )
    started: list[int] = []
    for loop in loops:
        parsed = current_spec(loop)
        if parsed is None or not isinstance(parsed.trigger, spec.CronTrigger):
            continue
        trigger = in_team_zone(parsed.trigger, loop.team)
        after = max(now - trigger.catch_up_window, loop.created_at - timedelta(minutes=1))
        if loop.last_due is not None:
            after = max(after, loop.last_due)
        due = due_times(trigger, after, now)
        if trigger.catch_up == "latest":
            due = due[-1:]
        elif len(due) > limit:
            logger.warning(
                "cron %s: %d due times missed since %s; firing the latest %d "
                "(LOOPKIT_CRON_CATCH_UP_LIMIT), skipping the rest",
                loop.name,
                len(due),
                due[0].isoformat(),
                limit,
            )
            due = due[-limit:]
        for when in due:
            run_id = _fire_cron(loop, trigger, when)
            if run_id is not None:
                started.append(run_id)
    return started


def _fire_cron(loop: Loop, trigger: spec.CronTrigger, due: datetime) -> int | None:
    """Start the run of *loop*'s due time *due*; None if another worker did or it was refused."""
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
        return None  # another worker fired this due time
    except RunRefused as exc:
        logger.warning("cron could not start %s: %s", loop.name, exc.message)
        return None
    return int(run.pk)


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

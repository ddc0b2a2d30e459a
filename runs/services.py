"""Starting, cancelling and re-running runs, and deciding approvals.

Every function here is used by the API, the pages and the triggers alike, so
each rule (inputs checked, task enqueued after commit, audit written) lives
in one place.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import transaction
from django.utils import timezone

from builder.models import Loop
from loopkit import spec
from loopkit.document import analyze
from loopkit.engine import context
from loopkit_web.audit.services import record
from loopkit_web.errors import Invalid
from loopkit_web.teams.models import ROLE_RANK, Membership
from runs.models import (
    TERMINAL,
    ApprovalRequest,
    ApprovalStatus,
    Run,
    Status,
    TriggerType,
)
from runs.recorder import record_event


class RunRefused(Invalid):
    """A run cannot be started as asked; the message says why and how to fix it.

    422 unless raised with another ``status=`` (409 for a state clash, 403 for a role).
    """


def parse_loop(text: str, name: str = "loop") -> spec.Loop:
    """Return the loop of a stored YAML text, or raise RunRefused with its problems."""
    analysis = analyze(text, file=f"{name}.yaml")
    if analysis.loop is None or not analysis.ok:
        problems = "\n".join(str(p) for p in analysis.problems)
        raise RunRefused(f"the loop '{name}' is invalid and cannot run: {problems}")
    return analysis.loop


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}
_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
}


def _typed(kind: str, value: Any) -> Any:
    """Return *value* as *kind*, converting a form's text ("5", "on"); raise ValueError."""
    if kind == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise ValueError
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower() if isinstance(value, str | int) else None
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise ValueError
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError
    if isinstance(value, str):
        text = value.strip()
        number: int | float = (
            int(text) if kind == "integer" or text.lstrip("+-").isdigit() else float(text)
        )
    else:
        number = value
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError
    if kind == "integer":
        if isinstance(number, float) and not number.is_integer():
            raise ValueError
        return int(number)
    return number


def coerce_inputs(loop: spec.Loop, given: dict[str, Any]) -> dict[str, Any]:
    """Return *given* with each typed input converted to its declared type.

    A form sends text: "5" for an integer input becomes 5, "on" for a boolean
    True, and an empty text for a number or boolean is no value (its default
    applies). A value that does not convert is refused with the input's name,
    in the message and in ``details`` (``loc``: body, inputs, name).
    """
    out: dict[str, Any] = {}
    for name, value in given.items():
        declared = loop.inputs.get(name)
        kind = declared.type if declared is not None else None
        if kind is None:
            out[name] = value
            continue
        if kind != "string" and isinstance(value, str) and not value.strip():
            continue
        try:
            out[name] = _typed(kind, value)
        except (ValueError, OverflowError):
            message = f"input '{name}' must be {_TYPE_WORDS[kind]}, not {json.dumps(value)}"
            raise RunRefused(
                message,
                details=[{"loc": ["body", "inputs", name], "msg": message, "type": "input_type"}],
            ) from None
    return out


def resolve_inputs(loop: spec.Loop, given: dict[str, Any]) -> dict[str, Any]:
    """Return *given* completed with the loop's input defaults; refuse unknown or missing ones."""
    unknown = sorted(set(given) - set(loop.inputs))
    if unknown:
        known = ", ".join(sorted(loop.inputs)) or "none"
        raise RunRefused(f"unknown input(s) {', '.join(unknown)} (this loop's inputs: {known})")
    values = dict(given)
    missing = []
    for name, declared in loop.inputs.items():
        if name in values:
            continue
        if declared.default is not None:
            values[name] = declared.default
        elif declared.required:
            missing.append(name)
    if missing:
        raise RunRefused(f"missing required input(s): {', '.join(missing)}")
    return values


def _actor_label(actor: Any) -> str:
    if actor is not None and getattr(actor, "is_authenticated", False):
        return str(actor.get_username())
    return ""


def start_run(
    loop: Loop,
    *,
    trigger_type: str,
    payload: dict[str, Any] | None = None,
    inputs: dict[str, Any] | None = None,
    dry_run: bool = False,
    actor: Any = None,
    request: Any = None,
    label: str = "",
    rerun_of: Run | None = None,
    model: str = "",
) -> Run:
    """Create a queued run of *loop*'s current version and enqueue it after commit.

    *actor* is the user who started it (None for cron, webhook and event
    triggers, which are described by *label*). The firing is audited.
    Inputs are converted to their declared types (``coerce_inputs``); *model*,
    when given, is this run's model in place of the loop's own ``model:``
    (a step naming its own model keeps it).
    """
    from runs import tasks

    if rerun_of is not None:
        yaml_text, version, number = (
            rerun_of.loop_yaml,
            rerun_of.loop_version,
            rerun_of.version_number,
        )
    else:
        if loop.version == 0:
            raise RunRefused(f"the loop '{loop.name}' has no saved version yet")
        version = loop.current()
        yaml_text, number = version.yaml, version.number
    from runs import conf

    if len(model.strip()) > 200:
        raise RunRefused("model must be at most 200 characters (a LiteLLM model string)")
    dry_run = dry_run or conf.dry_run_only()
    parsed = parse_loop(yaml_text, loop.name)
    given = coerce_inputs(parsed, dict(inputs or {}))
    if dry_run:  # as the engine runs it: declared defaults, else typed placeholders
        given = context.resolve_inputs(parsed, given, dry_run=True)
    values = resolve_inputs(parsed, given)
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    with transaction.atomic():
        run = Run.objects.create(
            team=loop.team,
            loop=loop,
            loop_version=version,
            loop_name=loop.name,
            version_number=number,
            loop_yaml=yaml_text,
            trigger_type=trigger_type,
            trigger_payload=payload or {},
            inputs=values,
            dry_run=dry_run,
            model=model.strip(),
            rerun_of=rerun_of,
            started_by=user,
            started_by_label=_actor_label(user) or label or trigger_type,
            heartbeat_at=timezone.now(),
        )
        record(
            request if request is not None else user,
            f"run.triggered.{trigger_type}",
            run,
            after={
                "loop": loop.name,
                "version": number,
                "trigger": trigger_type,
                "dry_run": dry_run,
                **({"model": run.model} if run.model else {}),
                "by": run.started_by_label,
            },
            actor_label=label,
        )
        run_id = run.pk
        transaction.on_commit(lambda: tasks.execute_run(run_id))
    return run


def rerun(run: Run, *, actor: Any, request: Any = None) -> Run:
    """Start a new run of the same loop version with the same inputs and trigger payload."""
    if run.loop is None:
        raise RunRefused("the loop of this run was deleted; it cannot be re-run", status=409)
    return start_run(
        run.loop,
        trigger_type=TriggerType.RERUN,
        payload=run.trigger_payload,
        inputs=run.inputs,
        dry_run=run.dry_run,
        actor=actor,
        request=request,
        rerun_of=run,
        model=run.model,
    )


def finish_without_worker(run: Run, status: str, error: str, allowed_from: set[str]) -> bool:
    """Make a run terminal from outside a worker (cancel while queued, lost worker)."""
    now = timezone.now()
    if not run.transition(status, allowed_from=allowed_from, finished_at=now, error=error):
        return False
    record_event(
        run.pk,
        "run_finished",
        {
            "loop": run.loop_name,
            "status": status,
            "error": error or None,
            "duration_ms": 0.0
            if run.started_at is None
            else (now - run.started_at).total_seconds() * 1000,
            "tokens": {
                "input": run.tokens_in,
                "output": run.tokens_out,
                "cached_read": run.tokens_cached,
                "reasoning": run.tokens_reasoning,
            },
            "cost": None if run.cost_usd is None else float(run.cost_usd),
            "cost_known": run.cost_known,
        },
    )
    from runs.triggers import fire_completion_triggers

    fire_completion_triggers(run)
    return True


def request_cancel(run: Run, *, actor: Any, request: Any = None) -> bool:
    """Ask *run* to stop at its next safe point; return False if it had already finished.

    A queued run is cancelled at once; a running one by its worker, which
    watches ``cancel_requested`` and fires the engine's cancel token.
    """
    if run.status in TERMINAL:
        return False
    Run.objects.filter(pk=run.pk).update(cancel_requested=True)
    run.cancel_requested = True
    record(request if request is not None else actor, "run.cancel_requested", run)
    record_event(run.pk, "cancel_requested", {"by": _actor_label(actor)})
    finish_without_worker(run, Status.CANCELLED, "cancelled before it started", {Status.QUEUED})
    return True


def can_approve(membership: Membership | None, approval: ApprovalRequest) -> bool:
    """Return True if *membership* may decide *approval*.

    An empty approver list means editors and above. Roles in the list allow
    that role and the roles above it; other names are user names.
    """
    if membership is None:
        return False
    allowed = approval.approvers or ["editor"]
    role_rank = ROLE_RANK[membership.role]
    for who in allowed:
        if who in ROLE_RANK and role_rank >= ROLE_RANK[who]:
            return True
        if who == membership.user.get_username():
            return True
    return False


class ApprovalRefused(RunRefused):
    pass


def decide_approval(
    approval: ApprovalRequest,
    *,
    approved: bool,
    comment: str,
    membership: Membership | None,
    request: Any = None,
) -> ApprovalRequest:
    """Record a decision on a pending approval (the waiting worker sees it at once)."""
    if not can_approve(membership, approval):
        allowed = ", ".join(approval.approvers or ["editor"])
        raise ApprovalRefused(f"only {allowed} (or higher) may decide this approval", status=403)
    user = membership.user if membership is not None else None
    now = timezone.now()
    status = ApprovalStatus.APPROVED if approved else ApprovalStatus.REJECTED
    changed = ApprovalRequest.objects.filter(pk=approval.pk, status=ApprovalStatus.PENDING).update(
        status=status,
        decided_at=now,
        decided_by=user,
        decided_by_label=_actor_label(user),
        comment=comment,
    )
    if not changed:
        raise ApprovalRefused("this approval was already decided", status=409)
    approval.refresh_from_db()
    record(
        request if request is not None else user,
        "run.approval_" + ("approved" if approved else "rejected"),
        approval.run,
        after={"step": approval.step, "comment": comment},
    )
    return approval

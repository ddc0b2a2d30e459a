"""Test runs of a draft: the editor runs the loop being edited, without saving a version.

A test run is a ``Run`` row like any other (``is_test=True``), so the worker,
the events, the live stream and the run page are the same; what differs:

* its ``loop_yaml`` is the draft (canonical YAML of what the editor holds) and
  it has no ``loop_version`` (``version_number`` 0); ``loop`` is the loop being
  edited, or none for a new loop not saved yet;
* it is left out of the runs list, the dashboard (figures, the loop's runs)
  and the per-model usage, fires no completion trigger and sends no
  notification, and a live one does not write the loop's memory;
* it may carry pinned outputs (``Run.pinned``: step label or path → output),
  which the engine answers without a model call (``RunOptions.pinned``).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from builder import services
from builder.models import Loop
from loopkit_web.audit.services import record
from runs import conf, lifecycle
from runs.inputs import RunRefused
from runs.models import Run, TriggerType

#: The most pinned outputs a test run takes, and the longest pin (characters).
MAX_PINS = 200
MAX_PIN_CHARS = 200_000


def check_pins(pinned: dict[str, Any]) -> dict[str, str]:
    """Return *pinned* as ``{step: output}``; refuse what is not a map of text to text."""
    if len(pinned) > MAX_PINS:
        raise RunRefused(f"at most {MAX_PINS} pinned outputs, not {len(pinned)}")
    out: dict[str, str] = {}
    for name, value in pinned.items():
        if not name.strip():
            raise RunRefused("a pinned output needs a step label or path, not an empty name")
        if not isinstance(value, str):
            raise RunRefused(
                f"the pinned output of '{name}' must be text, not {type(value).__name__}"
            )
        if len(value) > MAX_PIN_CHARS:
            raise RunRefused(
                f"the pinned output of '{name}' is {len(value)} characters "
                f"(at most {MAX_PIN_CHARS})"
            )
        out[name] = value
    return out


def start_test_run(
    team: Any,
    loop: Loop | None,
    *,
    yaml_text: str | None = None,
    data: Any = None,
    dry_run: bool = True,
    inputs: dict[str, Any] | None = None,
    payload: dict[str, Any] | None = None,
    pinned: dict[str, Any] | None = None,
    model: str = "",
    actor: Any = None,
    request: Any = None,
) -> Run:
    """Create a queued test run of a draft (YAML text or camelCase data) and enqueue it.

    The draft is validated as a save would be (an invalid one is refused with
    its positioned problems, 422); nothing of the loop is changed. The start
    is audited as ``run.test_started``.
    """
    checked = services.validate(yaml_text, data, file=None)
    checked.raise_if_invalid("draft")
    parsed, canonical = checked.loop, checked.yaml
    if parsed is None or canonical is None:  # raise_if_invalid let an invalid loop through
        raise RunRefused("the draft is not a valid loop")
    lifecycle.check_model(model)
    pins = check_pins(dict(pinned or {}))
    dry_run = dry_run or conf.dry_run_only()
    values = lifecycle.run_inputs(parsed, inputs, dry_run=dry_run)
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    label = str(user.get_username()) if user is not None else "editor"
    with transaction.atomic():
        run = Run.objects.create(
            team=team,
            loop=loop,
            loop_version=None,
            loop_name=parsed.name,
            version_number=0,
            loop_yaml=canonical,
            trigger_type=TriggerType.MANUAL,
            trigger_payload=payload or {},
            inputs=values,
            dry_run=dry_run,
            model=model.strip(),
            is_test=True,
            pinned=pins,
            started_by=user,
            started_by_label=label,
            heartbeat_at=timezone.now(),
        )
        record(
            request if request is not None else user,
            "run.test_started",
            run,
            after={
                "loop": parsed.name,
                "loop_id": loop.pk if loop is not None else None,
                "dry_run": dry_run,
                "pinned": sorted(pins),
                **({"model": run.model} if run.model else {}),
                "by": label,
            },
        )
        run_id = run.pk
        transaction.on_commit(lambda: lifecycle.queue().execute(run_id))
    return run


def rerun_test_run(run: Run, *, actor: Any = None, request: Any = None) -> Run:
    """Start test run *run*'s draft again (same inputs, payload, pins, mode and model)."""
    again = start_test_run(
        run.team,
        run.loop,
        yaml_text=run.loop_yaml,
        dry_run=run.dry_run,
        inputs=run.inputs,
        payload=run.trigger_payload or None,
        pinned=run.pinned,
        model=run.model,
        actor=actor,
        request=request,
    )
    Run.objects.filter(pk=again.pk).update(rerun_of=run)
    again.rerun_of = run
    return again

"""Run pages: the team's latest runs, one run live, and the "Run" button of loop pages."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from builder.models import Loop
from loopkit import spec
from loopkit.document import analyze
from loopkit.yamlio import to_data
from loopkit_web.errors import ApiError
from loopkit_web.teams.models import ROLE_RANK
from loopkit_web.teams.scoping import get_scoped_or_404, membership_for, require_role
from runs import lifecycle, looptests
from runs.api import parse_payload
from runs.models import LoopTest, Run, RunCassette
from runs.starts import sample_payload_text
from runs.triggers import current_spec


@login_required
def run_list(request: HttpRequest) -> HttpResponse:
    runs = Run.objects.real().for_current_team(request).select_related("loop")[:100]
    return render(request, "runs/run_list.html", {"runs": runs})


def _steps(loop: spec.Loop | None) -> list[dict[str, Any]]:
    if loop is None:
        return []
    out = []
    for path, step in spec.iter_loop_steps(loop):
        top = path.split("[", 1)[0]
        if path == f"{top}[0]" and top != "pipeline":  # onPass / onFail: run after the rounds
            out.append({"key": top, "label": top, "kind": "sequential", "depth": 0})
        label = getattr(step, "label", None)
        kind = type(step).__name__.removesuffix("Step").lower()
        out.append({"key": path, "label": label or path, "kind": kind, "depth": path.count(".")})
    return out


@login_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_scoped_or_404(Run.objects.select_related("loop", "team"), request, pk=run_id)
    membership = membership_for(request, run.team)
    analysis = analyze(run.loop_yaml)
    parsed = analysis.loop
    steps = _steps(parsed)
    last = run.events.order_by("-seq").values_list("seq", flat=True).first()
    context = {
        "run": run,
        "steps": steps,
        "can_edit": membership is not None and ROLE_RANK[membership.role] >= ROLE_RANK["editor"],
        # "Keep as test" is offered for a finished run whose recording is stored.
        "recorded": run.is_terminal
        and run.loop_id is not None
        and RunCassette.objects.filter(run=run).exists(),
        "page": {
            "run_id": run.pk,
            "status": run.status,
            "spec": analysis.data,
            "budget": to_data(parsed.budget) if parsed is not None and parsed.budget else {},
            "graph": bool(finders.find("editor/graph.js")),
            "steps": [{k: s[k] for k in ("key", "label", "kind")} for s in steps],
            # The page of a finished run settles its nodes once it has shown this event.
            "last_seq": last or 0,
            "started_at": run.started_at.timestamp() if run.started_at else None,
            "finished_at": run.finished_at.timestamp() if run.finished_at else None,
            "slow_poll_ms": getattr(settings, "LOOPKIT_RUN_PAGE_POLL_MS", 0),
        },
    }
    return render(request, "runs/run_detail.html", context)


def _dialog_payload(request: HttpRequest, loop: Loop) -> dict[str, Any] | None:
    """Return the Run dialog's payload; None when empty or GitHub's sample left unchanged
    (the engine then reads its own sample, where what the example lacks is a placeholder)."""
    text = request.POST.get("payload", "")
    payload = parse_payload(text)
    parsed = current_spec(loop)
    if payload is not None and parsed is not None:
        sample = sample_payload_text(parsed.effective_trigger)
        if sample and json.loads(sample) == payload:
            return None
    return payload


@login_required
@require_POST
def start(request: HttpRequest, loop_id: int) -> HttpResponse:
    """Start a run of a loop from its page: the "Dry run" button, or the Run dialog's form
    (``input.<name>`` fields, ``payload``, ``dry_run``, ``model``)."""
    loop = get_scoped_or_404(Loop, request, pk=loop_id)
    require_role(request, "editor", team=loop.team)
    # A checkbox posts a hidden "false" then "true" when ticked: the last value wins.
    inputs = {
        key.removeprefix("input."): request.POST.getlist(key)[-1]
        for key in request.POST
        if key.startswith("input.")
    }
    try:
        run = lifecycle.start_run(
            loop,
            trigger_type="manual",
            payload=_dialog_payload(request, loop),
            inputs=inputs,
            dry_run=request.POST.get("dry_run") in ("1", "true", "on"),
            actor=request.user,
            request=request,
            model=request.POST.get("model", ""),
        )
    except ApiError as exc:
        messages.error(request, exc.message)
        return redirect(request.POST.get("next") or "runs:run_list")
    return redirect("runs:run_detail", run_id=run.pk)


# ── Loop tests (runs.looptests) ─────────────────────────────────────────────


def _tests_url(loop_id: int) -> str:
    return f"/loops/{loop_id}/#tests"


@login_required
@require_POST
def keep_as_test(request: HttpRequest, run_id: int) -> HttpResponse:
    """The run page's "Keep as test": a test of the run's loop from its recording."""
    run = get_scoped_or_404(Run.objects.select_related("loop__team"), request, pk=run_id)
    require_role(request, "editor", team=run.team)
    try:
        test = looptests.keep_as_test(request, run, request.POST.get("name", ""))
    except ApiError as exc:
        messages.error(request, exc.message)
        return redirect("runs:run_detail", run_id=run.pk)
    messages.success(request, f"Kept run #{run.pk} as the test '{test.name}'.")
    return redirect(_tests_url(test.loop_id))


@login_required
@require_POST
def run_loop_tests(request: HttpRequest, loop_id: int) -> HttpResponse:
    """The loop page's "Run tests": replay every test against the current version."""
    loop = get_scoped_or_404(Loop.objects.select_related("team"), request, pk=loop_id)
    require_role(request, "editor", team=loop.team)
    results = looptests.run_tests(request, loop)
    passed = sum(1 for r in results if r.passed)
    messages.info(request, f"Tests: {passed}/{len(results)} passed on v{loop.version}.")
    return redirect(_tests_url(loop.pk))


@login_required
@require_POST
def delete_loop_test(request: HttpRequest, loop_id: int, test_id: int) -> HttpResponse:
    test = get_scoped_or_404(
        LoopTest.objects.select_related("loop__team"), request, pk=test_id, loop_id=loop_id
    )
    require_role(request, "editor", team=test.loop.team)
    looptests.delete_test(request, test)
    messages.success(request, f"Deleted the test '{test.name}'.")
    return redirect(_tests_url(loop_id))

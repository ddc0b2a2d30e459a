"""The runs API: /api/runs (start, read, events, cancel, re-run, approvals) and /api/events.

Reading needs membership of the run's team (another team's ids are 404);
starting, cancelling and re-running need the editor role; an approval needs
the roles its step names (editor and above when it names none).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status

from builder.models import Loop
from loopkit_web.errors import MAX_ID, Conflict, Invalid, NotFound, errors
from loopkit_web.openapi import exactly_one_of
from loopkit_web.teams.scoping import (
    current_team,
    get_scoped_or_404,
    membership_for,
    require_role,
)
from runs import approvals, drafts, lifecycle, looptests
from runs.models import ApprovalRequest, ApprovalStatus, LoopTest, Run, RunEvent
from runs.triggers import raise_custom_event

API_PREFIX = ""
router = Router(tags=["runs"])


class StartIn(Schema):
    model_config = exactly_one_of("loop_id", "loop")

    loop_id: int | None = Field(None, ge=1, le=MAX_ID)
    loop: str | None = None
    inputs: dict[str, Any] = {}
    payload: dict[str, Any] | str | None = Field(
        None,
        description="The trigger's payload (``trigger.payload``): a JSON object, or its text "
        "as pasted from a delivery. Without one, a dry run reads a sample of the trigger's event.",
    )
    dry_run: bool = False
    model: str = Field(
        "",
        max_length=200,
        description="A LiteLLM model string for this run, in place of the loop's model.",
    )


def parse_payload(raw: dict[str, Any] | str | None) -> dict[str, Any] | None:
    """Return the payload object of a request, parsing pasted text; refuse what is not one."""
    if raw is None or isinstance(raw, dict):
        return raw
    if not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        message = f"payload is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    else:
        if isinstance(value, dict):
            return value
        message = f"payload must be a JSON object, not {type(value).__name__ if value is not None else 'null'}"
    raise Invalid(
        message, details=[{"loc": ["body", "payload"], "msg": message, "type": "payload"}]
    )


class TestRunIn(Schema):
    model_config = exactly_one_of("yaml", "spec")

    yaml: str | None = Field(None, description="The draft as YAML text (what the editor holds).")
    spec: dict[str, Any] | None = Field(None, description="The draft as camelCase loop data.")
    dry_run: bool = Field(True, description="A dry run (no model, no cost); false: live.")
    inputs: dict[str, Any] = {}
    payload: dict[str, Any] | str | None = None
    pinned: dict[str, Any] = Field(
        {},
        description="Pinned outputs: step label (or path) → output text; those steps are "
        "answered with it, without a model call.",
    )
    model: str = Field("", max_length=200)


class EventOut(Schema):
    seq: int
    type: str
    payload: dict[str, Any]
    created_at: datetime


class ApprovalOut(Schema):
    id: int
    step: str
    question: str
    approvers: list[str]
    status: str
    expires_at: datetime | None
    decided_by: str
    decided_at: datetime | None
    comment: str


class RunOut(Schema):
    id: int
    loop_id: int | None
    loop: str
    version: int
    status: str
    trigger_type: str
    trigger_payload: dict[str, Any]
    inputs: dict[str, Any]
    dry_run: bool
    model: str
    started_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    tokens_in: int
    tokens_out: int
    tokens_cached: int
    tokens_reasoning: int
    cost_usd: float | None = Field(
        description="The cost of the calls whose usage is recorded (null: a price is unknown)."
    )
    cost_known: bool = Field(
        description="cost_usd is the whole cost: every price known and no lost call."
    )
    lost_calls: int = Field(
        description="Model calls in flight when a worker died: paid, made again on resume, "
        "their tokens and cost unknown (in no total)."
    )
    cost_label: str = Field(
        description='The cost in words: "$0.0123", "unknown", '
        '"$0.0123 + 1 lost call (cost unknown)".'
    )
    verification_rounds: int
    final_score: float | None
    models: list[str]
    error: str
    last_seq: int
    rerun_of: int | None
    is_test: bool = Field(description="A test run of an unsaved draft from the editor.")
    pinned: list[str] = Field(description="The steps whose outputs were pinned (test runs).")
    url: str
    approvals: list[ApprovalOut]


class DecisionIn(Schema):
    comment: str = ""


class CustomEventIn(Schema):
    event: str
    payload: dict[str, Any] = {}
    dry_run: bool = False


class CustomEventOut(Schema):
    event: str
    runs: list[int]


def approval_out(a: ApprovalRequest) -> dict[str, Any]:
    return {
        "id": a.pk,
        "step": a.step,
        "question": a.question,
        "approvers": a.approvers,
        "status": a.status,
        "expires_at": a.expires_at,
        "decided_by": a.decided_by_label,
        "decided_at": a.decided_at,
        "comment": a.comment,
    }


def run_out(run: Run) -> dict[str, Any]:
    """Return the API body of a run."""
    return {
        "id": run.pk,
        "loop_id": run.loop_id,
        "loop": run.loop_name,
        "version": run.version_number,
        "status": run.status,
        "trigger_type": run.trigger_type,
        "trigger_payload": run.trigger_payload,
        "inputs": run.inputs,
        "dry_run": run.dry_run,
        "model": run.model,
        "started_by": run.started_by_label,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "tokens_in": run.tokens_in,
        "tokens_out": run.tokens_out,
        "tokens_cached": run.tokens_cached,
        "tokens_reasoning": run.tokens_reasoning,
        "cost_usd": None if run.cost_usd is None else float(run.cost_usd),
        "cost_known": run.cost_known,
        "lost_calls": run.lost_calls,
        "cost_label": run.cost_label,
        "verification_rounds": run.verification_rounds,
        "final_score": run.final_score,
        "models": run.models_used,
        "error": run.error,
        "last_seq": run.last_seq,
        "rerun_of": run.rerun_of_id,
        "is_test": run.is_test,
        "pinned": sorted(run.pinned or {}),
        "url": f"/runs/{run.pk}/",
        "approvals": [approval_out(a) for a in run.approvals.all()],
    }


@router.post(
    "/runs",
    response={201: RunOut, **errors(400, 403, 404, 413, 422)},
    summary="Start a run (manual trigger)",
)
def start(request: HttpRequest, body: StartIn) -> Status[Any]:
    if (body.loop_id is None) == (body.loop is None):
        raise Invalid("give exactly one of loop_id or loop (the loop's name)")
    loops = Loop.objects.for_request(request)
    if body.loop_id is not None:
        loop = get_scoped_or_404(loops, request, pk=body.loop_id)
    else:
        team = current_team(request)
        loop = loops.filter(team=team, name=body.loop).first()
        if loop is None:
            raise NotFound(f"no loop named '{body.loop}' in team {team}")
    require_role(request, "editor", team=loop.team)
    run = lifecycle.start_run(
        loop,
        trigger_type="manual",
        payload=parse_payload(body.payload),
        inputs=body.inputs,
        dry_run=body.dry_run,
        actor=request.user,
        request=request,
        model=body.model,
    )
    run.refresh_from_db()
    return Status(201, run_out(run))


def _test_run(request: HttpRequest, team: Any, loop: Loop | None, body: TestRunIn) -> Status[Any]:
    if (body.yaml is None) == (body.spec is None):
        raise Invalid("send exactly one of 'yaml' or 'spec' (the draft)")
    run = drafts.start_test_run(
        team,
        loop,
        yaml_text=body.yaml,
        data=body.spec,
        dry_run=body.dry_run,
        inputs=body.inputs,
        payload=parse_payload(body.payload),
        pinned=body.pinned,
        model=body.model,
        actor=request.user,
        request=request,
    )
    run.refresh_from_db()
    return Status(201, run_out(run))


TEST_RUN_ERRORS = errors(400, 403, 404, 413, 422)


@router.post(
    "/loops/new/test-runs",
    response={201: RunOut, **TEST_RUN_ERRORS},
    summary="Test-run the draft of a new loop (not saved yet)",
)
def test_run_new(request: HttpRequest, body: TestRunIn) -> Status[Any]:
    """Run the draft of a loop that has no saved version, in the current team.

    Registered before ``/loops/{id}/test-runs``, whose ``id`` would take "new".
    """
    team = current_team(request)
    require_role(request, "editor", team=team)
    return _test_run(request, team, None, body)


@router.post(
    "/loops/{id:loop_id}/test-runs",
    response={201: RunOut, **TEST_RUN_ERRORS},
    summary="Test-run a draft of a loop (no version saved)",
)
def test_run(request: HttpRequest, loop_id: int, body: TestRunIn) -> Status[Any]:
    """Run the editor's current draft of this loop, dry or live, without saving it.

    The run is marked ``is_test``: it is not in the runs list nor the dashboard.
    """
    loop = get_scoped_or_404(Loop.objects.select_related("team"), request, pk=loop_id)
    require_role(request, "editor", team=loop.team)
    return _test_run(request, loop.team, loop, body)


@router.get(
    "/runs", response={200: list[RunOut], **errors(422)}, summary="The current team's latest runs"
)
def list_runs(request: HttpRequest, limit: int = 50) -> list[dict[str, Any]]:
    """``limit`` is clamped to 1-200."""
    runs = Run.objects.real().for_current_team(request).prefetch_related("approvals")
    return [run_out(r) for r in runs[: max(1, min(limit, 200))]]


@router.get("/runs/{id:run_id}", response={200: RunOut, **errors(404)})
def get_run(request: HttpRequest, run_id: int) -> dict[str, Any]:
    return run_out(get_scoped_or_404(Run, request, pk=run_id))


class EventsQuery(Schema):
    after: int = Field(0, le=MAX_ID, description="Events with a greater seq (0: from the start).")
    limit: int = Field(500, description="Clamped to 1-1000.")


@router.get(
    "/runs/{id:run_id}/events",
    response={200: list[EventOut], **errors(404, 422)},
    summary="Events after a seq",
)
def events(request: HttpRequest, run_id: int, q: Query[EventsQuery]) -> list[RunEvent]:
    run = get_scoped_or_404(Run, request, pk=run_id)
    rows = RunEvent.objects.filter(run=run, seq__gt=max(q.after, 0)).order_by("seq")
    return list(rows[: max(1, min(q.limit, 1000))])


@router.post("/runs/{id:run_id}/cancel", response={202: RunOut, **errors(403, 404, 409)})
def cancel(request: HttpRequest, run_id: int) -> Status[Any]:
    run = get_scoped_or_404(Run, request, pk=run_id)
    require_role(request, "editor", team=run.team)
    if not lifecycle.request_cancel(run, actor=request.user, request=request):
        raise Conflict(f"the run has already finished ({run.status})")
    run.refresh_from_db()
    return Status(202, run_out(run))


@router.post("/runs/{id:run_id}/rerun", response={201: RunOut, **errors(403, 404, 409)})
def rerun(request: HttpRequest, run_id: int) -> Status[Any]:
    run = get_scoped_or_404(Run, request, pk=run_id)
    require_role(request, "editor", team=run.team)
    if run.is_test:  # the same draft, as a test run again: never a run of a saved loop
        new = drafts.rerun_test_run(run, actor=request.user, request=request)
    else:
        new = lifecycle.rerun(run, actor=request.user, request=request)
    new.refresh_from_db()
    return Status(201, run_out(new))


def _decide(
    request: HttpRequest, run_id: int, approval_id: int, approved: bool, comment: str
) -> dict[str, Any]:
    run = get_scoped_or_404(Run, request, pk=run_id)
    require_role(request, "viewer", team=run.team)
    approval = ApprovalRequest.objects.filter(run=run, pk=approval_id).first()
    if approval is None:
        raise NotFound("not found")
    if approval.status != ApprovalStatus.PENDING:
        raise Conflict(f"this approval was already decided ({approval.status})")
    approvals.decide_approval(
        approval,
        approved=approved,
        comment=comment,
        membership=membership_for(request, run.team),
        request=request,
    )
    return approval_out(approval)


DECISION_ERRORS = errors(400, 403, 404, 409, 413, 422)


@router.post(
    "/runs/{id:run_id}/approvals/{id:approval_id}/approve",
    response={200: ApprovalOut, **DECISION_ERRORS},
)
def approve(
    request: HttpRequest, run_id: int, approval_id: int, body: DecisionIn
) -> dict[str, Any]:
    return _decide(request, run_id, approval_id, True, body.comment)


@router.post(
    "/runs/{id:run_id}/approvals/{id:approval_id}/reject",
    response={200: ApprovalOut, **DECISION_ERRORS},
)
def reject(request: HttpRequest, run_id: int, approval_id: int, body: DecisionIn) -> dict[str, Any]:
    return _decide(request, run_id, approval_id, False, body.comment)


@router.post(
    "/events",
    response={202: CustomEventOut, **errors(400, 403, 404, 413, 422)},
    summary="Raise a named custom event",
)
def custom_event(request: HttpRequest, body: CustomEventIn) -> Status[Any]:
    team = current_team(request)
    require_role(request, "editor", team=team)
    name = body.event.strip()
    if not name:
        raise Invalid("the event needs a name")
    runs = raise_custom_event(
        team.pk,  # type: ignore[union-attr]  # require_role refused a missing team (404)
        name,
        body.payload,
        actor=request.user,
        request=request,
        dry_run=body.dry_run,
    )
    return Status(202, {"event": name, "runs": [r.pk for r in runs]})


# ── Loop tests (docs/testing.md, "In the web app") ──────────────────────────


class KeepIn(Schema):
    name: str = Field("", max_length=100, description="Default: <loop>-run-<id>.")
    test_yaml: str | None = Field(
        None, description="The test file (expectations); default: the run's status and rounds."
    )


class TestYamlIn(Schema):
    test_yaml: str


class RunTestsIn(Schema):
    version: int | None = Field(None, ge=1, le=MAX_ID, description="Default: the current one.")


class TestResultOut(Schema):
    test_id: int
    test: str
    version: int
    passed: bool
    status: str
    failures: list[dict[str, Any]]
    replayed: int
    duration_s: float
    trigger: str
    created_at: datetime


class LoopTestOut(Schema):
    id: int
    loop_id: int
    name: str
    source_run: int | None
    source_version: int
    created_at: datetime
    test_yaml: str
    last_result: TestResultOut | None
    cassette: str | None = None


class TestsRunOut(Schema):
    version: int | None
    total: int
    passed: int
    failed: int
    results: list[TestResultOut]


def _loop_test(request: HttpRequest, loop_id: int, test_id: int, role: str) -> LoopTest:
    test: LoopTest = get_scoped_or_404(
        LoopTest.objects.select_related("loop__team"), request, pk=test_id, loop_id=loop_id
    )
    require_role(request, role, team=test.loop.team)
    return test


@router.post(
    "/runs/{id:run_id}/keep-as-test",
    response={201: LoopTestOut, **errors(400, 403, 404, 409, 413, 422)},
    summary="Keep a finished live run as a test of its loop",
)
def keep_as_test(request: HttpRequest, run_id: int, body: KeepIn) -> Status[Any]:
    run = get_scoped_or_404(Run.objects.select_related("loop__team"), request, pk=run_id)
    require_role(request, "editor", team=run.team)
    test = looptests.keep_as_test(request, run, body.name, body.test_yaml)
    return Status(201, looptests.test_out(test))


@router.get(
    "/loops/{id:loop_id}/tests",
    response={200: list[LoopTestOut], **errors(404)},
    summary="A loop's tests and their last results",
)
def list_tests(request: HttpRequest, loop_id: int) -> list[dict[str, Any]]:
    loop = get_scoped_or_404(Loop, request, pk=loop_id)
    return [looptests.test_out(t) for t in LoopTest.objects.filter(loop=loop)]


@router.post(
    "/loops/{id:loop_id}/tests/run",
    response={200: TestsRunOut, **errors(400, 403, 404, 413, 422)},
    summary="Replay a loop's tests against a version (dry: from their cassettes)",
)
def run_loop_tests(request: HttpRequest, loop_id: int, body: RunTestsIn) -> dict[str, Any]:
    loop = get_scoped_or_404(Loop.objects.select_related("team"), request, pk=loop_id)
    require_role(request, "editor", team=loop.team)
    number = body.version or loop.version
    version = loop.versions.filter(number=number).first()
    if version is None:
        raise NotFound(f"loop '{loop.name}' has no version {number}")
    return looptests.summary(looptests.run_tests(request, loop, version))


@router.get(
    "/loops/{id:loop_id}/tests/{id:test_id}",
    response={200: LoopTestOut, **errors(404)},
    summary="A test: its file and cassette",
)
def get_test(request: HttpRequest, loop_id: int, test_id: int) -> dict[str, Any]:
    return looptests.test_out(_loop_test(request, loop_id, test_id, "viewer"), full=True)


@router.put(
    "/loops/{id:loop_id}/tests/{id:test_id}",
    response={200: LoopTestOut, **errors(400, 403, 404, 413, 422)},
    summary="Replace a test's file (its expectations)",
)
def update_test(request: HttpRequest, loop_id: int, test_id: int, body: TestYamlIn) -> Any:
    test = _loop_test(request, loop_id, test_id, "editor")
    return looptests.test_out(looptests.update_test(request, test, body.test_yaml))


@router.delete(
    "/loops/{id:loop_id}/tests/{id:test_id}",
    response={204: None, **errors(403, 404)},
    summary="Delete a test",
)
def delete_test(request: HttpRequest, loop_id: int, test_id: int) -> Status[None]:
    looptests.delete_test(request, _loop_test(request, loop_id, test_id, "editor"))
    return Status(204, None)

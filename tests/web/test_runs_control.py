"""Approval gates, cancel, the per-team concurrency limit and terminal statuses.

Runs execute on this process's run host (``runs.host``), as in a worker:
inline where Huey runs tasks inline (the test settings), or started from a
thread so the test can act on a run through the API while it works.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from loopkit_web.audit.models import AuditEvent
from runs import lifecycle
from runs.host import host
from runs.lifecycle import start_run
from runs.models import ApprovalRequest, Run, Status

from .runs_support import CollectingQueue, event_types, loop_yaml, make_loop

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def team(make_team: Any) -> tuple[Any, dict[str, Any]]:
    return make_team("Acme", roles=["owner", "admin", "editor", "viewer"])


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Keep started runs queued (collect their ids) instead of executing them inline."""
    ids = CollectingQueue()
    monkeypatch.setattr(lifecycle, "_queue", ids)
    yield ids


def execute(run_id: int) -> str:
    """Execute a run on the host as a worker's task does; return how it ended."""
    started = host().execute(run_id)
    return started if isinstance(started, str) else started.result(timeout=30)


def in_thread(run_id: int) -> threading.Thread:
    def work() -> None:
        try:
            execute(run_id)
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def wait_for(what: str, check: Callable[[], Any], timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def test_a_run_suspends_at_an_approval_and_the_decision_resumes_it(
    team: Any, client_for: Any
) -> None:
    acme, users = team
    loop = make_loop(acme, approval=True)
    run = start_run(loop, trigger_type="manual", dry_run=True, actor=users["editor"])
    run.refresh_from_db()
    # Parked: waiting, held by no worker, not in the host.
    assert (run.status, run.worker) == (Status.WAITING, lifecycle.SUSPENDED)
    assert run.pk not in host().runs
    assert event_types(run)[-1] == "run_suspended"
    approval = ApprovalRequest.objects.get(run=run)
    assert approval.step == "Ship"
    assert approval.approvers == ["admin"]
    url = f"/api/runs/{run.pk}/approvals/{approval.pk}/approve"
    refused = client_for(users["editor"]).post(
        url, {"comment": "lgtm"}, content_type="application/json"
    )
    assert refused.status_code == 403
    assert refused.json()["message"] == "only admin (or higher) may decide this approval"
    response = client_for(users["admin"]).post(
        url, {"comment": "ship it"}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "approved"
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED
    types = event_types(run)
    assert types.count("approval_requested") == 1
    assert types.index("approval_requested") < types.index("run_suspended")
    assert types.index("run_suspended") < types.index("approval_resolved")
    assert types.count("run_finished") == 1 and types[-1] == "run_finished"
    resolved = run.events.get(type="approval_resolved").payload
    assert resolved["approved"] is True and resolved["by"] == users["admin"].username
    assert resolved["reason"] == "ship it"
    # The reviews before the gate ran once: the resume answered them from checkpoints.
    finished = run.events.filter(type="step_finished", payload__kind="agent")
    assert sorted(e.payload["label"] for e in finished if not e.payload.get("resumed")) == [
        "Bug Review",
        "Security Review",
        "Summary",
    ]
    assert (
        AuditEvent.objects.filter(action="run.approval_approved", target_id=str(run.pk)).count()
        == 1
    )
    again = client_for(users["owner"]).post(url, {}, content_type="application/json")
    assert again.status_code == 409


def test_a_rejected_approval_stops_the_run(team: Any, client_for: Any) -> None:
    acme, users = team
    loop = make_loop(acme, approval=True)
    run = start_run(loop, trigger_type="manual", dry_run=True, actor=users["editor"])
    approval = ApprovalRequest.objects.get(run=run)
    client_for(users["owner"]).post(
        f"/api/runs/{run.pk}/approvals/{approval.pk}/reject",
        {"comment": "not this week"},
        content_type="application/json",
    )
    run.refresh_from_db()
    assert run.status == Status.CANCELLED
    assert "not this week" in run.error
    assert "Summary" not in run.outputs  # the step after the gate never ran
    assert AuditEvent.objects.filter(action="run.approval_rejected").count() == 1


def test_an_approval_times_out_as_the_loop_says(team: Any) -> None:
    acme, users = team
    yaml = loop_yaml(approval=True).replace(
        "approvers:", "timeoutMinutes: 0.005\n    onTimeout: approve\n    approvers:"
    )
    loop = make_loop(acme, yaml=yaml)
    run = start_run(loop, trigger_type="manual", dry_run=True, actor=users["editor"])
    approval = ApprovalRequest.objects.get(run=run)
    assert approval.expires_at is not None
    wait_for("the gate's deadline", lambda: approval.expires_at < timezone.now())
    # The deadline's scheduled task, or the minute's sweep if that task was lost.
    assert lifecycle.recover()["woken"] == [run.pk]
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED
    approval.refresh_from_db()
    assert (approval.status, approval.decided_by_label) == ("approved", "timeout")
    resolved = run.events.get(type="approval_resolved").payload
    assert resolved["timed_out"] is True


def test_cancelling_a_suspended_run_closes_its_approval(team: Any, client_for: Any) -> None:
    acme, users = team
    run = start_run(
        make_loop(acme, approval=True), trigger_type="manual", dry_run=True, actor=users["editor"]
    )
    assert client_for(users["editor"]).post(f"/api/runs/{run.pk}/cancel").status_code == 202
    run.refresh_from_db()
    assert run.status == Status.CANCELLED
    approval = ApprovalRequest.objects.get(run=run)
    assert (approval.status, approval.decided_by_label) == ("rejected", "cancel")
    finished = run.events.filter(type="run_finished")
    assert [e.payload["status"] for e in finished] == ["cancelled"]
    assert finished[0].payload["tokens"]["input"] == run.tokens_in


def test_cancel_stops_a_running_run_and_keeps_its_outputs(
    team: Any, queued: list[int], client_for: Any
) -> None:
    acme, users = team
    loop = make_loop(acme, latency_ms=300)
    run = start_run(loop, trigger_type="manual", dry_run=True, actor=users["editor"])
    thread = in_thread(run.pk)
    wait_for(
        "the parallel reviews to finish",
        lambda: run.events.filter(type="step_finished", payload__kind="parallel").exists(),
    )
    response = client_for(users["editor"]).post(f"/api/runs/{run.pk}/cancel")
    assert response.status_code == 202
    thread.join(timeout=15)
    run.refresh_from_db()
    assert run.status == Status.CANCELLED
    assert {"Bug Review", "Security Review"} <= set(run.outputs)
    assert event_types(run)[-1] == "run_finished"
    assert client_for(users["editor"]).post(f"/api/runs/{run.pk}/cancel").status_code == 409
    assert AuditEvent.objects.filter(action="run.cancel_requested").count() == 1


def test_cancelling_a_queued_run_finishes_it_at_once(
    team: Any, queued: list[int], client_for: Any
) -> None:
    acme, users = team
    run = start_run(make_loop(acme), trigger_type="manual", dry_run=True, actor=users["editor"])
    assert client_for(users["editor"]).post(f"/api/runs/{run.pk}/cancel").status_code == 202
    run.refresh_from_db()
    assert run.status == Status.CANCELLED
    assert execute(run.pk) == "skipped"  # its task, when it comes, does nothing


def test_a_terminal_status_is_never_overwritten(team: Any, queued: list[int]) -> None:
    acme, users = team
    run = start_run(make_loop(acme), trigger_type="manual", dry_run=True, actor=users["editor"])
    assert run.transition(Status.CANCELLED, allowed_from={Status.QUEUED})
    stale = Run.objects.get(pk=run.pk)
    stale.status = Status.RUNNING  # a worker holding an old copy
    assert lifecycle.finish(stale, Status.SUCCEEDED) is False
    assert Run.objects.get(pk=run.pk).status == Status.CANCELLED


def test_a_team_at_its_concurrency_limit_waits(team: Any, queued: list[int], settings: Any) -> None:
    settings.LOOPKIT_RUN_CONCURRENCY_PER_TEAM = 1
    acme, users = team
    loop = make_loop(acme)
    busy = start_run(loop, trigger_type="manual", dry_run=True, actor=users["editor"])
    busy.transition(Status.RUNNING, allowed_from={Status.QUEUED})
    waiting = start_run(loop, trigger_type="manual", dry_run=True, actor=users["editor"])
    assert execute(waiting.pk) == "defer"
    assert Run.objects.get(pk=waiting.pk).status == Status.QUEUED
    busy.transition(Status.SUCCEEDED, allowed_from={Status.RUNNING})
    assert execute(waiting.pk) == "succeeded"


def test_recovery_fails_a_run_whose_worker_was_lost_too_often(team: Any, queued: list[int]) -> None:
    from datetime import timedelta

    from django.utils import timezone

    acme, users = team
    run = start_run(make_loop(acme), trigger_type="manual", dry_run=True, actor=users["editor"])
    old = timezone.now() - timedelta(minutes=5)
    Run.objects.filter(pk=run.pk).update(status=Status.RUNNING, attempt=3, heartbeat_at=old)
    assert lifecycle.recover() == {
        "resumed": [],
        "failed": [run.pk],
        "requeued": [],
        "woken": [],
    }
    run.refresh_from_db()
    assert run.status == Status.FAILED
    assert run.error == (
        "the worker running it stopped responding 3 times; giving up (LOOPKIT_RUN_MAX_ATTEMPTS)"
    )
    assert event_types(run)[-1] == "run_finished"


def test_recovery_leaves_live_runs_alone_and_requeues_lost_queued_ones(
    team: Any, queued: list[int]
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    acme, users = team
    loop = make_loop(acme)
    alive = start_run(loop, trigger_type="manual", dry_run=True, actor=users["editor"])
    Run.objects.filter(pk=alive.pk).update(status=Status.RUNNING, heartbeat_at=timezone.now())
    lost = start_run(loop, trigger_type="manual", dry_run=True, actor=users["editor"])
    Run.objects.filter(pk=lost.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    queued.clear()
    assert lifecycle.recover() == {
        "resumed": [],
        "failed": [],
        "requeued": [lost.pk],
        "woken": [],
    }
    assert queued == [lost.pk]


def test_a_worker_whose_run_was_taken_over_stops_and_leaves_it_to_the_new_owner(
    team: Any, queued: list[int], settings: Any
) -> None:
    settings.LOOPKIT_RUN_HEARTBEAT_SECONDS = 0.1
    acme, users = team
    run = start_run(
        make_loop(acme, latency_ms=400), trigger_type="manual", dry_run=True, actor=users["editor"]
    )
    outcome: list[str] = []

    def work() -> None:
        try:
            outcome.append(execute(run.pk))
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    wait_for("the run to start", lambda: run.events.filter(type="step_started").exists())
    # What recovery does when it believes the worker dead.
    Run.objects.filter(pk=run.pk).update(worker=lifecycle.RECOVERING, attempt=2)
    thread.join(timeout=15)
    assert outcome == ["lost"]
    run.refresh_from_db()
    assert run.status == Status.RUNNING  # the new owner finishes it
    assert "run_finished" not in event_types(run)


def test_a_team_can_have_its_own_concurrency_limit(
    team: Any, queued: list[int], settings: Any
) -> None:
    acme, users = team
    settings.LOOPKIT_RUN_CONCURRENCY_PER_TEAM = 1
    settings.LOOPKIT_RUN_CONCURRENCY_BY_TEAM = {acme.slug: 2}
    loop = make_loop(acme)
    busy = start_run(loop, trigger_type="manual", dry_run=True, actor=users["editor"])
    busy.transition(Status.RUNNING, allowed_from={Status.QUEUED})
    second = start_run(loop, trigger_type="manual", dry_run=True, actor=users["editor"])
    assert execute(second.pk) == "succeeded"


def test_an_escalated_verification_suspends_until_a_person_accepts_the_best_round(
    team: Any, client_for: Any
) -> None:
    acme, users = team
    yaml = loop_yaml(scores=[0.3, 0.4]).replace(
        "checker: Adversarial Verifier",
        "checker: Adversarial Verifier\n  maxRounds: 2\n  onFail: escalate",
    )
    run = start_run(
        make_loop(acme, yaml=yaml), trigger_type="manual", dry_run=True, actor=users["editor"]
    )
    run.refresh_from_db()
    # No round passed: the run waits for a person, holding no worker.
    assert (run.status, run.worker) == (Status.WAITING, lifecycle.SUSPENDED)
    approval = ApprovalRequest.objects.get(run=run)
    assert "Verification" in approval.step
    response = client_for(users["admin"]).post(
        f"/api/runs/{run.pk}/approvals/{approval.pk}/approve",
        {"comment": "good enough"},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED
    finished = run.events.get(type="run_finished").payload
    assert finished["accepted"] == "approved"
    assert event_types(run).count("verification_round") == 2

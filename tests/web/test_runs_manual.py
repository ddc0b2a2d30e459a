"""Manual runs through the API (Huey in immediate mode: the task runs inline)."""

from __future__ import annotations

from typing import Any

import pytest

from runs.models import Run, RunEvent

from .runs_support import event_types, make_loop

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def team(make_team: Any) -> tuple[Any, dict[str, Any]]:
    return make_team("Acme", roles=["owner", "admin", "editor", "viewer"])


def test_it_runs_a_dry_run_to_success_and_stores_every_event(team: Any, client_for: Any) -> None:
    acme, users = team
    loop = make_loop(acme)
    response = client_for(users["editor"]).post(
        "/api/runs", {"loop_id": loop.pk, "dry_run": True}, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    run = Run.objects.get(pk=response.json()["id"])
    assert run.status == "succeeded"
    assert run.trigger_type == "manual"
    assert run.started_by == users["editor"]
    types = event_types(run)
    assert types[0] == "run_started"
    assert types[-1] == "run_finished"
    assert "verification_round" in types
    seqs = list(run.events.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert run.last_seq == len(seqs)
    assert run.verification_rounds == 1
    assert run.final_score == pytest.approx(0.95)
    assert run.finished_at is not None
    assert set(run.outputs) == {"Bug Review", "Security Review", "Summary"}


def test_it_refuses_a_viewer_starting_a_run(team: Any, client_for: Any) -> None:
    acme, users = team
    loop = make_loop(acme)
    response = client_for(users["viewer"]).post(
        "/api/runs", {"loop_id": loop.pk, "dry_run": True}, content_type="application/json"
    )
    assert response.status_code == 403
    assert Run.objects.count() == 0


def test_it_reruns_with_the_same_inputs(team: Any, client_for: Any) -> None:
    acme, users = team
    loop = make_loop(acme, inputs={"repo": {"description": "repo", "required": True}})
    client = client_for(users["editor"])
    first = client.post(
        "/api/runs",
        {"loop_id": loop.pk, "dry_run": True, "inputs": {"repo": "acme/api"}},
        content_type="application/json",
    ).json()
    again = client.post(f"/api/runs/{first['id']}/rerun").json()
    assert again["inputs"] == {"repo": "acme/api"}
    assert again["rerun_of"] == first["id"]
    assert again["trigger_type"] == "rerun"
    assert again["status"] == "succeeded"


def test_it_names_a_missing_required_input_of_a_live_run(team: Any, client_for: Any) -> None:
    # A dry run is never refused for an input (test_runs_dry_run_defaults.py).
    acme, users = team
    loop = make_loop(acme, inputs={"repo": {"description": "repo", "required": True}})
    response = client_for(users["editor"]).post(
        "/api/runs", {"loop_id": loop.pk, "dry_run": False}, content_type="application/json"
    )
    assert response.status_code == 422
    assert response.json()["message"] == "missing required input(s): repo"
    assert Run.objects.count() == 0


def test_it_reads_events_after_a_seq(team: Any, client_for: Any) -> None:
    acme, users = team
    loop = make_loop(acme)
    client = client_for(users["viewer"])
    run = Run.objects.create(
        team=acme, loop=loop, loop_name=loop.name, loop_yaml="", trigger_type="manual"
    )
    for seq in (1, 2, 3):
        RunEvent.objects.create(run=run, seq=seq, type="step_started", payload={"n": seq})
    events = client.get(f"/api/runs/{run.pk}/events?after=1").json()
    assert [e["seq"] for e in events] == [2, 3]

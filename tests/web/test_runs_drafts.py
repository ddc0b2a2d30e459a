"""Test runs of a draft from the editor: POST /api/loops/{id}/test-runs and /api/loops/test-runs.

Huey runs in immediate mode here: the run is finished when the request answers.
"""

from __future__ import annotations

from typing import Any

import pytest

from builder.models import Loop, LoopVersion
from loopkit_web.audit.models import AuditEvent
from runs.models import Run, RunModel

from .runs_support import event_types, loop_yaml, make_loop

pytestmark = pytest.mark.django_db(transaction=True)

DRAFT = loop_yaml("review").replace("Summarise the reviews", "Summarise the reviews in one line")


@pytest.fixture
def team(make_team: Any) -> tuple[Any, dict[str, Any]]:
    return make_team("Acme", roles=["owner", "editor", "viewer"])


def post(client: Any, path: str, body: dict[str, Any]) -> Any:
    return client.post(path, body, content_type="application/json")


def test_a_draft_runs_dry_without_saving_a_version(team: Any, client_for: Any) -> None:
    acme, users = team
    loop = make_loop(acme)
    response = post(client_for(users["editor"]), f"/api/loops/{loop.pk}/test-runs", {"yaml": DRAFT})

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["is_test"], body["dry_run"], body["status"], body["version"]) == (
        True,
        True,
        "succeeded",
        0,
    )
    run = Run.objects.get(pk=body["id"])
    assert "Summarise the reviews in one line" in run.loop_yaml
    assert (run.loop, run.loop_version, run.is_test) == (loop, None, True)
    assert event_types(run)[-1] == "run_finished"
    loop.refresh_from_db()
    assert loop.version == 1
    assert LoopVersion.objects.filter(loop=loop).count() == 1
    assert "in one line" not in loop.current().yaml


def test_pinned_steps_are_answered_with_their_pins(team: Any, client_for: Any) -> None:
    acme, users = team
    loop = make_loop(acme)
    body = post(
        client_for(users["editor"]),
        f"/api/loops/{loop.pk}/test-runs",
        {"yaml": DRAFT, "pinned": {"Bug Review": "no bugs, pinned"}},
    ).json()

    run = Run.objects.get(pk=body["id"])
    assert body["pinned"] == ["Bug Review"]
    finished = {e.payload["label"]: e.payload for e in run.events.filter(type="step_finished")}
    assert finished["Bug Review"]["pinned"] is True
    assert finished["Bug Review"]["output"] == "no bugs, pinned"
    assert finished["Bug Review"]["tokens"]["total"] == 0
    assert finished["Security Review"]["pinned"] is False
    assert finished["Security Review"]["output"]  # the dry-run model's answer
    assert run.events.filter(type="step_started", payload__pinned=True).count() == 1


def test_a_new_loops_draft_runs_in_the_current_team(team: Any, client_for: Any) -> None:
    acme, users = team
    response = post(
        client_for(users["editor"]), "/api/loops/new/test-runs", {"yaml": loop_yaml("brand-new")}
    )

    assert response.status_code == 201, response.content
    run = Run.objects.get(pk=response.json()["id"])
    assert (run.team, run.loop, run.loop_name, run.status) == (acme, None, "brand-new", "succeeded")
    assert not Loop.objects.filter(name="brand-new").exists()


def test_a_draft_given_as_data_runs_too(team: Any, client_for: Any) -> None:
    _, users = team
    data = {"name": "as-data", "pipeline": [{"prompt": "Hello", "label": "Greet"}]}
    response = post(client_for(users["editor"]), "/api/loops/new/test-runs", {"spec": data})
    assert response.status_code == 201, response.content
    assert Run.objects.get(pk=response.json()["id"]).outputs.keys() == {"Greet"}


def test_a_viewer_cannot_test_run(team: Any, client_for: Any) -> None:
    acme, users = team
    loop = make_loop(acme)
    client = client_for(users["viewer"])
    for path in (f"/api/loops/{loop.pk}/test-runs", "/api/loops/new/test-runs"):
        response = post(client, path, {"yaml": DRAFT})
        assert response.status_code == 403, path
        assert response.json()["code"] == "forbidden"
    assert not Run.objects.exists()


def test_another_teams_loop_is_not_found(team: Any, make_team: Any, client_for: Any) -> None:
    acme, _ = team
    _, others = make_team("Other", roles=["editor"])
    loop = make_loop(acme)
    response = post(
        client_for(others["editor"]), f"/api/loops/{loop.pk}/test-runs", {"yaml": DRAFT}
    )
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert not Run.objects.exists()


def test_the_start_is_audited(team: Any, client_for: Any) -> None:
    acme, users = team
    loop = make_loop(acme)
    body = post(
        client_for(users["editor"]),
        f"/api/loops/{loop.pk}/test-runs",
        {"yaml": DRAFT, "pinned": {"Summary": "x"}},
    ).json()

    event = AuditEvent.objects.get(action="run.test_started")
    assert (event.team, event.actor, event.target_id) == (acme, users["editor"], str(body["id"]))
    assert event.changes == {
        "loop": [None, "review"],
        "loop_id": [None, loop.pk],
        "dry_run": [None, True],
        "pinned": [None, ["Summary"]],
        "by": [None, users["editor"].username],
    }


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({}, 422, "send exactly one of 'yaml' or 'spec' (the draft)"),
        (
            {"yaml": "name: x\npipeline: []\n", "spec": {"name": "x"}},
            422,
            "send exactly one of 'yaml' or 'spec' (the draft)",
        ),
        (
            {"yaml": DRAFT, "pinned": {"Summary": 3}},
            422,
            "the pinned output of 'Summary' must be text, not int",
        ),
        (
            {"yaml": DRAFT, "inputs": {"nope": 1}},
            422,
            "unknown input(s) nope (this loop's inputs: none)",
        ),
        (
            {"yaml": DRAFT, "payload": "{not json"},
            422,
            "payload is not valid JSON: Expecting property name enclosed in double quotes "
            "at line 1 column 2",
        ),
    ],
)
def test_bad_input_is_a_json_error(
    team: Any, client_for: Any, body: dict[str, Any], status: int, message: str
) -> None:
    acme, users = team
    loop = make_loop(acme)
    response = post(client_for(users["editor"]), f"/api/loops/{loop.pk}/test-runs", body)
    assert response.status_code == status, response.content
    assert response.json()["message"] == message
    assert not Run.objects.exists()


def test_an_invalid_draft_is_refused_with_its_positioned_problems(
    team: Any, client_for: Any
) -> None:
    acme, users = team
    loop = make_loop(acme)
    response = post(
        client_for(users["editor"]),
        f"/api/loops/{loop.pk}/test-runs",
        {"yaml": "name: bad\npipeline:\n- prompt: hi\n  lable: Oops\n"},
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_loop"
    assert body["message"].startswith("draft: the loop is not valid: unknown key 'lable'")
    [problem] = body["errors"]
    assert (problem["line"], problem["path"]) == (4, "pipeline[0].lable")
    assert not Run.objects.exists()


def test_test_runs_are_left_out_of_the_runs_list_and_the_dashboard(
    team: Any, client_for: Any
) -> None:
    acme, users = team
    loop = make_loop(acme)
    client = client_for(users["editor"])
    real = post(client, "/api/runs", {"loop_id": loop.pk, "dry_run": True}).json()
    test = post(client, f"/api/loops/{loop.pk}/test-runs", {"yaml": DRAFT}).json()
    assert Run.objects.count() == 2

    assert [r["id"] for r in client.get("/api/runs").json()] == [real["id"]]
    dashboard = client.get("/api/dashboard").json()
    assert dashboard["totals"]["runs"] == 1
    listed = client.get("/api/dashboard/runs").json()["runs"]
    assert [r["id"] for r in listed] == [real["id"]]
    assert not RunModel.objects.filter(run_id=test["id"]).exists()
    # The test run itself stays readable, with its events.
    assert client.get(f"/api/runs/{test['id']}").json()["is_test"] is True
    assert client.get(f"/api/runs/{test['id']}/events").json()[-1]["type"] == "run_finished"


def test_the_run_page_says_it_is_a_test_run_of_a_draft(team: Any, client_for: Any) -> None:
    acme, users = team
    loop = make_loop(acme)
    client = client_for(users["editor"])
    body = post(
        client, f"/api/loops/{loop.pk}/test-runs", {"yaml": DRAFT, "pinned": {"Summary": "x"}}
    ).json()
    page = client.get(f"/runs/{body['id']}/").content.decode()
    assert "<small>draft</small>" in page
    assert "test run of a draft · 1 pinned</span>" in page


def test_a_live_test_run_calls_the_teams_provider_for_unpinned_steps_only(
    make_team: Any, client_for: Any
) -> None:
    from loopkit import secrets
    from runs.models import MemoryRecord
    from tests.engine.llm_server import LLMServer, Reply

    acme, users = make_team("Live", roles=["admin", "editor"])
    draft = {
        "name": "live-draft",
        "pipeline": [
            {"prompt": "Find the bugs.", "label": "Find"},
            {"prompt": "Fix these: {{ steps['Find'].output }}", "label": "Fix"},
        ],
    }
    try:
        with LLMServer() as server:
            server.default = Reply("patched")
            created = post(
                client_for(users["admin"]),
                "/api/providers",
                {
                    "name": "fast",
                    "model": "openai/test-model",
                    "api_key": "sk-draft-test-key-000123",
                    "api_base": f"{server.url}/acme",
                    "default": True,
                },
            )
            assert created.status_code == 201, created.content
            body = post(
                client_for(users["editor"]),
                "/api/loops/new/test-runs",
                {"spec": draft, "dry_run": False, "pinned": {"Find": "bug at line 3"}},
            ).json()

            assert (body["status"], body["dry_run"]) == ("succeeded", False), body
            assert [r.body["messages"][-1]["content"] for r in server.completed()] == [
                "Fix these: bug at line 3"
            ]
    finally:
        secrets.REGISTRY.clear()
    run = Run.objects.get(pk=body["id"])
    assert run.outputs == {"Find": "bug at line 3", "Fix": "patched"}
    assert run.tokens_in > 0  # the one call made (Fix) is counted
    # A test run leaves the loop's memory as the last real run wrote it.
    assert not MemoryRecord.objects.filter(team=acme, namespace="live-draft").exists()


def test_a_test_run_reruns_as_a_test_run_of_the_same_draft(team: Any, client_for: Any) -> None:
    _, users = team
    client = client_for(users["editor"])
    first = post(
        client, "/api/loops/new/test-runs", {"yaml": DRAFT, "pinned": {"Summary": "done"}}
    ).json()

    again = client.post(f"/api/runs/{first['id']}/rerun").json()

    run = Run.objects.get(pk=again["id"])
    assert (run.is_test, run.loop, run.rerun_of_id, run.pinned) == (
        True,
        None,
        first["id"],
        {"Summary": "done"},
    )
    assert run.loop_yaml == Run.objects.get(pk=first["id"]).loop_yaml
    assert client.get("/api/runs").json() == []


def test_a_test_run_starts_no_loop_triggered_by_its_loops_completion(
    team: Any, client_for: Any
) -> None:
    acme, users = team
    loop = make_loop(acme)
    follower = make_loop(acme, name="follower", trigger={"type": "event", "loop": "review"})
    client = client_for(users["editor"])

    post(client, f"/api/loops/{loop.pk}/test-runs", {"yaml": DRAFT})
    assert not Run.objects.filter(loop=follower).exists()
    post(client, "/api/runs", {"loop_id": loop.pk, "dry_run": True})
    assert Run.objects.filter(loop=follower).count() == 1

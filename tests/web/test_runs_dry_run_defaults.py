"""A loop that validates dry-runs from the web app with no inputs and no payload.

The demo team's loops (loops/*.yaml, as the start command loads them) are
started as a browser user starts them: ``POST /api/runs`` and the loop page's
"Dry run" button, with nothing else. A dry run gets the engine's defaults:
declared input defaults, else typed placeholders, and a sample of what its
trigger delivers.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from builder.demo import load_example_loops
from builder.models import Loop
from runs.models import ApprovalRequest, ApprovalStatus, Run, Status

from .runs_support import make_loop

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.stem for p in (ROOT / "loops").glob("*.yaml"))


@pytest.fixture
def demo(make_team: Any) -> tuple[Any, dict[str, Any]]:
    team, users = make_team("Demo", roles=["owner", "editor"])
    load_example_loops(team=team, user=users["owner"], stdout=io.StringIO())
    return team, users


def approve_every_gate(run_id: int, client: Any) -> Run:
    """Approve, through the API, each gate the run suspends at until it ends.

    Tasks run inline here: a start runs until the first gate, each decision
    resumes the run until the next gate or its end.
    """
    for _ in range(20):
        run = Run.objects.get(pk=run_id)
        pending = ApprovalRequest.objects.filter(run_id=run_id, status=ApprovalStatus.PENDING)
        if run.is_terminal or not pending.exists():
            return run
        for approval in pending:
            response = client.post(
                f"/api/runs/{run_id}/approvals/{approval.pk}/approve",
                {"comment": "dry run"},
                content_type="application/json",
            )
            assert response.status_code == 200, response.content
    pytest.fail(f"run {run_id} kept asking for approvals")


def test_every_example_loop_dry_runs_to_success_from_the_api_with_no_arguments(
    demo: Any, client_for: Any
) -> None:
    team, users = demo
    assert sorted(Loop.objects.filter(team=team).values_list("name", flat=True)) == EXAMPLES
    editor, owner = client_for(users["editor"]), client_for(users["owner"])
    outcomes = {}
    for name in EXAMPLES:
        response = editor.post(
            "/api/runs", {"loop": name, "dry_run": True}, content_type="application/json"
        )
        assert response.status_code == 201, (name, response.content)
        run = approve_every_gate(response.json()["id"], owner)
        outcomes[name] = (run.status, run.error)
    assert outcomes == {name: (Status.SUCCEEDED, "") for name in EXAMPLES}


def test_the_loop_pages_dry_run_button_runs_a_webhook_loop_on_a_sample_delivery(
    demo: Any, client_for: Any
) -> None:
    team, users = demo
    loop = Loop.objects.get(team=team, name="pr-review")
    response = client_for(users["editor"]).post(f"/runs/start/{loop.pk}/", {"dry_run": "1"})
    run = Run.objects.get(loop=loop)
    assert response.status_code == 302
    assert response["Location"] == f"/runs/{run.pk}/"
    assert (run.status, run.error, run.trigger_payload) == (Status.SUCCEEDED, "", {})
    started = run.events.get(type="step_started", payload__label="Bug Review").payload
    assert started["kind"] == "agent"
    assert set(run.outputs) >= {"Bug Review", "Security Review"}


def test_a_dry_run_records_the_inputs_it_ran_with(demo: Any, client_for: Any) -> None:
    team, users = demo
    loop = make_loop(
        team,
        inputs={
            "repo": {"required": True},
            "limit": {"type": "integer", "required": True},
            "strict": {"type": "boolean"},
            "branch": {"default": "main"},
        },
    )
    response = client_for(users["editor"]).post(
        "/api/runs",
        {"loop_id": loop.pk, "dry_run": True, "inputs": {"strict": True}},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "succeeded"
    assert body["inputs"] == {"repo": "<inputs.repo>", "limit": 0, "strict": True, "branch": "main"}
    started = Run.objects.get(pk=body["id"]).events.get(type="run_started").payload
    assert started["inputs"] == body["inputs"]


def test_a_dry_run_still_refuses_an_input_the_loop_does_not_declare(
    demo: Any, client_for: Any
) -> None:
    team, users = demo
    loop = make_loop(team, inputs={"repo": {"required": True}})
    response = client_for(users["editor"]).post(
        "/api/runs",
        {"loop_id": loop.pk, "dry_run": True, "inputs": {"rpeo": "acme/api"}},
        content_type="application/json",
    )
    assert response.status_code == 422
    assert response.json()["message"] == "unknown input(s) rpeo (this loop's inputs: repo)"
    assert Run.objects.count() == 0


def test_a_dry_run_of_pr_review_reports_the_review_it_would_post_and_the_page_lists_it(
    demo: Any, client_for: Any
) -> None:
    team, users = demo
    loop = Loop.objects.get(team=team, name="pr-review")
    editor = client_for(users["editor"])
    editor.post(f"/runs/start/{loop.pk}/", {"dry_run": "1"})
    run = Run.objects.get(loop=loop)
    assert run.status == Status.SUCCEEDED, run.error
    calls = {
        e.payload["key"]: e.payload for e in run.events.filter(type="tool_called").order_by("seq")
    }
    assert set(calls) == {"pipeline[0]", "onPass[0]"}  # the diff, then the review
    would = calls["onPass[0]"]
    assert (would["name"], would["dry_run"], would["result"]) == (
        "github.create_review",
        True,
        "",
    )
    assert would["arguments"]["event"] == "COMMENT"
    assert "### Performance" in would["arguments"]["body"]
    page = editor.get(f"/runs/{run.pk}/").content.decode()
    for key in ("pipeline[0]", "pipeline[1].parallel[3]", "onPass", "onPass[0]"):
        assert f'data-key="{key}"' in page

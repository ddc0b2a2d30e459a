"""POST /api/runs with typed inputs, a trigger payload and a model for the run."""

from __future__ import annotations

from typing import Any

import pytest

from runs.models import Run

from .runs_support import make_loop

pytestmark = pytest.mark.django_db(transaction=True)

TYPED = {
    "repo": {"type": "string", "required": True},
    "count": {"type": "integer", "default": 3},
    "ratio": {"type": "number"},
    "strict": {"type": "boolean", "default": False},
}


@pytest.fixture
def editor(make_team: Any, client_for: Any) -> tuple[Any, Any]:
    acme, users = make_team("Acme", roles=["editor"])
    return acme, client_for(users["editor"])


def _start(client: Any, body: dict[str, Any]) -> Any:
    return client.post("/api/runs", body, content_type="application/json")


def test_form_text_is_converted_to_each_inputs_declared_type(editor: Any) -> None:
    acme, client = editor
    loop = make_loop(acme, inputs=TYPED)

    response = _start(
        client,
        {
            "loop_id": loop.pk,
            "dry_run": True,
            "inputs": {"repo": "acme/api", "count": "5", "ratio": "0.25", "strict": "on"},
        },
    )

    assert response.status_code == 201, response.content
    assert response.json()["inputs"] == {
        "repo": "acme/api",
        "count": 5,
        "ratio": 0.25,
        "strict": True,
    }


def test_an_empty_form_field_leaves_the_inputs_default(editor: Any) -> None:
    acme, client = editor
    loop = make_loop(acme, inputs=TYPED)

    response = _start(
        client,
        {"loop_id": loop.pk, "dry_run": True, "inputs": {"repo": "r", "count": "", "ratio": ""}},
    )

    assert response.status_code == 201, response.content
    assert response.json()["inputs"] == {"repo": "r", "count": 3, "strict": False}


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"count": "abc"}, "input 'count' must be an integer, not \"abc\""),
        ({"count": 2.5}, "input 'count' must be an integer, not 2.5"),
        ({"ratio": "a lot"}, "input 'ratio' must be a number, not \"a lot\""),
        ({"strict": "maybe"}, "input 'strict' must be true or false, not \"maybe\""),
        ({"repo": ["a"]}, "input 'repo' must be a string, not [\"a\"]"),
    ],
)
def test_a_value_that_does_not_fit_its_type_is_refused_with_the_inputs_name(
    editor: Any, inputs: dict[str, Any], message: str
) -> None:
    acme, client = editor
    loop = make_loop(acme, inputs=TYPED)

    response = _start(client, {"loop_id": loop.pk, "dry_run": True, "inputs": inputs})

    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid"
    assert body["message"] == message
    name = next(iter(inputs))
    assert body["details"] == [
        {"loc": ["body", "inputs", name], "msg": message, "type": "input_type"}
    ]
    assert Run.objects.count() == 0


def test_the_payload_is_the_runs_trigger_payload(editor: Any) -> None:
    acme, client = editor
    loop = make_loop(acme, trigger={"type": "webhook", "event": "pull_request"})
    payload = {"action": "opened", "pull_request": {"number": 7, "title": "Fix it"}}

    response = _start(client, {"loop_id": loop.pk, "dry_run": True, "payload": payload})

    assert response.status_code == 201, response.content
    assert response.json()["trigger_payload"] == payload
    assert response.json()["status"] == "succeeded"


def test_a_pasted_payload_text_is_parsed(editor: Any) -> None:
    acme, client = editor
    loop = make_loop(acme, trigger={"type": "webhook", "event": "push"})

    response = _start(
        client, {"loop_id": loop.pk, "dry_run": True, "payload": '{"ref": "refs/heads/main"}'}
    )

    assert response.status_code == 201, response.content
    assert response.json()["trigger_payload"] == {"ref": "refs/heads/main"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"ref": }', "payload is not valid JSON: Expecting value at line 1 column 9"),
        ("[1, 2]", "payload must be a JSON object, not list"),
        ("null", "payload must be a JSON object, not null"),
    ],
)
def test_a_payload_that_is_not_a_json_object_is_refused_with_the_field(
    editor: Any, text: str, message: str
) -> None:
    acme, client = editor
    loop = make_loop(acme, trigger={"type": "webhook", "event": "push"})

    response = _start(client, {"loop_id": loop.pk, "dry_run": True, "payload": text})

    assert response.status_code == 422
    assert response.json()["message"] == message
    assert response.json()["details"] == [
        {"loc": ["body", "payload"], "msg": message, "type": "payload"}
    ]
    assert Run.objects.count() == 0


def test_the_model_for_this_run_replaces_the_loops_model_and_survives_a_rerun(
    editor: Any,
) -> None:
    acme, client = editor
    loop = make_loop(acme)

    first = _start(client, {"loop_id": loop.pk, "dry_run": True, "model": "openai/gpt-4o-mini"})
    again = client.post(f"/api/runs/{first.json()['id']}/rerun")

    assert first.status_code == 201, first.content
    assert first.json()["model"] == "openai/gpt-4o-mini"
    assert first.json()["models"] == ["openai/gpt-4o-mini"]
    assert again.json()["model"] == "openai/gpt-4o-mini"
    assert again.json()["models"] == ["openai/gpt-4o-mini"]


def test_without_a_model_the_run_uses_the_loops(editor: Any) -> None:
    acme, client = editor
    loop = make_loop(acme)

    response = _start(client, {"loop_id": loop.pk, "dry_run": True})

    assert response.json()["model"] == ""
    assert response.json()["models"] == ["dry-run"]


def test_a_live_run_calls_the_model_chosen_for_it(
    editor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.engine.llm_server import LLMServer, Reply

    acme, client = editor
    loop = make_loop(
        acme,
        yaml="name: one-call\nmodel: openai/loop-model\npipeline:\n  - prompt: Say hi\n"
        "    label: Hello\n",
    )
    with LLMServer() as server:
        server.default = Reply("hi")
        monkeypatch.setenv("LOOPKIT_API_BASE", server.url)
        monkeypatch.setenv("LOOPKIT_API_KEY", "sk-test")

        response = _start(client, {"loop_id": loop.pk, "model": "openai/run-model"})

        assert response.status_code == 201, response.content
        assert response.json()["status"] == "succeeded", response.json()["error"]
        assert [r.body["model"] for r in server.completed()] == ["run-model"]
    assert response.json()["models"] == ["openai/run-model"]

"""Team providers: the API and page, keys encrypted and write-only, runs that use them."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from loopkit import secrets
from loopkit_web.audit.models import AuditEvent
from providers import crypto
from providers.models import Provider
from runs.models import Run, RunEvent
from tests.engine.llm_server import LLMServer, Reply

from .runs_support import make_loop

KEY = "sk-live-team-key-00009876"


@pytest.fixture
def team(make_team: Any) -> tuple[Any, dict[str, Any]]:
    return make_team("Acme", roles=["owner", "admin", "editor", "viewer"])


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    yield
    secrets.REGISTRY.clear()


def create(client: Any, **data: Any) -> Any:
    body = {"name": "fast", "model": "openai/test-model", "api_key": KEY, **data}
    return client.post("/api/providers", body, content_type="application/json")


def test_an_admin_creates_a_provider_and_the_key_comes_back_masked_only(
    team: Any, client_for: Any
) -> None:
    _, users = team
    response = create(
        client_for(users["admin"]),
        api_base="http://127.0.0.1:9/v1",
        params={"temperature": 0.2, "max_output_tokens": 256, "headers": {"X-Team": "acme"}},
        default=True,
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body == {
        "id": body["id"],
        "name": "fast",
        "model": "openai/test-model",
        "api_base": "http://127.0.0.1:9/v1",
        "api_key_set": True,
        "api_key_hint": "sk-…9876",
        "params": {"temperature": 0.2, "max_output_tokens": 256, "headers": {"X-Team": "acme"}},
        "default": True,
    }
    listed = client_for(users["viewer"]).get("/api/providers")
    assert listed.status_code == 200
    assert [p["name"] for p in listed.json()] == ["fast"]
    assert KEY not in listed.content.decode()


def test_members_below_admin_cannot_create_change_delete_or_test(
    team: Any, client_for: Any
) -> None:
    _, users = team
    pid = create(client_for(users["owner"])).json()["id"]
    for role in ("editor", "viewer"):
        client = client_for(users[role])
        assert create(client, name="other").status_code == 403
        assert (
            client.patch(
                f"/api/providers/{pid}", {"model": "x/y"}, content_type="application/json"
            ).status_code
            == 403
        )
        assert client.delete(f"/api/providers/{pid}").status_code == 403
        assert client.post(f"/api/providers/{pid}/test").status_code == 403


def test_another_teams_provider_is_not_found(team: Any, make_team: Any, client_for: Any) -> None:
    _, users = team
    pid = create(client_for(users["owner"])).json()["id"]
    _, others = make_team("Other", roles=["owner"])
    response = client_for(others["owner"]).delete(f"/api/providers/{pid}")
    assert response.status_code == 404
    assert Provider.objects.filter(pk=pid).exists()


def test_an_update_without_a_key_keeps_it_and_an_empty_key_removes_it(
    team: Any, client_for: Any
) -> None:
    _, users = team
    client = client_for(users["admin"])
    pid = create(client).json()["id"]
    kept = client.patch(
        f"/api/providers/{pid}", {"model": "openai/other"}, content_type="application/json"
    )
    assert kept.status_code == 200
    assert (kept.json()["model"], kept.json()["api_key_hint"]) == ("openai/other", "sk-…9876")
    assert Provider.objects.get(pk=pid).api_key() == KEY
    removed = client.patch(
        f"/api/providers/{pid}", {"api_key": ""}, content_type="application/json"
    )
    assert (removed.json()["api_key_set"], removed.json()["api_key_hint"]) == (False, "")
    assert client.delete(f"/api/providers/{pid}").status_code == 204
    assert client.get("/api/providers").json() == []


def test_one_default_per_team_and_names_are_unique(team: Any, client_for: Any) -> None:
    _, users = team
    client = client_for(users["admin"])
    create(client, name="a", default=True)
    create(client, name="b", default=True)
    assert {p["name"]: p["default"] for p in client.get("/api/providers").json()} == {
        "a": False,
        "b": True,
    }
    again = create(client, name="a")
    assert again.status_code == 409
    assert again.json()["message"] == "the team already has a provider named 'a'"


def test_bad_names_and_params_are_refused_with_the_field(team: Any, client_for: Any) -> None:
    _, users = team
    client = client_for(users["admin"])
    bad_name = create(client, name="Fast One")
    assert bad_name.status_code == 422
    assert bad_name.json()["message"] == (
        "'Fast One' is not a valid provider name (lower-case letters, digits, '.', '_' and '-', "
        "starting with a letter or digit, at most 50 characters, e.g. 'fast')"
    )
    bad_param = create(client, params={"temperature": 3})
    assert bad_param.status_code == 422
    assert (
        bad_param.json()["message"] == "params.temperature: input should be less than or equal to 2"
    )


def test_the_key_is_encrypted_at_rest_and_absent_from_the_audit_log(
    team: Any, client_for: Any
) -> None:
    _, users = team
    client = client_for(users["admin"])
    pid = create(client).json()["id"]
    client.patch(f"/api/providers/{pid}", {"api_key": KEY + "x"}, content_type="application/json")
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM providers_provider")
        rows = cursor.fetchall()
    assert rows and KEY not in repr(rows)
    stored = Provider.objects.get(pk=pid)
    assert crypto.decrypt(stored.api_key_encrypted) == KEY + "x"
    events = AuditEvent.objects.filter(action__startswith="provider.")
    assert [e.action for e in events.order_by("pk")] == ["provider.created", "provider.updated"]
    assert KEY not in json.dumps([e.changes for e in events])
    assert events.order_by("pk").last().changes["api_key_hint"] == ["sk-…9876", "sk-…876x"]


def test_rotation_reencrypts_with_the_new_key_and_old_tokens_still_read(
    team: Any, client_for: Any, settings: Any
) -> None:
    from cryptography.fernet import Fernet

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.LOOPKIT_SECRETS_KEY = old
    _, users = team
    pid = create(client_for(users["admin"])).json()["id"]
    settings.LOOPKIT_SECRETS_KEY = f"{new},{old}"
    provider = Provider.objects.get(pk=pid)
    assert provider.api_key() == KEY
    from django.core.management import call_command

    call_command("rotate_provider_keys", stdout=open("/dev/null", "w"))  # noqa: SIM115
    settings.LOOPKIT_SECRETS_KEY = new
    assert Provider.objects.get(pk=pid).api_key() == KEY


def test_test_answers_the_models_reply_and_latency(
    team: Any, client_for: Any, server: LLMServer
) -> None:
    _, users = team
    server.default = Reply("OK")
    client = client_for(users["admin"])
    pid = create(client, api_base=f"{server.url}/acme").json()["id"]
    response = client.post(f"/api/providers/{pid}/test")
    assert response.status_code == 200
    body = response.json()
    assert (body["ok"], body["answer"], body["error"]) == (True, "OK", "")
    assert body["latency_ms"] >= 0
    (request,) = server.requests
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.path == "/v1/acme/chat/completions"
    assert (request.body["model"], request.body["max_tokens"]) == ("test-model", 16)


def test_test_says_a_refused_key_in_words_without_repeating_it(
    team: Any, client_for: Any, server: LLMServer
) -> None:
    _, users = team
    server.default = Reply(status=401, error=f"Incorrect API key provided: Bearer {KEY}")
    client = client_for(users["admin"])
    pid = create(client, api_base=server.url).json()["id"]
    body = client.post(f"/api/providers/{pid}/test").json()
    assert body["ok"] is False
    assert body["error"] == (
        "the provider refused the API key (HTTP 401): "
        "Incorrect API key provided: Bearer [redacted:provider fast key]"
    )


def test_test_says_an_unreachable_server_in_words(team: Any, client_for: Any) -> None:
    _, users = team
    client = client_for(users["admin"])
    pid = create(client, api_base="http://127.0.0.1:9/v1").json()["id"]
    body = client.post(f"/api/providers/{pid}/test").json()
    assert body["ok"] is False
    assert body["error"] == "could not connect to http://127.0.0.1:9/v1: Connection error."


@pytest.mark.django_db(transaction=True)
def test_a_live_web_run_uses_the_teams_default_provider(
    team: Any, client_for: Any, server: LLMServer
) -> None:
    acme, users = team
    server.default = Reply("reviewed")
    server.when("adversarial", Reply(json.dumps({"pass": True, "score": 0.9, "issues": []})))
    create(client_for(users["admin"]), api_base=f"{server.url}/acme", default=True)
    loop = make_loop(acme)
    response = client_for(users["editor"]).post(
        "/api/runs", {"loop_id": loop.pk, "dry_run": False}, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    run = Run.objects.get(pk=response.json()["id"])
    assert (run.status, run.error) == ("succeeded", "")
    assert server.requests
    assert {(r.headers["authorization"], r.path) for r in server.requests} == {
        (f"Bearer {KEY}", "/v1/acme/chat/completions")
    }


@pytest.mark.django_db(transaction=True)
def test_a_key_quoted_back_in_a_401_is_nowhere_in_clear_in_the_database(
    team: Any, client_for: Any, server: LLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    acme, users = team
    server.default = Reply(status=401, error=f"Incorrect API key provided: Bearer {KEY}")
    create(client_for(users["admin"]), api_base=server.url)
    loop = make_loop(
        acme,
        "name: keyed\nmodel: team:fast\npipeline:\n  - prompt: Say hello.\n    label: Hello\n",
    )
    response = client_for(users["editor"]).post(
        "/api/runs", {"loop_id": loop.pk, "dry_run": False}, content_type="application/json"
    )
    run = Run.objects.get(pk=response.json()["id"])
    assert run.status == "failed"
    assert "Bearer [redacted:provider fast key]" in run.error
    failed = RunEvent.objects.get(run=run, type="step_failed")
    assert "[redacted:provider fast key]" in json.dumps(failed.payload)
    dumped = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            dumped.append(repr(cursor.fetchall()))
    assert KEY not in "\n".join(dumped)
    admin = client_for(users["admin"])
    exported = b"".join(
        b"".join(response.streaming_content) if response.streaming else response.content
        for response in (
            admin.get("/audit/export.json"),
            admin.get("/audit/export.csv"),
            admin.get("/runs/export.csv"),
            admin.get(f"/api/runs/{run.pk}/events"),
        )
    ).decode()
    assert "[redacted:provider fast key]" in exported
    assert KEY not in exported
    assert KEY not in caplog.text


def test_the_providers_page_shows_masked_keys_and_tests_a_provider(
    team: Any, client_for: Any, server: LLMServer
) -> None:
    _, users = team
    server.default = Reply("OK from the page")
    admin = client_for(users["admin"])
    added = admin.post(
        "/providers/",
        {
            "name": "fast",
            "model": "openai/test-model",
            "api_base": server.url,
            "api_key": KEY,
            "temperature": "0.3",
            "headers": '{"X-Team": "acme"}',
            "default": "on",
        },
    )
    assert added.status_code == 302
    provider = Provider.objects.get(name="fast")
    assert (provider.params, provider.is_default) == (
        {"temperature": 0.3, "headers": {"X-Team": "acme"}},
        True,
    )
    page = admin.get("/providers/").content.decode()
    assert "sk-…9876" in page and KEY not in page
    tested = admin.post(f"/providers/{provider.pk}/test/").content.decode()
    assert "OK from the page" in tested
    viewer_page = client_for(users["viewer"]).get("/providers/").content.decode()
    assert "team:fast" in viewer_page and "Add a provider" not in viewer_page

"""The API's contract: JSON errors, session + CSRF and bearer auth, docs, health."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from loopkit_web import health

pytestmark = pytest.mark.django_db


def test_the_docs_and_schema_are_served() -> None:
    client = Client()

    assert client.get("/api/docs").status_code == 200
    schema = client.get("/api/openapi.json").json()
    assert schema["info"]["title"] == "LoopKit API"
    assert "/api/teams/{team_id}/members" in schema["paths"]
    assert {"BearerTokenAuth", "SessionAuth"} <= set(schema["components"]["securitySchemes"])


def test_an_unknown_api_path_is_a_json_404() -> None:
    response = Client().get("/api/nothing/here")

    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "not found", "details": []}


def test_an_unknown_page_is_an_html_404() -> None:
    response = Client().get("/nothing/here/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_validation_errors_name_each_field(make_user: Any, client_for: Any) -> None:
    client = client_for(make_user())

    response = client.post("/api/teams", {"name": ""}, content_type="application/json")
    broken = client.post("/api/teams", "{not json", content_type="application/json")

    assert response.status_code == 422
    body = response.json()
    assert body["message"] == "invalid input"
    assert body["details"] == [
        {
            "loc": ["body", "payload", "name"],
            "msg": "String should have at least 1 character",
            "type": "string_too_short",
        }
    ]
    assert broken.status_code == 400
    assert broken.json() == {
        "code": "bad_request",
        "message": "the request body is not valid JSON",
        "details": [],
    }


@pytest.mark.parametrize("team_id", ["abc", "-1", "1.5", str(2**63), "9" * 40])
def test_an_id_that_no_row_can_have_is_a_json_404(
    make_user: Any, client_for: Any, team_id: str
) -> None:
    response = client_for(make_user()).get(f"/api/teams/{team_id}")

    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "not found", "details": []}


def test_an_unexpected_error_is_a_json_500_without_traceback(
    make_user: Any, client_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(request: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr("loopkit_web.accounts.api.current_team", explode)
    client = client_for(make_user())
    client.raise_request_exception = False

    response = client.get("/api/me")

    assert response.status_code == 500
    assert response.json() == {
        "code": "internal_error",
        "message": "internal server error",
        "details": [],
    }
    assert b"secret internals" not in response.content
    assert b"Traceback" not in response.content


def test_session_auth_needs_the_csrf_token_on_unsafe_methods(make_team: Any) -> None:
    _, users = make_team("Acme")
    client = Client(enforce_csrf_checks=True)
    client.force_login(users["owner"])

    refused = client.post("/api/teams", {"name": "X"}, content_type="application/json")
    client.get("/")  # a page with a form sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    allowed = client.post(
        "/api/teams", {"name": "X"}, content_type="application/json", headers={"X-CSRFToken": token}
    )

    assert refused.status_code == 403
    assert refused.json() == {
        "code": "forbidden",
        "message": "csrf check failed: send the X-CSRFToken header, or use an API token",
        "details": [],
    }
    assert allowed.status_code == 201


def test_bearer_auth_needs_no_csrf_token(make_team: Any) -> None:
    from loopkit_web.accounts.models import ApiToken

    team, users = make_team("Acme", roles=["admin"])
    _, raw = ApiToken.issue(user=users["admin"], team=team, name="ci")
    client = Client(enforce_csrf_checks=True, headers={"Authorization": f"Bearer {raw}"})

    response = client.patch(
        f"/api/teams/{team.pk}", {"name": "Acme 2"}, content_type="application/json"
    )

    assert response.status_code == 200
    assert response.json()["name"] == "Acme 2"


def test_health_reports_every_component() -> None:
    response = Client().get("/api/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "huey", "channel_layer"}
    assert body["checks"]["database"]["backend"] == "sqlite"
    assert body["checks"]["huey"]["ok"] is True
    assert body["checks"]["channel_layer"]["backend"] == "InMemoryChannelLayer"


def test_health_is_503_when_a_component_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    def down() -> str:
        raise ConnectionError("redis is down")

    monkeypatch.setitem(health.CHECKS, "huey", down)

    response = Client().get("/api/health")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["huey"]["ok"] is False
    assert body["checks"]["huey"]["error"] == "ConnectionError"  # no details with DEBUG off
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("which", ["unknown", "revoked"])
def test_an_invalid_bearer_token_is_a_json_401_not_a_csrf_403(
    make_team: Any, method: str, which: str
) -> None:
    from django.utils import timezone

    from loopkit_web.accounts.models import ApiToken

    team, users = make_team("Acme", roles=["admin"])
    api_token, raw = ApiToken.issue(user=users["admin"], team=team, name="ci")
    if which == "revoked":
        api_token.revoked_at = timezone.now()
        api_token.save(update_fields=["revoked_at"])
    else:
        raw = raw[:-4] + "xxxx"
    client = Client(enforce_csrf_checks=True, headers={"Authorization": f"Bearer {raw}"})

    call = client.get if method == "get" else client.post
    response = call("/api/teams", {"name": "X"}, content_type="application/json")

    assert response.status_code == 401
    assert response.json() == {
        "code": "invalid_token",
        "message": "invalid or revoked API token",
        "details": [],
    }


def test_no_two_api_schemas_share_a_name() -> None:
    """The OpenAPI keys components by class name: a second ``RunOut`` replaced the first."""
    from ninja import Schema

    from loopkit_web.api import api

    api.get_openapi_schema()  # imports every router and its schemas
    ours = ("builder", "dashboard", "runs", "loopkit_web")
    seen: dict[str, list[str]] = {}
    pending = list(Schema.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.split(".")[0] in ours:
            seen.setdefault(cls.__name__, []).append(cls.__module__)
    shared = {name: sorted(set(mods)) for name, mods in seen.items() if len(set(mods)) > 1}
    assert shared == {}
    documented = api.get_openapi_schema()["paths"]["/api/dashboard/runs"]["get"]
    assert documented["responses"][200]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RunPageOut"
    }

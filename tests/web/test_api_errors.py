"""Walk the OpenAPI of the running app: every error an operation declares is provoked.

For each operation and each 4xx/5xx it declares, a request provokes that
status and its body must match the declared schema (the envelope of
docs/api.md) with the code of that status. Requests every operation can be
sent (no login, no CSRF token, an id no row has, a teamless user, a body that
is not JSON or too large, ...) must answer a status the operation declares.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from unittest.mock import patch

import jsonschema
import pytest
from django.conf import settings
from django.test import Client
from django.test.utils import override_settings

from loopkit_web.api import api
from loopkit_web.errors import code_for

from .authz_table import API, Case
from .builder_fixtures import loop_yaml
from .conftest import World

SCHEMA = json.loads(json.dumps(api.get_openapi_schema()))  # as served: string keys
CASES = {case.key: case for case in API}
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in SCHEMA["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path, operation


def declared_errors(operation: dict[str, Any]) -> list[int]:
    return sorted(int(s) for s in operation["responses"] if int(s) >= 400)


# --- making requests --------------------------------------------------------------

Send = Callable[[World], Any]


def _url(path: str, world: World, **ids: Any) -> str:
    return path.format(**{**world.ids("owner"), **ids})


def _send(
    client: Client, method: str, url: str, body: Any = None, raw: bytes | str | None = None
) -> Any:
    call = getattr(client, method.lower())
    if method == "GET":
        return call(url)
    if raw is not None:
        return call(url, raw, content_type="application/json")
    return call(url, json.dumps(body if body is not None else {}), content_type="application/json")


def as_user(user: Any, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def as_token(world: World, actor: str = "owner") -> Client:
    return Client(headers={"Authorization": f"Bearer {world.raw_token(actor)}"})


def _body(case: Case, world: World) -> dict[str, Any]:
    ids = world.ids("owner")
    return {k: v.format(**ids) if isinstance(v, str) else v for k, v in case.data.items()}


def anonymous(method: str, path: str) -> Send:
    return lambda world: _send(Client(), method, _url(path, world), {})


def without_csrf(method: str, path: str) -> Send:
    return lambda world: _send(as_user(world.user("owner"), csrf=True), method, _url(path, world))


def role_too_low(method: str, path: str) -> Send:
    case = CASES[(method, path)]
    return lambda world: _send(
        as_token(world, "viewer"), method, _url(path, world), _body(case, world)
    )


def unknown_ids(method: str, path: str) -> Send:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    case = CASES[(method, path)]
    return lambda world: _send(
        as_token(world), method, _url(path, world, **dict.fromkeys(names, 0)), _body(case, world)
    )


def teamless(method: str, path: str) -> Send:
    case = CASES[(method, path)]

    def send(world: World) -> Any:
        from tests.conftest import create_user

        return _send(as_user(create_user()), method, _url(path, world), _body(case, world))

    return send


def not_json(method: str, path: str) -> Send:
    return lambda world: _send(as_token(world), method, _url(path, world), raw="{not json")


def too_large(method: str, path: str) -> Send:
    big = json.dumps({"padding": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})
    return lambda world: _send(as_token(world), method, _url(path, world), raw=big)


def wrong_types(method: str, path: str) -> Send:
    if method == "GET":
        return lambda world: _send(
            as_token(world), method, _url(path, world) + "?" + _bad_query(path)
        )
    return lambda world: _send(
        as_token(world), method, _url(path, world), _wrong_body(method, path)
    )


def _wrong_body(method: str, path: str) -> dict[str, Any]:
    """Return a body whose first field has a value of the wrong type."""
    operation = SCHEMA["paths"][path][method.lower()]
    if "requestBody" not in operation:
        return {}
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = SCHEMA["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    name, prop = next(iter(schema["properties"].items()))
    return {name: "not an object" if "object" in json.dumps(prop) else {"not": "this type"}}


def _bad_query(path: str) -> str:
    operation = SCHEMA["paths"][path]["get"]
    for param in operation.get("parameters", []):
        if param["in"] == "query" and "integer" in json.dumps(param["schema"]):
            return f"{param['name']}=x"
    return "period=year"  # the dashboard reads its period itself


# --- the provocations that need a particular state ------------------------------


def _token(world: World) -> Client:
    return as_token(world)


def _create_clash(world: World) -> Any:
    return _send(_token(world), "POST", "/api/loops", {"yaml": loop_yaml("matrix-loop")})


def _provider_clash(world: World) -> Any:
    body = {"name": "matrix-provider", "model": "openai/m"}
    return _send(_token(world), "POST", "/api/providers", body)


def _provider_rename_clash(world: World) -> Any:
    from providers.models import Provider

    current = Provider.objects.get(pk=world.ids("owner")["provider_id"])
    Provider.objects.create(team=current.team, name="taken", model="openai/m")
    path = _url("/api/providers/{provider_id}", world)
    return _send(_token(world), "PATCH", path, {"name": "taken"})


def _save_stale(world: World) -> Any:
    body = {"yaml": loop_yaml("matrix-loop"), "base_version": 7}
    return _send(_token(world), "PUT", _url("/api/loops/{loop_id}", world), body)


def _import_clash(world: World) -> Any:
    body = {"files": [{"name": "m.yaml", "content": loop_yaml("matrix-loop")}]}
    return _send(_token(world), "POST", "/api/loops/import", body)


def _import_nothing(world: World) -> Any:
    return _token(world).post("/api/loops/import", {})  # multipart without files


@override_settings(LOOPKIT_IMPORT_MAX_BYTES=1000)
def _import_too_large(world: World) -> Any:
    body = {"files": [{"name": "m.yaml", "content": "#" * 2000}]}
    return _send(_token(world), "POST", "/api/loops/import", body)


def _restore_clash(world: World) -> Any:
    client = _token(world)
    loop_url = _url("/api/loops/{loop_id}", world)
    _send(client, "PUT", loop_url, {"yaml": loop_yaml("renamed"), "base_version": 1})
    _send(client, "POST", "/api/loops", {"yaml": loop_yaml("matrix-loop")})
    return _send(client, "POST", f"{loop_url}/versions/1/restore")


def _bad_repository(world: World) -> Any:
    return _send(_token(world), "PUT", "/api/loops/repository", {"url": "ftp://example.com/x"})


def _git_unreachable(path: str, body: dict[str, Any]) -> Send:
    def send(world: World) -> Any:
        from builder.models import GitRepository

        GitRepository.objects.filter(team=world.a.team).update(url="/nonexistent/loops.git")
        return _send(_token(world), "POST", path, body)

    return send


def _git_import_clash(world: World) -> Any:
    client = _token(world)
    _send(client, "POST", "/api/loops/repository/import", {"overwrite": True})
    return _send(client, "POST", "/api/loops/repository/import", {"overwrite": False})


def _run_finished(path: str) -> Send:
    def send(world: World) -> Any:
        from runs.models import Run

        Run.objects.filter(pk=world.ids("owner")["run_id"]).update(status="succeeded")
        return _send(_token(world), "POST", _url(path, world))

    return send


def _loop_deleted(world: World) -> Any:
    from runs.models import Run

    Run.objects.filter(pk=world.ids("owner")["run_id"]).update(loop=None)
    return _send(_token(world), "POST", _url("/api/runs/{run_id}/rerun", world))


def _approval_decided(path: str) -> Send:
    def send(world: World) -> Any:
        from runs.models import ApprovalRequest

        ApprovalRequest.objects.filter(pk=world.ids("owner")["approval_id"]).update(
            status="approved"
        )
        return _send(_token(world), "POST", _url(path, world), {"comment": "again"})

    return send


def _keep_unfinished(world: World) -> Any:
    """The world's run waits at an approval: there is nothing to keep yet."""
    return _send(_token(world), "POST", _url("/api/runs/{run_id}/keep-as-test", world))


def _bad_test_yaml(world: World) -> Any:
    url = _url("/api/loops/{loop_id}/tests/{test_id}", world)
    return _send(_token(world), "PUT", url, {"test_yaml": "loop: x\nexpcet: {}\n"})


def _missing_input(world: World) -> Any:
    body = {"loop": "matrix-run-loop", "inputs": {"nope": 1}, "dry_run": True}
    return _send(_token(world), "POST", "/api/runs", body)


def _last_owner(method: str) -> Send:
    def send(world: World) -> Any:
        from loopkit_web.teams.models import Membership

        owner = Membership.objects.get(team=world.a.team, user=world.user("owner"))
        url = f"/api/teams/{world.a.team.pk}/members/{owner.pk}"
        return _send(_token(world), method, url, {"role": "viewer"})

    return send


def _admin_invites_owner(world: World) -> Any:
    url = _url("/api/teams/{team_id}/invitations", world)
    return _send(as_token(world, "admin"), "POST", url, {"role": "owner"})


def _unhealthy(world: World) -> Any:
    from loopkit_web import health

    def broken() -> str:
        raise ConnectionError("refused")

    with patch.dict(health.CHECKS, {"database": broken}):
        return Client().get("/api/health")


M = "/api/runs/{run_id}/approvals/{approval_id}"
SPECIAL: dict[tuple[str, str, int], tuple[Send, str | None]] = {
    ("GET", "/api/health", 503): (_unhealthy, None),  # not a refusal: the health report
    ("POST", "/api/loops", 409): (_create_clash, "name_taken"),
    ("PUT", "/api/loops/{loop_id}", 409): (_save_stale, "stale_version"),
    ("POST", "/api/loops/import", 400): (_import_nothing, "bad_request"),
    ("POST", "/api/loops/import", 409): (_import_clash, "name_taken"),
    ("POST", "/api/loops/import", 413): (_import_too_large, "too_large"),
    ("POST", "/api/loops/{loop_id}/versions/{number}/restore", 409): (_restore_clash, "name_taken"),
    ("PUT", "/api/loops/repository", 400): (_bad_repository, "bad_request"),
    ("POST", "/api/loops/repository/export", 502): (
        _git_unreachable("/api/loops/repository/export", {"message": "x"}),
        "upstream_failed",
    ),
    ("POST", "/api/loops/repository/import", 502): (
        _git_unreachable("/api/loops/repository/import", {"overwrite": True}),
        "upstream_failed",
    ),
    ("POST", "/api/loops/repository/import", 409): (_git_import_clash, "name_taken"),
    ("POST", "/api/runs", 422): (_missing_input, "invalid"),
    ("POST", "/api/runs/{run_id}/cancel", 409): (
        _run_finished("/api/runs/{run_id}/cancel"),
        "conflict",
    ),
    ("POST", "/api/runs/{run_id}/rerun", 409): (_loop_deleted, "conflict"),
    ("POST", "/api/runs/{run_id}/keep-as-test", 409): (_keep_unfinished, "conflict"),
    ("PUT", "/api/loops/{loop_id}/tests/{test_id}", 422): (_bad_test_yaml, "invalid_test"),
    ("POST", f"{M}/approve", 409): (_approval_decided(f"{M}/approve"), "conflict"),
    ("POST", f"{M}/reject", 409): (_approval_decided(f"{M}/reject"), "conflict"),
    ("PATCH", "/api/teams/{team_id}/members/{membership_id}", 409): (
        _last_owner("PATCH"),
        "last_owner",
    ),
    ("DELETE", "/api/teams/{team_id}/members/{membership_id}", 409): (
        _last_owner("DELETE"),
        "last_owner",
    ),
    ("POST", "/api/teams/{team_id}/invitations", 409): (_admin_invites_owner, "owner_required"),
    ("POST", "/api/providers", 409): (_provider_clash, "name_taken"),
    ("PATCH", "/api/providers/{provider_id}", 409): (_provider_rename_clash, "name_taken"),
}


def provocation(method: str, path: str, status: int) -> tuple[Send, str | None] | None:
    """Return how to provoke ``status`` on the operation, and the code the body must carry."""
    if (method, path, status) in SPECIAL:
        return SPECIAL[(method, path, status)]
    generic: Callable[[str, str], Send] | None = None
    has_ids = "{" in path
    if status == 401:
        generic = anonymous
    elif status == 403:
        generic = without_csrf if method in UNSAFE else role_too_low
    elif status == 404:
        generic = unknown_ids if has_ids else teamless
    elif status == 400:
        generic = not_json
    elif status == 413:
        generic = too_large
    elif status == 422:
        generic = wrong_types
    return (generic(method, path), code_for(status)) if generic else None


def assert_documented(
    operation: dict[str, Any], response: Any, code: str | None, label: str
) -> None:
    status = str(response.status_code)
    assert status in operation["responses"], f"{label}: {status} is not declared"
    content = operation["responses"][status]["content"]["application/json"]
    document = {"components": SCHEMA["components"], **content["schema"]}
    body = response.json()
    jsonschema.validate(body, document)
    if code is None:
        return
    assert body["code"] == code, f"{label}: {body}"
    assert body["message"] and body["message"] == body["message"].strip(), label


# --- the tests --------------------------------------------------------------------


def _declared() -> Iterator[Any]:
    """Every declared error, and every one SPECIAL provokes (so it must be declared too)."""
    keys = {
        (method, path, status)
        for method, path, operation in operations()
        for status in declared_errors(operation)
    }
    for method, path, status in sorted(keys | set(SPECIAL)):
        yield pytest.param(method, path, status, id=f"{method} {path} {status}")


def test_every_operation_that_needs_a_login_declares_401() -> None:
    missing = [
        f"{method} {path}"
        for method, path, operation in operations()
        if operation.get("security") != []
        and path != "/api/health"
        and "401" not in operation["responses"]
    ]
    assert missing == []


@pytest.mark.parametrize(("method", "path", "status"), list(_declared()))
def test_each_declared_error_is_answered_with_its_documented_body(
    shared_world: World, method: str, path: str, status: int
) -> None:
    found = provocation(method, path, status)
    assert found is not None, f"add to SPECIAL how to provoke {status} on {method} {path}"
    send, code = found

    response = send(shared_world)

    label = f"{method} {path}"
    assert response.status_code == status, f"{label}: {response.status_code} {response.content!r}"
    assert_documented(SCHEMA["paths"][path][method.lower()], response, code, label)


GENERIC: dict[str, Callable[[str, str], Send]] = {
    "anonymous": anonymous,
    "without_csrf": without_csrf,
    "unknown_ids": unknown_ids,
    "teamless": teamless,
    "not_json": not_json,
    "too_large": too_large,
    "wrong_types": wrong_types,
}


def _generic() -> Iterator[Any]:
    for method, path, _ in operations():
        if path == "/api/health":
            continue
        for name in GENERIC:
            if name in ("without_csrf", "not_json", "too_large") and method not in UNSAFE:
                continue
            if name == "unknown_ids" and "{" not in path:
                continue
            yield pytest.param(method, path, name, id=f"{method} {path} {name}")


@pytest.mark.parametrize(("method", "path", "name"), list(_generic()))
def test_a_refused_request_gets_a_status_its_operation_declares(
    shared_world: World, method: str, path: str, name: str
) -> None:
    response = GENERIC[name](method, path)(shared_world)

    if response.status_code < 400:
        return  # not refused (e.g. a GET that ignores a body or an unknown query)
    operation = SCHEMA["paths"][path][method.lower()]
    code = response.json().get("code", "")
    assert_documented(operation, response, code, f"{method} {path} ({name})")
    assert code == code_for(response.status_code) or response.status_code == 409

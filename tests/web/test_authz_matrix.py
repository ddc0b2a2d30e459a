"""Walk every page and API operation with every role, no login, and an outsider.

The table is tests/web/authz_table.py; a route missing from it fails
``test_every_route_is_in_the_matrix``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.test import Client
from django.urls import URLResolver, get_resolver

from loopkit_web.teams.models import ROLE_RANK

from .authz_table import CASES, Case
from .conftest import TEAM_A_NAME, TEAM_B_NAME, World

ACTORS = ("anonymous", "outsider", "owner", "admin", "editor", "viewer")
MEMBERS = ("owner", "admin", "editor", "viewer")
LOGIN_PATH = "/accounts/login/?next="


# --- discovery --------------------------------------------------------------------


def _template(route: str) -> str:
    return "/" + re.sub(r"<(?:[^>:]+:)?([^>]+)>", r"{\1}", route)


def _resolver_routes(patterns: list[Any], prefix: str = "") -> Iterator[str]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                continue  # Django admin: test_admin_* below
            yield from _resolver_routes(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern)


def discovered_routes() -> set[tuple[str, str]]:
    """Return (method, path) for API operations and ("*", path) for every other route."""
    from loopkit_web.api import api

    operations = {
        (method.upper(), path)
        for path, methods in api.get_openapi_schema()["paths"].items()
        for method in methods
    }
    api_paths = {path for _, path in operations}
    pages = {
        ("*", _template(route))
        for route in _resolver_routes(get_resolver().url_patterns)
        if _template(route) not in api_paths
    }
    return operations | pages


def test_every_route_is_in_the_matrix() -> None:
    listed = {case.key for case in CASES}
    listed_paths = {case.path for case in CASES}
    missing = sorted(
        f"{method} {path}"
        for method, path in discovered_routes()
        if (method == "*" and path not in listed_paths)
        or (method != "*" and (method, path) not in listed)
    )
    assert missing == [], f"add these routes to tests/web/authz_table.py: {missing}"


def test_the_matrix_lists_no_route_that_does_not_exist() -> None:
    discovered = discovered_routes()
    paths = {path for _, path in discovered}
    stale = sorted(
        str(case)
        for case in CASES
        if case.path not in paths
        or (case.is_api and ("*", case.path) not in discovered and case.key not in discovered)
    )
    assert stale == []


# --- expectations -----------------------------------------------------------------


def _has_ids(case: Case) -> bool:
    return case.foreign and "{" in case.path


def expected(case: Case, actor: str, auth: str) -> str:
    """Return "ok", "login" (anonymous denied), "403" or "404"."""
    if case.access == "public":
        return "ok"
    if actor == "anonymous":
        return "login"
    if auth == "bearer" and not case.bearer_ok:
        return "403"
    if case.access == "login":
        return "404" if actor == "outsider" and _has_ids(case) else "ok"
    if case.access.startswith("current:"):
        needed = case.access.split(":", 1)[1]
        role = "owner" if actor == "outsider" else actor  # the outsider owns their own team
        return "ok" if ROLE_RANK[role] >= ROLE_RANK[needed] else "403"
    if actor == "outsider":
        return "404"
    return "ok" if ROLE_RANK[actor] >= ROLE_RANK[case.access] else "403"


def _fill(value: Any, ids: dict[str, Any]) -> Any:
    return value.format(**ids) if isinstance(value, str) else value


def request(world: World, case: Case, actor: str, auth: str, variant: str = "own") -> Any:
    ids = world.ids(actor, variant)
    url = case.path.format(**ids)
    data = {k: _fill(v, ids) for k, v in case.data.items()}
    raw = world.raw_token(actor)
    if auth == "bearer" and raw is not None:
        client = Client(headers={"Authorization": f"Bearer {raw}"})
    else:
        client = Client()
        if (user := world.user(actor)) is not None:
            client.force_login(user)
    method = getattr(client, case.method.lower())
    if case.method == "GET":
        return method(url)
    if case.is_api:
        return method(url, data=data, content_type="application/json")
    return method(url, data=data)


def assert_outcome(case: Case, response: Any, outcome: str) -> None:
    status = response.status_code
    location = response.headers.get("Location", "")
    described = f"{case}: got {status} {location}".strip()
    if outcome == "ok":
        assert status in case.ok, described
        if status == 302:
            assert not location.startswith(LOGIN_PATH), described
    elif outcome == "login":
        if case.is_api:
            assert status == 401, described
            assert response.json() == {
                "code": "unauthenticated",
                "message": "authentication required",
                "details": [],
            }
        else:
            assert status == 302 and location.startswith(LOGIN_PATH), described
    else:
        assert status == int(outcome), described
        if case.is_api:
            body = response.json()
            assert set(body) == {"code", "message", "details"}, described
            assert body["code"] == {403: "forbidden", 404: "not_found"}[status], described


def _auths(case: Case) -> tuple[str, ...]:
    return ("session", "bearer") if case.is_api or case.download else ("session",)


def _matrix() -> Iterator[Any]:
    for case in CASES:
        for actor in ACTORS:
            for auth in _auths(case):
                yield pytest.param(case, actor, auth, id=f"{case}-{actor}-{auth}")


@pytest.mark.parametrize(("case", "actor", "auth"), list(_matrix()))
def test_matrix(shared_world: World, case: Case, actor: str, auth: str) -> None:
    world = shared_world
    from loopkit_web.audit.models import AuditEvent

    events_before = AuditEvent.objects.exclude(action__startswith="user.").count()
    outcome = expected(case, actor, auth)
    response = request(world, case, actor, auth)
    assert_outcome(case, response, outcome)
    if outcome != "ok":
        # Every mutation writes an audit event: a denied request wrote none.
        assert AuditEvent.objects.exclude(action__startswith="user.").count() == events_before
    if actor == "outsider" and case.leak_check:
        assert TEAM_A_NAME not in response.content.decode(errors="replace")


def _foreign() -> Iterator[Any]:
    for case in CASES:
        if not _has_ids(case) or case.access == "public":
            continue
        variants = ["foreign"]
        if re.search(r"\{(?!team_id\})\w+\}", case.path) and "{team_id}" in case.path:
            variants.append("mixed")
        for variant in variants:
            for actor in MEMBERS:
                for auth in _auths(case):
                    yield pytest.param(
                        case, actor, auth, variant, id=f"{case}-{actor}-{auth}-{variant}"
                    )


@pytest.mark.parametrize(("case", "actor", "auth", "variant"), list(_foreign()))
def test_other_teams_ids_are_not_found(
    shared_world: World, case: Case, actor: str, auth: str, variant: str
) -> None:
    world = shared_world
    if auth == "bearer" and not case.bearer_ok:
        pytest.skip("refused to API tokens whatever the ids")
    response = request(world, case, actor, auth, variant)
    outcome = "404"
    if variant == "mixed" and ROLE_RANK[actor] < ROLE_RANK.get(case.access, 0):
        # The caller's own team's role check comes first; it says nothing about B's ids.
        outcome = "403"
    assert_outcome(case, response, outcome)
    assert TEAM_B_NAME not in response.content.decode(errors="replace")


@pytest.mark.django_db
@pytest.mark.parametrize("path", [c.path for c in CASES if c.download and "{" not in c.path])
def test_a_download_answers_a_bad_token_with_a_json_401(path: str) -> None:
    client = Client(headers={"Authorization": "Bearer lk_not-a-token"})

    response = client.get(path)

    assert response.status_code == 401
    assert response.json() == {
        "code": "invalid_token",
        "message": "invalid or revoked API token",
        "details": [],
    }


def test_a_token_does_not_reach_its_users_other_teams(world: World, make_team: Any) -> None:
    from loopkit_web.teams.models import Membership

    other, _ = make_team("Side Project", roles=("owner",))
    Membership.objects.create(team=other, user=world.a.users["viewer"], role="owner")
    client = Client(headers={"Authorization": f"Bearer {world.raw_token('viewer')}"})

    assert client.get(f"/api/teams/{other.pk}").status_code == 404
    assert [t["name"] for t in client.get("/api/teams").json()] == [TEAM_A_NAME]


# --- Django admin -----------------------------------------------------------------


def project_models() -> list[Any]:
    labels = {"loopkit_web", *settings.LOOPKIT_APPS}
    return [m for m in apps.get_models() if m.__module__.split(".")[0] in labels]


def test_every_model_has_an_admin() -> None:
    assert project_models(), "no project models found"
    missing = [m._meta.label for m in project_models() if m not in admin.site._registry]
    assert missing == [], f"register a ModelAdmin (in the app's admin.py) for: {', '.join(missing)}"


@pytest.mark.parametrize("actor", ["anonymous", "owner", "outsider"])
def test_admin_pages_are_for_staff_only(world: World, actor: str) -> None:
    client = Client()
    if (user := world.user(actor)) is not None:
        client.force_login(user)
    for model in project_models():
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.headers["Location"].startswith("/admin/login/"), url


def test_admin_pages_open_for_a_superuser(world: World, make_user: Any) -> None:
    client = Client()
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    assert client.get("/admin/").status_code == 200
    for model in project_models():
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert client.get(url).status_code == 200, url

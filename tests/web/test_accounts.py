"""Sign up, log in and out, password change, API tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from loopkit_web.accounts.models import ApiToken, hash_token
from loopkit_web.audit.models import AuditEvent
from loopkit_web.teams.models import Membership

pytestmark = pytest.mark.django_db


def test_signing_up_creates_the_user_and_their_own_team() -> None:
    client = Client()
    response = client.post(
        "/accounts/signup/",
        {
            "username": "grace",
            "email": "grace@example.com",
            "password1": "a-long-unusual-pass-42",
            "password2": "a-long-unusual-pass-42",
        },
    )

    assert response.status_code == 302
    user = get_user_model().objects.get(username="grace")
    membership = Membership.objects.get(user=user)
    assert (membership.team.name, membership.role) == ("grace's team", "owner")
    assert client.get("/").status_code == 200  # logged in
    assert list(AuditEvent.objects.order_by("pk").values_list("action", flat=True)) == [
        "user.created",
        "team.created",
        "user.login",
    ]


def test_signing_up_rejects_a_weak_password() -> None:
    response = Client().post(
        "/accounts/signup/",
        {"username": "bob", "email": "b@example.com", "password1": "123", "password2": "123"},
    )

    assert response.status_code == 200
    assert "This password is too short" in response.content.decode()
    assert not get_user_model().objects.filter(username="bob").exists()


def test_signing_up_then_following_next_lands_on_the_invitation(make_team: Any) -> None:
    team, _ = make_team("Acme")
    invitation = team.invitations.create(role="editor")
    url = f"/teams/join/{invitation.token}/"
    response = Client().post(
        f"/accounts/signup/?next={url}",
        {
            "username": "new",
            "email": "n@example.com",
            "password1": "a-long-unusual-pass-42",
            "password2": "a-long-unusual-pass-42",
            "next": url,
        },
    )
    assert response.headers["Location"] == url


def test_logging_in_and_out_is_audited(make_user: Any, password: str) -> None:
    make_user("alice")
    client = Client(HTTP_USER_AGENT="pytest-browser")

    response = client.post("/accounts/login/", {"username": "alice", "password": password})
    assert response.status_code == 302
    client.post("/accounts/logout/")

    login, logout = AuditEvent.objects.order_by("pk")
    assert (login.action, login.actor_label, login.ip, login.user_agent) == (
        "user.login",
        "alice",
        "127.0.0.1",
        "pytest-browser",
    )
    assert (logout.action, logout.actor_label) == ("user.logout", "alice")


def test_a_failed_login_is_audited_with_the_attempted_username(make_user: Any) -> None:
    make_user("alice")

    response = Client().post("/accounts/login/", {"username": "alice", "password": "wrong"})

    assert response.status_code == 200
    event = AuditEvent.objects.get()
    assert (event.action, event.actor_id, event.actor_label, event.target_label) == (
        "user.login_failed",
        None,
        "alice",
        "alice",
    )


def test_changing_the_password_works_and_is_audited(make_user: Any, password: str) -> None:
    user = make_user("alice")
    client = Client()
    client.force_login(user)

    response = client.post(
        "/accounts/password/",
        {
            "old_password": password,
            "new_password1": "another-long-pass-77",
            "new_password2": "another-long-pass-77",
        },
    )

    assert response.headers["Location"] == "/accounts/password/done/"
    user.refresh_from_db()
    assert user.check_password("another-long-pass-77")
    event = AuditEvent.objects.get(action="user.password_changed")
    assert event.changes == {"password": [None, "[redacted]"]}
    assert client.get("/").status_code == 200  # the session survived


def test_a_new_token_is_shown_once_and_stored_hashed(make_team: Any, client_for: Any) -> None:
    team, users = make_team("Acme", roles=["editor"])
    client = client_for(users["editor"])

    response = client.post("/accounts/tokens/", {"name": "CI"}, follow=True)

    raw = response.context["created"]
    assert raw.startswith("lk_") and raw in response.content.decode()
    token = ApiToken.objects.get()
    assert (token.name, token.team, token.user) == ("CI", team, users["editor"])
    assert token.token_hash == hash_token(raw) and raw not in token.token_hash
    assert raw not in client.get("/accounts/tokens/").content.decode()
    event = AuditEvent.objects.get(action="api_token.created")
    assert event.changes == {
        "name": [None, "CI"],
        "prefix": [None, raw[:10]],
        "user_id": [None, users["editor"].pk],
    }


def test_a_token_authenticates_api_calls_and_records_last_use(
    make_team: Any, bearer_client: Any
) -> None:
    team, users = make_team("Acme", roles=["viewer"])
    token, raw = ApiToken.issue(user=users["viewer"], team=team, name="cli")

    response = bearer_client(raw).get("/api/me")

    assert response.status_code == 200
    body = response.json()
    assert (body["username"], body["current_team"]["name"], body["token_bound"]) == (
        "acme-viewer",
        "Acme",
        True,
    )
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_last_use_is_written_at_most_once_a_minute(make_team: Any, bearer_client: Any) -> None:
    team, users = make_team("Acme", roles=["viewer"])
    token, raw = ApiToken.issue(user=users["viewer"], team=team, name="cli")
    recent = timezone.now() - timedelta(seconds=5)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=recent)

    bearer_client(raw).get("/api/me")

    token.refresh_from_db()
    assert token.last_used_at == recent


@pytest.mark.parametrize("raw", ["lk_not-a-token", "", "garbage with spaces"])
def test_an_unknown_token_is_401(raw: str, bearer_client: Any) -> None:
    response = bearer_client(raw).get("/api/me")

    assert response.status_code == 401
    assert response.json() == {
        "code": "invalid_token",
        "message": "invalid or revoked API token",
        "details": [],
    }


def test_a_revoked_token_stops_working(make_team: Any, client_for: Any, bearer_client: Any) -> None:
    team, users = make_team("Acme", roles=["viewer"])
    token, raw = ApiToken.issue(user=users["viewer"], team=team, name="cli")

    response = client_for(users["viewer"]).post(f"/accounts/tokens/{token.pk}/revoke/")

    assert response.status_code == 302
    assert bearer_client(raw).get("/api/me").status_code == 401
    event = AuditEvent.objects.get(action="api_token.revoked")
    assert list(event.changes) == ["revoked_at"] and event.changes["revoked_at"][0] is None


def test_a_token_dies_with_its_users_membership(make_team: Any, bearer_client: Any) -> None:
    team, users = make_team("Acme", roles=["viewer"])
    _, raw = ApiToken.issue(user=users["viewer"], team=team, name="cli")
    Membership.objects.filter(user=users["viewer"]).delete()

    assert bearer_client(raw).get("/api/me").status_code == 401


def test_a_token_acts_with_its_users_current_role(make_team: Any, bearer_client: Any) -> None:
    team, users = make_team("Acme", roles=["owner", "viewer"])
    _, raw = ApiToken.issue(user=users["viewer"], team=team, name="cli")
    client = bearer_client(raw)
    assert client.get(f"/api/teams/{team.pk}/invitations").status_code == 403

    Membership.objects.filter(user=users["viewer"]).update(role="admin")

    assert client.get(f"/api/teams/{team.pk}/invitations").status_code == 200


def test_tokens_through_the_api(make_team: Any, client_for: Any, bearer_client: Any) -> None:
    team, users = make_team("Acme", roles=["editor"])
    client = client_for(users["editor"])

    created = client.post("/api/tokens", {"name": "deploy"}, content_type="application/json")

    assert created.status_code == 201
    body = created.json()
    assert (
        body["name"] == "deploy" and body["team_id"] == team.pk and body["token"].startswith("lk_")
    )
    listed = client.get("/api/tokens").json()
    assert [t["name"] for t in listed] == ["deploy"] and "token" not in listed[0]
    assert bearer_client(body["token"]).post(
        "/api/tokens", {"name": "x"}, content_type="application/json"
    ).json() == {
        "code": "forbidden",
        "message": "api tokens cannot create api tokens: sign in to create one",
        "details": [],
    }
    assert client.delete(f"/api/tokens/{body['id']}").status_code == 204
    assert bearer_client(body["token"]).get("/api/me").status_code == 401


def test_nobody_revokes_another_users_token(make_team: Any, client_for: Any) -> None:
    team, users = make_team("Acme", roles=["owner", "viewer"])
    token, _ = ApiToken.issue(user=users["viewer"], team=team, name="cli")

    response = client_for(users["owner"]).delete(f"/api/tokens/{token.pk}")

    assert response.status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


# --- the sign-up policy (LOOPKIT_SIGNUP) ---------------------------------------------

NEW_ACCOUNT = {
    "username": "newcomer",
    "email": "n@example.com",
    "password1": "a-long-unusual-pass-42",
    "password2": "a-long-unusual-pass-42",
}


def _sign_up(next_url: str = "") -> Any:
    query = f"?next={next_url}" if next_url else ""
    return Client().post(f"/accounts/signup/{query}", {**NEW_ACCOUNT, "next": next_url})


def test_open_sign_up_lets_anyone_create_an_account(settings: Any) -> None:
    settings.LOOPKIT_SIGNUP = "open"

    assert _sign_up().status_code == 302
    assert get_user_model().objects.filter(username="newcomer").exists()


def test_invite_sign_up_refuses_anyone_without_an_invitation(settings: Any) -> None:
    settings.LOOPKIT_SIGNUP = "invite"

    page = Client().get("/accounts/signup/")
    response = _sign_up()

    assert page.status_code == 403 and response.status_code == 403
    assert (
        "Sign-up on this server is by invitation: open the invitation link a team admin "
        "sent you, then choose “Sign up”." in response.content.decode()
    )
    assert not get_user_model().objects.filter(username="newcomer").exists()


def test_invite_sign_up_accepts_a_usable_invitation_and_refuses_a_revoked_one(
    settings: Any, make_team: Any
) -> None:
    settings.LOOPKIT_SIGNUP = "invite"
    team, _ = make_team("Acme")
    revoked = team.invitations.create(role="viewer", revoked_at=timezone.now())
    usable = team.invitations.create(role="editor")

    refused = _sign_up(f"/teams/join/{revoked.token}/")
    accepted = _sign_up(f"/teams/join/{usable.token}/")

    assert refused.status_code == 403
    assert accepted.status_code == 302
    assert accepted.headers["Location"] == f"/teams/join/{usable.token}/"


def test_closed_sign_up_refuses_even_an_invitation(settings: Any, make_team: Any) -> None:
    settings.LOOPKIT_SIGNUP = "closed"
    team, _ = make_team("Acme")
    invitation = team.invitations.create(role="editor")

    response = _sign_up(f"/teams/join/{invitation.token}/")

    assert response.status_code == 403
    assert (
        "Sign-up is closed on this server: ask its administrator for an account."
        in response.content.decode()
    )
    assert not get_user_model().objects.filter(username="newcomer").exists()


@pytest.mark.parametrize(("debug", "expected"), [("false", "invite"), ("true", "open")])
def test_the_default_sign_up_policy_is_invite_unless_debug(
    debug: str, expected: str, tmp_path: Any
) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "DEBUG": debug, "DJANGO_SETTINGS_MODULE": "loopkit_web.settings"}
    env["LOOPKIT_HOME"] = str(tmp_path)
    env.pop("LOOPKIT_SIGNUP", None)
    code = "from django.conf import settings; print(settings.LOOPKIT_SIGNUP)"
    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + code],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip

    assert out.stdout.strip() == expected


def test_an_unknown_sign_up_policy_stops_the_server_with_the_three_values(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "LOOPKIT_SIGNUP": "maybe", "LOOPKIT_HOME": str(tmp_path)}
    env["DJANGO_SETTINGS_MODULE"] = "loopkit_web.settings"
    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip

    assert out.returncode == 1
    assert "LOOPKIT_SIGNUP must be open, invite or closed, not 'maybe'" in out.stderr


@pytest.mark.parametrize(
    ("policy", "in_header", "on_login"),
    [("open", True, True), ("invite", False, True), ("closed", False, False)],
)
def test_sign_up_links_show_only_where_the_policy_lets_you_sign_up(
    settings: Any, policy: str, in_header: bool, on_login: bool
) -> None:
    settings.LOOPKIT_SIGNUP = policy

    page = Client().get("/accounts/login/").content.decode()
    header = page.split('<div class="account">', 1)[1].split("</div>", 1)[0]

    assert ('<a href="/accounts/signup/">Sign up</a>' in header) == in_header
    assert ("No account yet?" in page) == on_login

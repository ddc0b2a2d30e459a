"""The audit log: one event per mutation with its diff, append-only, page and exports."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from loopkit_web.accounts.models import ApiToken
from loopkit_web.audit.models import AuditEvent, AuditLogImmutable
from loopkit_web.audit.services import diff, record, snapshot
from loopkit_web.teams.models import Invitation, Membership

pytestmark = pytest.mark.django_db


def test_diff_keeps_only_changed_fields() -> None:
    assert diff({"a": 1, "b": 2}, {"a": 1, "b": 3}) == {"b": [2, 3]}
    assert diff(None, {"a": 1, "b": None}) == {"a": [None, 1]}
    assert diff({"a": 1}, None) == {"a": [1, None]}
    assert diff({"a": 1}, {"a": 1}) == {}


def test_snapshot_redacts_secrets_and_names_foreign_keys_by_column(make_team: Any) -> None:
    team, users = make_team("Acme", roles=["viewer"])
    token, _ = ApiToken.issue(user=users["viewer"], team=team, name="ci")

    data = snapshot(token)

    assert data["token_hash"] == "[redacted]"
    assert (data["team_id"], data["user_id"], data["name"]) == (team.pk, users["viewer"].pk, "ci")
    assert data["created_at"] == token.created_at.isoformat()


def test_record_takes_actor_ip_and_agent_from_the_request(make_team: Any, rf: Any) -> None:
    team, users = make_team("Acme", roles=["admin"])
    request = rf.post("/", HTTP_USER_AGENT="curl/8", REMOTE_ADDR="10.1.2.3")
    request.user = users["admin"]

    event = record(request, "team.updated", team, before={"name": "A"}, after={"name": "Acme"})

    assert (event.actor, event.actor_label, event.team, event.team_label) == (
        users["admin"],
        "acme-admin",
        team,
        "Acme",
    )
    assert (event.target_type, event.target_id, event.target_label) == (
        "teams.team",
        str(team.pk),
        "Acme",
    )
    assert (event.ip, event.user_agent, event.changes) == (
        "10.1.2.3",
        "curl/8",
        {"name": ["A", "Acme"]},
    )


# --- every mutation writes exactly one event -----------------------------------------


def _api(client: Client, method: str, url: str, data: dict[str, Any] | None = None) -> Any:
    response = getattr(client, method)(url, data or {}, content_type="application/json")
    assert response.status_code < 300, response.content
    return response


Mutation = Callable[[Client, Any, dict[str, Any]], Any]


def _rename(c: Client, team: Any, o: dict[str, Any]) -> Any:
    return _api(c, "patch", f"/api/teams/{team.pk}", {"name": "Acme Labs"})


def _change_role(c: Client, team: Any, o: dict[str, Any]) -> Any:
    return _api(c, "patch", f"/api/teams/{team.pk}/members/{o['member'].pk}", {"role": "editor"})


def _remove(c: Client, team: Any, o: dict[str, Any]) -> Any:
    return _api(c, "delete", f"/api/teams/{team.pk}/members/{o['member'].pk}")


def _invite(c: Client, team: Any, o: dict[str, Any]) -> Any:
    return _api(c, "post", f"/api/teams/{team.pk}/invitations", {"role": "viewer"})


def _revoke_invite(c: Client, team: Any, o: dict[str, Any]) -> Any:
    return _api(c, "delete", f"/api/teams/{team.pk}/invitations/{o['invitation'].pk}")


def _create_token(c: Client, team: Any, o: dict[str, Any]) -> Any:
    return _api(c, "post", "/api/tokens", {"name": "ci"})


def _revoke_token(c: Client, team: Any, o: dict[str, Any]) -> Any:
    return _api(c, "delete", f"/api/tokens/{o['token'].pk}")


def _create_team(c: Client, team: Any, o: dict[str, Any]) -> Any:
    return _api(c, "post", "/api/teams", {"name": "Second"})


def _rename_page(c: Client, team: Any, o: dict[str, Any]) -> Any:
    return c.post(f"/teams/{team.pk}/rename/", {"name": "Acme Labs"})


def _role_page(c: Client, team: Any, o: dict[str, Any]) -> Any:
    return c.post(f"/teams/{team.pk}/members/{o['member'].pk}/role/", {"role": "editor"})


MUTATIONS: list[tuple[str, Mutation, str, Callable[[dict[str, Any]], dict[str, Any]]]] = [
    ("rename team", _rename, "team.updated", lambda o: {"name": ["Acme", "Acme Labs"]}),
    ("rename team (page)", _rename_page, "team.updated", lambda o: {"name": ["Acme", "Acme Labs"]}),
    ("change role", _change_role, "membership.updated", lambda o: {"role": ["viewer", "editor"]}),
    (
        "change role (page)",
        _role_page,
        "membership.updated",
        lambda o: {"role": ["viewer", "editor"]},
    ),
    (
        "remove member",
        _remove,
        "membership.deleted",
        lambda o: {"role": ["viewer", None], "user_id": [o["member"].user_id, None]},
    ),
    (
        "invite",
        _invite,
        "invitation.created",
        lambda o: {"role": [None, "viewer"], "expires_at": [None, o["expires_at"]]},
    ),
    (
        "revoke invitation",
        _revoke_invite,
        "invitation.revoked",
        lambda o: {"revoked_at": [None, o["revoked_at"]]},
    ),
    (
        "create token",
        _create_token,
        "api_token.created",
        lambda o: {
            "name": [None, "ci"],
            "prefix": [None, o["prefix"]],
            "user_id": [None, o["owner"].pk],
        },
    ),
    (
        "revoke token",
        _revoke_token,
        "api_token.revoked",
        lambda o: {"revoked_at": [None, o["revoked_at"]]},
    ),
    (
        "create team",
        _create_team,
        "team.created",
        lambda o: {"name": [None, "Second"], "slug": [None, "second"]},
    ),
]


@pytest.mark.parametrize(
    ("mutate", "action", "changes"),
    [pytest.param(m, a, c, id=name) for name, m, a, c in MUTATIONS],
)
def test_each_mutation_writes_exactly_one_event_with_its_diff(
    make_team: Any, client_for: Any, mutate: Mutation, action: str, changes: Callable[..., Any]
) -> None:
    team, users = make_team("Acme", roles=["owner", "viewer"])
    objects: dict[str, Any] = {
        "owner": users["owner"],
        "member": Membership.objects.get(user=users["viewer"]),
        "invitation": Invitation.objects.create(team=team, role="editor"),
        "token": ApiToken.issue(user=users["owner"], team=team, name="old")[0],
    }
    client = client_for(users["owner"])
    before = set(AuditEvent.objects.values_list("pk", flat=True))

    mutate(client, team, objects)

    new = list(AuditEvent.objects.exclude(pk__in=before))
    assert [e.action for e in new] == [action]
    event = new[0]
    objects["invitation"].refresh_from_db()
    objects["token"].refresh_from_db()
    latest_invitation = Invitation.objects.order_by("-pk").first()
    latest_token = ApiToken.objects.order_by("-pk").first()
    objects.update(
        expires_at=latest_invitation.expires_at.isoformat() if latest_invitation else None,
        revoked_at=(
            objects["invitation"].revoked_at or objects["token"].revoked_at or timezone.now()
        ).isoformat(),
        prefix=latest_token.prefix if latest_token else None,
    )
    assert event.changes == changes(objects)
    assert (event.actor, event.ip) == (users["owner"], "127.0.0.1")
    assert event.team_id is not None


def test_a_refused_mutation_writes_no_event(make_team: Any, client_for: Any) -> None:
    team, users = make_team("Acme", roles=["owner"])
    owner = Membership.objects.get(user=users["owner"])

    client_for(users["owner"]).patch(
        f"/api/teams/{team.pk}/members/{owner.pk}",
        {"role": "viewer"},
        content_type="application/json",
    )

    assert not AuditEvent.objects.filter(action="membership.updated").exists()


# --- append-only --------------------------------------------------------------------


def _event(make_team: Any) -> AuditEvent:
    team, users = make_team("Acme")
    return record(users["owner"], "team.updated", team, before={"name": "A"}, after={"name": "B"})


def test_saving_an_existing_event_is_refused(make_team: Any) -> None:
    event = _event(make_team)
    event.action = "forged"

    with pytest.raises(AuditLogImmutable, match="audit events are append-only: update is refused"):
        event.save()
    assert AuditEvent.objects.get().action == "team.updated"


def test_deleting_an_event_is_refused(make_team: Any) -> None:
    event = _event(make_team)

    with pytest.raises(AuditLogImmutable, match="delete is refused"):
        event.delete()
    with pytest.raises(AuditLogImmutable):
        AuditEvent.objects.all().delete()
    with pytest.raises(AuditLogImmutable):
        AuditEvent.objects.filter(pk=event.pk).update(action="forged")
    with pytest.raises(AuditLogImmutable):
        AuditEvent.objects.bulk_update([event], ["action"])
    assert AuditEvent.objects.count() == 1


def test_deleting_a_team_or_user_keeps_its_history(make_team: Any) -> None:
    event = _event(make_team)
    event.team.delete()
    event.actor.delete()

    kept = AuditEvent.objects.get()
    assert (kept.team_label, kept.actor_label, kept.action) == (
        "Acme",
        "acme-owner",
        "team.updated",
    )


def test_the_admin_cannot_change_or_delete_events(make_team: Any, make_user: Any) -> None:
    event = _event(make_team)
    client = Client()
    client.force_login(make_user("root", is_staff=True, is_superuser=True))

    assert client.get(f"/admin/audit/auditevent/{event.pk}/change/").status_code == 200  # view only
    assert (
        client.post(f"/admin/audit/auditevent/{event.pk}/change/", {"action": "x"}).status_code
        == 403
    )
    assert (
        client.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert AuditEvent.objects.get(pk=event.pk).action == "team.updated"


# --- the page and its exports ------------------------------------------------------


@pytest.fixture
def log(make_team: Any, make_user: Any) -> dict[str, Any]:
    team, users = make_team("Acme", roles=["admin", "editor"])
    other, _ = make_team("Other")
    record(
        users["admin"], "team.updated", team, before={"name": "A"}, after={"name": "=HYPERLINK(1)"}
    )
    record(users["editor"], "membership.updated", Membership.objects.get(user=users["editor"]))
    record(users["editor"], "invitation.created", Invitation.objects.create(team=team))
    record(None, "team.updated", other, actor_label="someone-else")
    return {"team": team, "users": users}


def test_the_page_lists_only_the_current_teams_events(log: dict[str, Any], client_for: Any) -> None:
    page = client_for(log["users"]["admin"]).get("/audit/").content.decode()

    assert "invitation.created" in page and "membership.updated" in page
    assert "someone-else" not in page


@pytest.mark.parametrize(
    ("query", "actions"),
    [
        ("actor=acme-editor", ["invitation.created", "membership.updated"]),
        ("action=team.updated", ["team.updated"]),
        ("action=membership.", ["membership.updated"]),
        ("target_type=teams.invitation", ["invitation.created"]),
        (
            f"since={timezone.now().date()}&until={timezone.now().date()}",
            ["invitation.created", "membership.updated", "team.updated"],
        ),
        (f"until={(timezone.now() - timedelta(days=1)).date()}", []),
    ],
)
def test_filters(log: dict[str, Any], client_for: Any, query: str, actions: list[str]) -> None:
    client = client_for(log["users"]["admin"])

    page = client.get(f"/audit/?{query}")
    exported = json.loads(client.get(f"/audit/export.json?{query}").content)
    api = client.get(f"/api/audit?{query}").json()

    assert sorted(e.action for e in page.context["page"]) == actions
    assert sorted(e["action"] for e in exported) == actions
    assert sorted(e["action"] for e in api) == actions


def test_a_bad_date_is_reported_not_ignored(log: dict[str, Any], client_for: Any) -> None:
    page = client_for(log["users"]["admin"]).get("/audit/?since=yesterday")

    assert (
        "since must be a date like 2026-01-31, not &#x27;yesterday&#x27;" in page.content.decode()
    )


def test_csv_export(log: dict[str, Any], client_for: Any) -> None:
    response = client_for(log["users"]["admin"]).get("/audit/export.csv")

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-acme-')
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["action"] for r in rows] == [
        "invitation.created",
        "membership.updated",
        "team.updated",
    ]
    renamed = rows[2]
    assert renamed["actor_label"] == "acme-admin" and renamed["team_label"] == "Acme"
    assert json.loads(renamed["changes"]) == {"name": ["A", "=HYPERLINK(1)"]}


def test_json_export_is_the_full_record(log: dict[str, Any], client_for: Any) -> None:
    response = client_for(log["users"]["admin"]).get("/audit/export.json")

    events = json.loads(response.content)
    assert set(events[0]) == {
        "id", "created_at", "actor_id", "actor_label", "team_id", "team_label", "action",
        "target_type", "target_id", "target_label", "changes", "ip", "user_agent",
    }  # fmt: skip
    assert events[-1]["changes"] == {"name": ["A", "=HYPERLINK(1)"]}


def test_csv_cells_that_look_like_formulas_are_neutralised(make_team: Any, client_for: Any) -> None:
    team, users = make_team("Acme", roles=["admin"])
    record(None, "team.updated", team, actor_label="=cmd|' /C calc'!A0")

    rows = list(
        csv.DictReader(
            io.StringIO(client_for(users["admin"]).get("/audit/export.csv").content.decode())
        )
    )

    assert rows[0]["actor_label"] == "'=cmd|' /C calc'!A0"


def test_an_export_with_a_bad_filter_is_refused(log: dict[str, Any], client_for: Any) -> None:
    response = client_for(log["users"]["admin"]).get("/audit/export.csv?until=soon")

    assert response.status_code == 400
    assert response.content.decode() == "until must be a date like 2026-01-31, not 'soon'"


def test_changes_in_the_django_admin_are_audited(make_team: Any, make_user: Any) -> None:
    team, users = make_team("Acme", roles=["viewer"])
    member = Membership.objects.get(user=users["viewer"])
    client = Client()
    client.force_login(make_user("root", is_staff=True, is_superuser=True))

    response = client.post(
        f"/admin/teams/membership/{member.pk}/change/",
        {
            "team": team.pk,
            "user": users["viewer"].pk,
            "role": "admin",
            "created_at_0": "2026-01-01",
            "created_at_1": "10:00:00",
        },
    )

    assert response.status_code == 302
    event = AuditEvent.objects.get(action="admin.updated")
    assert (event.actor_label, event.team, event.target_type, event.target_id) == (
        "root",
        team,
        "teams.membership",
        str(member.pk),
    )
    assert "Role" in event.changes["change"][1]


def test_the_log_shows_members_logins_and_failed_logins_but_no_one_elses(
    make_team: Any, make_user: Any, client_for: Any, password: str
) -> None:
    _, users = make_team("Acme", roles=["admin", "viewer"])
    make_team("Other", roles=["viewer"])
    for username, secret in [
        ("acme-viewer", password),
        ("acme-viewer", "wrong"),
        ("other-viewer", password),
        ("other-viewer", "wrong"),
        ("nobody", "wrong"),
    ]:
        Client().post("/accounts/login/", {"username": username, "password": secret})

    events = client_for(users["admin"]).get("/api/audit").json()

    seen = sorted((e["action"], e["actor_label"]) for e in events)
    assert ("user.login", "acme-viewer") in seen
    assert ("user.login_failed", "acme-viewer") in seen
    assert not [label for _, label in seen if label in ("other-viewer", "nobody")]
    assert len(events) == len({e["id"] for e in events})  # no duplicates from the joins


def test_the_export_lists_each_event_once_when_its_actor_belongs_to_several_teams(
    make_team: Any, client_for: Any
) -> None:
    team, users = make_team("Acme", roles=["admin"])
    for name in ("Beta", "Gamma"):
        other, _ = make_team(name)
        Membership.objects.create(team=other, user=users["admin"], role="viewer")
    record(users["admin"], "team.updated", team, before={"name": "A"}, after={"name": "B"})
    record(users["admin"], "user.password_changed", users["admin"])
    client = client_for(users["admin"])

    exported = json.loads(client.get("/audit/export.json").content)
    rows = list(csv.DictReader(io.StringIO(client.get("/audit/export.csv").content.decode())))

    assert [e["action"] for e in exported] == ["user.password_changed", "team.updated"]
    assert [r["action"] for r in rows] == ["user.password_changed", "team.updated"]

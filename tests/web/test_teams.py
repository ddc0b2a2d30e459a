"""Teams, roles, the team switcher, invitation links, and the scoping layer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.test import Client, RequestFactory
from django.utils import timezone

from loopkit_web.audit.models import AuditEvent
from loopkit_web.teams.models import Invitation, Membership, Team
from loopkit_web.teams.scoping import current_team, get_scoped_or_404, require_role

pytestmark = pytest.mark.django_db


def _json(client: Client, method: str, url: str, data: dict[str, Any]) -> Any:
    return getattr(client, method)(url, data, content_type="application/json")


def test_a_user_in_several_teams_switches_between_them(make_team: Any, client_for: Any) -> None:
    _, users = make_team("Acme", roles=["viewer"])
    bravo, _ = make_team("Bravo")
    Membership.objects.create(team=bravo, user=users["viewer"], role="editor")
    client = client_for(users["viewer"])
    assert client.get("/api/me").json()["current_team"]["name"] == "Acme"

    response = client.post("/teams/switch/", {"team": bravo.pk, "next": "/audit/"})

    assert response.headers["Location"] == "/audit/"
    me = client.get("/api/me").json()
    assert me["current_team"] == {
        "id": bravo.pk,
        "name": "Bravo",
        "slug": "bravo",
        "role": "editor",
    }
    assert sorted(t["name"] for t in me["teams"]) == ["Acme", "Bravo"]
    page = client.get("/").content.decode()
    assert f'<option value="{bravo.pk}" selected>Bravo</option>' in page


def test_switching_to_a_team_you_are_not_in_is_404(make_team: Any, client_for: Any) -> None:
    _, users = make_team("Acme")
    bravo, _ = make_team("Bravo")
    client = client_for(users["owner"])

    assert client.post("/teams/switch/", {"team": bravo.pk}).status_code == 404
    assert client.post("/teams/switch/", {"team": "nope"}).status_code == 404
    assert client.get("/api/me").json()["current_team"]["name"] == "Acme"


def test_creating_a_team_makes_you_its_owner(make_user: Any, client_for: Any) -> None:
    user = make_user("alice")
    client = client_for(user)

    response = client.post("/teams/", {"name": "Research"})

    team = Team.objects.get(name="Research")
    assert response.headers["Location"] == f"/teams/{team.pk}/"
    assert Membership.objects.get(team=team).role == "owner"
    assert client.get("/api/me").json()["current_team"]["name"] == "Research"
    event = AuditEvent.objects.get(action="team.created")
    assert event.changes == {"name": [None, "Research"], "slug": [None, "research"]}


def test_team_slugs_stay_unique() -> None:
    assert [Team.objects.create(name="Acme").slug for _ in range(3)] == ["acme", "acme-2", "acme-3"]


def test_an_invitation_link_adds_the_user_with_its_role(
    make_team: Any, client_for: Any, make_user: Any
) -> None:
    team, users = make_team("Acme", roles=["admin"])
    admin = client_for(users["admin"])
    body = _json(admin, "post", f"/api/teams/{team.pk}/invitations", {"role": "viewer"}).json()
    link = body["url"]
    assert link.startswith("http://testserver/teams/join/")
    newcomer = client_for(make_user("newcomer"))

    page = newcomer.get(link)
    assert "Join Acme" in page.content.decode()
    response = newcomer.post(link)

    assert response.headers["Location"] == f"/teams/{team.pk}/"
    assert Membership.objects.get(team=team, user__username="newcomer").role == "viewer"
    assert newcomer.post(link).status_code == 302  # a used link does nothing more
    assert Membership.objects.filter(team=team).count() == 2
    assert "was used, revoked or has expired" in newcomer.get(link).content.decode()


def test_an_invitation_link_sends_anonymous_visitors_to_log_in(make_team: Any) -> None:
    team, _ = make_team("Acme")
    invitation = Invitation.objects.create(team=team)

    response = Client().get(f"/teams/join/{invitation.token}/")

    assert response.headers["Location"] == f"/accounts/login/?next=/teams/join/{invitation.token}/"


@pytest.mark.parametrize("state", ["revoked", "expired"])
def test_revoked_or_expired_invitations_do_not_work(
    state: str, make_team: Any, client_for: Any, make_user: Any
) -> None:
    team, _ = make_team("Acme")
    invitation = Invitation.objects.create(team=team)
    if state == "revoked":
        invitation.revoked_at = timezone.now()
    else:
        invitation.expires_at = timezone.now() - timedelta(seconds=1)
    invitation.save()

    client_for(make_user("late")).post(f"/teams/join/{invitation.token}/")

    assert not Membership.objects.filter(team=team, user__username="late").exists()


def test_accepting_never_lowers_a_members_role(make_team: Any, client_for: Any) -> None:
    team, users = make_team("Acme", roles=["admin"])
    invitation = Invitation.objects.create(team=team, role="viewer")

    client_for(users["admin"]).post(f"/teams/join/{invitation.token}/")

    assert Membership.objects.get(user=users["admin"]).role == "admin"


def test_an_unknown_invitation_is_404(make_user: Any, client_for: Any) -> None:
    assert client_for(make_user()).get("/teams/join/not-a-token/").status_code == 404


def test_admins_change_roles(make_team: Any, client_for: Any) -> None:
    team, users = make_team("Acme", roles=["admin", "viewer"])
    member = Membership.objects.get(user=users["viewer"])

    response = _json(
        client_for(users["admin"]),
        "patch",
        f"/api/teams/{team.pk}/members/{member.pk}",
        {"role": "editor"},
    )

    assert response.status_code == 200
    assert response.json()["role"] == "editor"
    event = AuditEvent.objects.get(action="membership.updated")
    assert (event.changes, event.target_id, event.team_id) == (
        {"role": ["viewer", "editor"]},
        str(member.pk),
        team.pk,
    )


def test_only_owners_grant_the_owner_role(make_team: Any, client_for: Any) -> None:
    team, users = make_team("Acme", roles=["owner", "admin", "viewer"])
    member = Membership.objects.get(user=users["viewer"])
    url = f"/api/teams/{team.pk}/members/{member.pk}"

    denied = _json(client_for(users["admin"]), "patch", url, {"role": "owner"})
    allowed = _json(client_for(users["owner"]), "patch", url, {"role": "owner"})

    assert denied.status_code == 409
    assert denied.json() == {
        "code": "owner_required",
        "message": "only an owner can grant or take away the owner role",
        "details": [],
    }
    assert allowed.status_code == 200


def test_admins_cannot_demote_or_remove_owners(make_team: Any, client_for: Any) -> None:
    team, users = make_team("Acme", roles=["owner", "admin"])
    owner = Membership.objects.get(user=users["owner"])
    admin = client_for(users["admin"])

    assert (
        _json(
            admin, "patch", f"/api/teams/{team.pk}/members/{owner.pk}", {"role": "viewer"}
        ).status_code
        == 409
    )
    assert admin.delete(f"/api/teams/{team.pk}/members/{owner.pk}").status_code == 409
    owner.refresh_from_db()
    assert owner.role == "owner"


def test_the_last_owner_stays(make_team: Any, client_for: Any) -> None:
    team, users = make_team("Acme", roles=["owner"])
    owner = Membership.objects.get(user=users["owner"])
    client = client_for(users["owner"])

    demote = _json(client, "patch", f"/api/teams/{team.pk}/members/{owner.pk}", {"role": "admin"})
    page = client.post(f"/teams/{team.pk}/members/{owner.pk}/remove/", follow=True)

    assert (
        demote.json()["message"] == "a team needs at least one owner: make someone else owner first"
    )
    assert "a team needs at least one owner" in page.content.decode()
    assert Membership.objects.filter(pk=owner.pk, role="owner").exists()


def test_an_unknown_role_is_a_validation_error(make_team: Any, client_for: Any) -> None:
    team, users = make_team("Acme", roles=["owner", "viewer"])
    member = Membership.objects.get(user=users["viewer"])

    response = _json(
        client_for(users["owner"]),
        "patch",
        f"/api/teams/{team.pk}/members/{member.pk}",
        {"role": "god"},
    )

    assert response.status_code == 422
    body = response.json()
    assert body["message"] == "invalid input"
    assert [d["loc"] for d in body["details"]] == [["body", "payload", "role"]]


def test_removing_a_member_through_the_settings_page(make_team: Any, client_for: Any) -> None:
    team, users = make_team("Acme", roles=["admin", "editor"])
    member = Membership.objects.get(user=users["editor"])
    client = client_for(users["admin"])
    assert "acme-editor" in client.get(f"/teams/{team.pk}/").content.decode()

    client.post(f"/teams/{team.pk}/members/{member.pk}/remove/")

    assert not Membership.objects.filter(pk=member.pk).exists()
    event = AuditEvent.objects.get(action="membership.deleted")
    assert event.changes == {"role": ["editor", None], "user_id": [users["editor"].pk, None]}


def test_the_settings_page_shows_admin_tools_to_admins_only(
    make_team: Any, client_for: Any
) -> None:
    team, users = make_team("Acme", roles=["admin", "editor"])

    admin_page = client_for(users["admin"]).get(f"/teams/{team.pk}/").content.decode()
    editor_page = client_for(users["editor"]).get(f"/teams/{team.pk}/").content.decode()

    assert "Create invitation link" in admin_page
    assert "Create invitation link" not in editor_page


def test_navigation_hides_pages_that_do_not_exist_yet(make_team: Any, client_for: Any) -> None:
    _, users = make_team("Acme", roles=["admin"])

    page = client_for(users["admin"]).get("/").content.decode()

    assert '<a href="/audit/"' in page
    assert '<a href="/teams/current/"' in page


# --- the scoping layer, directly ---------------------------------------------------


def _request(user: Any) -> Any:
    request = RequestFactory().get("/")
    request.user = user
    request.session = {}
    return request


def test_require_role_ranks_roles(make_team: Any) -> None:
    _, users = make_team("Acme", roles=["editor"])
    request = _request(users["editor"])

    assert require_role(request, "viewer").role == "editor"
    assert require_role(request, "editor").role == "editor"
    with pytest.raises(
        PermissionDenied, match=r"^This needs the admin role in team Acme; you are editor\.$"
    ):
        require_role(request, "admin")
    with pytest.raises(ValueError, match="unknown role 'boss'"):
        require_role(request, "boss")


def test_require_role_hides_other_teams(make_team: Any) -> None:
    _, users = make_team("Acme")
    bravo, _ = make_team("Bravo")

    with pytest.raises(Http404):
        require_role(_request(users["owner"]), "viewer", team=bravo)


def test_scoped_querysets_see_only_the_callers_teams(make_team: Any) -> None:
    acme, users = make_team("Acme", roles=["viewer"])
    bravo, _ = make_team("Bravo", roles=["viewer"])
    request = _request(users["viewer"])

    assert list(Team.objects.for_request(request)) == [acme]
    assert {m.team for m in Membership.objects.for_request(request)} == {acme}
    assert current_team(request) == acme
    outsider = Membership.objects.get(team=bravo)
    with pytest.raises(Http404):
        get_scoped_or_404(Membership, request, pk=outsider.pk)


@pytest.mark.parametrize("url", ["/accounts/tokens/", "/audit/", "/audit/export.csv"])
def test_team_pages_send_a_user_without_team_to_the_teams_page(
    url: str, make_user: Any, client_for: Any
) -> None:
    response = client_for(make_user("loner")).get(url, follow=True)

    assert response.redirect_chain == [("/teams/", 302)]
    assert "Create a team or open an invitation link first." in response.content.decode()


def test_the_switcher_does_not_redirect_off_site(make_team: Any, client_for: Any) -> None:
    team, users = make_team("Acme")

    response = client_for(users["owner"]).post(
        "/teams/switch/", {"team": team.pk, "next": "https://evil.example/"}
    )

    assert response.headers["Location"] == "/"


def test_a_member_leaves_a_team(make_team: Any, client_for: Any) -> None:
    team, users = make_team("Acme", roles=["owner", "editor"])
    client = client_for(users["editor"])

    response = client.post(f"/teams/{team.pk}/leave/", follow=True)

    assert response.redirect_chain == [("/teams/", 302)]
    assert "You left “Acme”." in response.content.decode()
    assert not Membership.objects.filter(user=users["editor"]).exists()
    event = AuditEvent.objects.get(action="membership.deleted")
    assert (event.actor, event.changes) == (
        users["editor"],
        {"role": ["editor", None], "user_id": [users["editor"].pk, None]},
    )
    assert client.get(f"/teams/{team.pk}/").status_code == 404


def test_the_last_owner_cannot_leave(make_team: Any, client_for: Any) -> None:
    team, users = make_team("Acme", roles=["owner"])

    response = client_for(users["owner"]).post(f"/teams/{team.pk}/leave/", follow=True)

    assert "a team needs at least one owner" in response.content.decode()
    assert Membership.objects.filter(user=users["owner"]).exists()


def test_admins_set_the_teams_time_zone_through_the_api_and_the_page(
    make_team: Any, client_for: Any
) -> None:
    team, users = make_team("Acme", roles=["admin"])
    client = client_for(users["admin"])

    answer = _json(client, "patch", f"/api/teams/{team.pk}", {"timezone": "Europe/Paris"})
    assert answer.status_code == 200, answer.content
    assert (answer.json()["name"], answer.json()["timezone"]) == ("Acme", "Europe/Paris")

    page = client.post(
        f"/teams/{team.pk}/rename/", {"name": "Acme", "timezone": "Asia/Tokyo"}, follow=True
    )
    team.refresh_from_db()
    assert team.timezone == "Asia/Tokyo"
    assert "Team settings saved." in page.content.decode()
    changes = AuditEvent.objects.filter(action="team.updated").order_by("pk")
    assert [e.changes for e in changes] == [
        {"timezone": ["UTC", "Europe/Paris"]},
        {"timezone": ["Europe/Paris", "Asia/Tokyo"]},
    ]


def test_an_unknown_time_zone_is_refused_with_the_field(make_team: Any, client_for: Any) -> None:
    team, users = make_team("Acme", roles=["admin"])
    client = client_for(users["admin"])

    answer = _json(client, "patch", f"/api/teams/{team.pk}", {"timezone": "Mars/Olympus"})
    page = client.post(
        f"/teams/{team.pk}/rename/", {"name": "Acme", "timezone": "Mars/Olympus"}, follow=True
    )

    message = "unknown time zone 'Mars/Olympus': use an IANA name such as 'Europe/Paris' or 'UTC'"
    assert answer.status_code == 422
    assert answer.json()["message"] == message
    assert answer.json()["details"][0]["loc"] == ["body", "timezone"]
    assert message.replace("'", "&#x27;") in page.content.decode()
    team.refresh_from_db()
    assert team.timezone == "UTC"

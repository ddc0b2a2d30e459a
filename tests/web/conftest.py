"""Fixtures of the web tests: a two-team world for authorization tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

ROLES = ("owner", "admin", "editor", "viewer")
TEAM_A_NAME = "Acme Secret Team"
TEAM_B_NAME = "Bravo Hidden Team"


@dataclass
class Side:
    """One team and the objects in it that URLs can point at."""

    team: Any
    users: dict[str, Any]
    target: Any  # a viewer membership that admins may change or remove
    invitation: Any
    tokens: dict[str, tuple[Any, str]] = field(default_factory=dict)  # role -> (token, raw)
    app_ids: dict[str, Any] = field(default_factory=dict)  # ids of app objects (loop_id, ...)

    def ids(self, token_owner: str) -> dict[str, Any]:
        token = self.tokens[token_owner][0]
        return {
            "team_id": self.team.pk,
            "membership_id": self.target.pk,
            "invitation_id": self.invitation.pk,
            "token_id": token.pk,
            "token": self.invitation.token,
            **self.app_ids,
        }


@dataclass
class World:
    """Team A with one user per role, and team B whose owner is A's outsider."""

    a: Side
    b: Side

    @property
    def outsider(self) -> Any:
        return self.b.users["owner"]

    def user(self, actor: str) -> Any:
        if actor == "anonymous":
            return None
        if actor == "outsider":
            return self.outsider
        return self.a.users[actor]

    def raw_token(self, actor: str) -> str | None:
        if actor == "anonymous":
            return None
        if actor == "outsider":
            return self.b.tokens["owner"][1]
        return self.a.tokens[actor][1]

    def ids(self, actor: str, variant: str = "own") -> dict[str, Any]:
        """Return the ids to fill URLs with.

        ``own``: team A's objects (the actor's own token for token ids);
        ``foreign``: team B's objects; ``mixed``: team A's id with B's objects.
        """
        if variant == "foreign":
            return self.b.ids("owner")
        own = self.a.ids(actor if actor in self.a.tokens else "owner")
        if variant == "mixed":
            foreign = self.b.ids("owner")
            return {**foreign, "team_id": own["team_id"]}
        return own


def _side(
    make_team: Callable[..., Any], make_user: Callable[..., Any], name: str, roles: tuple[str, ...]
) -> Side:
    from loopkit_web.accounts.models import ApiToken
    from loopkit_web.teams.models import Invitation, Membership

    team, users = make_team(name, roles=roles)
    target = Membership.objects.create(
        team=team, user=make_user(f"{team.slug}-target"), role="viewer"
    )
    invitation = Invitation.objects.create(team=team, role="editor", created_by=users["owner"])
    side = Side(team=team, users=users, target=target, invitation=invitation)
    for role, user in users.items():
        side.tokens[role] = ApiToken.issue(user=user, team=team, name=f"{role} token")
    side.app_ids.update(_app_ids(team, users["owner"]))
    return side


def _app_ids(team: Any, owner: Any) -> dict[str, Any]:
    """Make the app objects URLs point at in *team*; apps add a line here."""
    from providers.models import Provider

    from .builder_fixtures import builder_ids
    from .runs_fixtures import runs_ids

    provider = Provider.objects.create(
        team=team, name="matrix-provider", model="openai/m", api_base="http://127.0.0.1:9/v1"
    )
    return {
        **builder_ids(team, owner),
        **runs_ids(team, owner),
        "dashboard_table": "by_loop",
        "provider_id": provider.pk,
    }


def build_world(make_team: Callable[..., Any], make_user: Callable[..., Any]) -> World:
    return World(
        a=_side(make_team, make_user, TEAM_A_NAME, ROLES),
        b=_side(make_team, make_user, TEAM_B_NAME, ("owner",)),
    )


@pytest.fixture
def world(make_team: Callable[..., Any], make_user: Callable[..., Any]) -> World:
    """A fresh two-team world for one test."""
    return build_world(make_team, make_user)


@pytest.fixture(scope="module")
def module_world(django_db_setup: Any, django_db_blocker: Any, factories: Any) -> Iterator[World]:
    """One two-team world for a whole module, rolled back at its end.

    Each test using ``shared_world`` runs in a savepoint inside this
    transaction (pytest-django's ``db``), so its changes vanish after it; the
    Python objects in the world are not refreshed, so read state back from the
    database. Building the world once saves most of the matrix's run time.
    """
    from django.db import transaction

    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            yield build_world(factories.team, factories.user)
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture
def shared_world(module_world: World, db: Any) -> World:
    """The module's world, with this test's changes rolled back after it."""
    return module_world

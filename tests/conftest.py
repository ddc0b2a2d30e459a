"""Shared fixtures for the whole suite (engine, web, e2e).

Web fixtures (users, teams, logged-in clients) are plain factories so any
app's tests can build what they need::

    def test_it_lists_loops(make_team, client_for):
        team, users = make_team("Acme", roles=["owner", "viewer"])
        client = client_for(users["viewer"])

Keep this file general; put app-specific fixtures in the app's test folder.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

try:  # the engine's tests run without Django installed
    import django  # noqa: F401

    HAS_DJANGO = True
except ImportError:  # pragma: no cover
    HAS_DJANGO = False

PASSWORD = "correct-horse-battery-staple"
_counter = itertools.count(1)


if HAS_DJANGO:

    @pytest.fixture
    def password() -> str:
        """The password every user made by ``make_user`` has."""
        return PASSWORD

    def create_user(username: str | None = None, **extra: Any) -> Any:
        """Create a user with PASSWORD (a plain function, for module-scoped fixtures)."""
        from django.contrib.auth import get_user_model

        name = username or f"user{next(_counter)}"
        return get_user_model().objects.create_user(
            username=name, email=f"{name}@example.com", password=PASSWORD, **extra
        )

    def create_team(
        name: str | None = None, roles: list[str] | tuple[str, ...] = ("owner",)
    ) -> tuple[Any, dict[str, Any]]:
        """Create a team with one user per role, named ``<team slug>-<role>``."""
        from loopkit_web.teams.models import Membership, Team

        team = Team.objects.create(name=name or f"Team {next(_counter)}")
        users = {}
        for role in roles:
            user = create_user(f"{team.slug}-{role}")
            Membership.objects.create(team=team, user=user, role=role)
            users[role] = user
        return team, users

    @pytest.fixture(scope="session")
    def factories() -> SimpleNamespace:
        """``factories.user(...)`` and ``factories.team(...)`` without the function-scoped
        ``db`` fixture, for module-scoped data (unblock the database yourself)."""
        return SimpleNamespace(user=create_user, team=create_team)

    @pytest.fixture
    def make_user(db: Any) -> Callable[..., Any]:
        """Return a factory: make_user("alice") -> a saved user with PASSWORD."""
        return create_user

    @pytest.fixture
    def make_team(db: Any) -> Callable[..., Any]:
        """Return a factory: make_team("Acme", roles=["owner", "viewer"]) -> (team, users by role).

        Users are named ``<team slug>-<role>``.
        """
        return create_team

    @pytest.fixture
    def client_for(db: Any) -> Iterator[Callable[[Any], Any]]:
        """Return a factory: client_for(user) -> a django.test.Client logged in as user."""
        from django.test import Client

        def factory(user: Any, **kwargs: Any) -> Client:
            client = Client(**kwargs)
            client.force_login(user)
            return client

        yield factory

    @pytest.fixture
    def bearer_client(db: Any) -> Callable[[str], Any]:
        """Return a factory: bearer_client(raw_token) -> a Client that sends it as a Bearer token."""
        from django.test import Client

        def factory(raw_token: str) -> Client:
            return Client(headers={"Authorization": f"Bearer {raw_token}"})

        return factory

"""The demo team and user that `loopkit serve --demo` (and `make run`) creates or refreshes.

After the team exists, every callable in ``settings.LOOPKIT_DEMO_LOADERS``
(dotted paths) is called as ``loader(team=team, user=user, stdout=stdout)``:
the builder app registers the loader that imports the example loops from
``loops/``. Loaders must be idempotent (they run at every start).
"""

from __future__ import annotations

from dataclasses import dataclass
from io import TextIOBase
from typing import Any, TextIO

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.module_loading import import_string

from loopkit_web.audit.services import record, snapshot
from loopkit_web.teams.models import Membership, Role, Team

DEMO_TEAM_NAME = "Demo"
DEMO_TEAM_SLUG = "demo"
DEMO_USERNAME = "demo"
DEMO_PASSWORD = "loopkit-demo"


@dataclass
class DemoAccount:
    team: Team
    user: Any
    password: str


@transaction.atomic
def ensure_demo_account() -> DemoAccount:
    """Create or refresh the Demo team and its owner, the demo user."""
    User = get_user_model()
    user, user_created = User.objects.get_or_create(
        username=DEMO_USERNAME, defaults={"email": "demo@example.com"}
    )
    if user_created or not user.check_password(DEMO_PASSWORD) or not user.is_active:
        user.set_password(DEMO_PASSWORD)
        user.is_active = True
        user.save()
    if user_created:
        record(
            None,
            "user.created",
            user,
            after=snapshot(user, ["username", "email"]),
            actor_label="loopkit_start",
        )
    team, team_created = Team.objects.get_or_create(
        slug=DEMO_TEAM_SLUG, defaults={"name": DEMO_TEAM_NAME}
    )
    if team_created:
        record(
            None,
            "team.created",
            team,
            after=snapshot(team, ["name", "slug"]),
            actor_label="loopkit_start",
        )
    membership, created = Membership.objects.get_or_create(
        team=team, user=user, defaults={"role": Role.OWNER}
    )
    if created:
        record(
            None,
            "membership.created",
            membership,
            after=snapshot(membership, ["user", "role"]),
            actor_label="loopkit_start",
        )
    elif membership.role != Role.OWNER:
        before = snapshot(membership, ["role"])
        membership.role = Role.OWNER
        membership.save(update_fields=["role"])
        record(
            None,
            "membership.updated",
            membership,
            before=before,
            after=snapshot(membership, ["role"]),
            actor_label="loopkit_start",
        )
    return DemoAccount(team=team, user=user, password=DEMO_PASSWORD)


def run_demo_loaders(account: DemoAccount, stdout: TextIO | TextIOBase) -> None:
    """Call every loader in settings.LOOPKIT_DEMO_LOADERS for the demo team."""
    for dotted in settings.LOOPKIT_DEMO_LOADERS:
        loader = import_string(dotted)
        loader(team=account.team, user=account.user, stdout=stdout)

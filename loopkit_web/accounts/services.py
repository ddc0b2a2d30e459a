"""Account mutations shared by the pages and the API; each writes one audit event."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from loopkit_web.accounts.models import ApiToken
from loopkit_web.audit.services import record, snapshot
from loopkit_web.teams.services import create_team


@transaction.atomic
def sign_up(request: HttpRequest, username: str, email: str, password: str) -> Any:
    """Create a user with a personal team of which they are the owner."""
    user = get_user_model().objects.create_user(username=username, email=email, password=password)
    record(user, "user.created", user, after=snapshot(user, ["username", "email"]), team=None)
    create_team(user, user, f"{username}'s team")
    return user


def password_changed(request: HttpRequest, user: Any) -> None:
    record(request, "user.password_changed", user, after={"password": "[redacted]"})


@transaction.atomic
def issue_token(
    request: HttpRequest | Any, user: Any, team: Any, name: str
) -> tuple[ApiToken, str]:
    """Create an API token for *user* in *team*; return it and the raw value (shown once)."""
    token, raw = ApiToken.issue(user=user, team=team, name=name.strip()[:100] or "token")
    record(request, "api_token.created", token, after=snapshot(token, ["name", "prefix", "user"]))
    return token, raw


@transaction.atomic
def revoke_token(request: HttpRequest, token: ApiToken) -> ApiToken:
    if token.revoked_at is not None:
        return token
    before = snapshot(token, ["revoked_at"])
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    record(
        request, "api_token.revoked", token, before=before, after=snapshot(token, ["revoked_at"])
    )
    return token

"""API tokens: per user and team, shown once, stored hashed, named, revocable."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from loopkit_web.teams.scoping import TeamScopedQuerySet

TOKEN_PREFIX = "lk_"
# last_used_at is refreshed at most this often, so reads do not all become writes.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def hash_token(raw: str) -> str:
    """Return the stored form of a raw token (SHA-256: tokens are random, not passwords)."""
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiTokenQuerySet(TeamScopedQuerySet["ApiToken"]):
    def active(self) -> ApiTokenQuerySet:
        """Return the tokens that have not been revoked."""
        return self.filter(revoked_at__isnull=True)


class ApiToken(models.Model):
    """A bearer token that acts as its user, inside one team only."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'CI'.")
    prefix = models.CharField(
        max_length=16, help_text="The token's first characters, to recognise it in lists."
    )
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, *, user: Any, team: Any, name: str) -> tuple[ApiToken, str]:
        """Create a token and return it with its raw value, which is never stored."""
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user, team=team, name=name, prefix=raw[:10], token_hash=hash_token(raw)
        )
        return token, raw

    @classmethod
    def authenticate(cls, raw: str) -> ApiToken | None:
        """Return the active token for *raw* whose user is still active in its team."""
        token = (
            cls.objects.active()
            .select_related("user", "team")
            .filter(token_hash=hash_token(raw), user__is_active=True)
            .first()
        )
        if token is None or not token.team.memberships.filter(user=token.user).exists():
            return None
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            cls.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
        return token

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

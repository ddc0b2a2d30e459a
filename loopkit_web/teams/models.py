"""Teams, memberships with roles, and invitation links."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.text import slugify

from loopkit_web.teams.scoping import TeamScopedQuerySet

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class Role(models.TextChoices):
    """A member's role in a team; each role can do everything the ones below it can."""

    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    EDITOR = "editor", "Editor"
    VIEWER = "viewer", "Viewer"


ROLE_RANK: dict[str, int] = {
    Role.VIEWER: 1,
    Role.EDITOR: 2,
    Role.ADMIN: 3,
    Role.OWNER: 4,
}


def role_at_least(role: str, minimum: str) -> bool:
    """Return True if *role* ranks at or above *minimum*."""
    return ROLE_RANK[role] >= ROLE_RANK[minimum]


class TeamQuerySet(models.QuerySet["Team"]):
    def for_user(self, user: object) -> TeamQuerySet:
        """Return the teams *user* is a member of."""
        if not getattr(user, "is_authenticated", False):
            return self.none()
        # Only a signed-in user is authenticated (AnonymousUser is not).
        return self.filter(memberships__user=cast("User", user))

    def for_request(self, request: object) -> TeamQuerySet:
        """Return the teams this request may see (only the token's team for API tokens)."""
        from loopkit_web.teams.scoping import request_token

        token = request_token(request)
        qs = self.for_user(getattr(request, "user", None))
        if token is not None:
            qs = qs.filter(pk=token.team_id)
        return qs


class Team(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=120, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    #: The IANA time zone of the team's cron schedules that name none (and of their next firings).
    timezone = models.CharField(max_length=64, default="UTC")

    objects = TeamQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.slug:
            self.slug = unique_slug(self.name)
        super().save(*args, **kwargs)


def unique_slug(name: str) -> str:
    """Return a slug for *name* that no team uses yet."""
    base = slugify(name)[:100] or "team"
    slug, n = base, 1
    while Team.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


class Membership(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(default=timezone.now)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="unique_membership"),
        ]
        ordering = ["team", "created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


def new_invitation_token() -> str:
    return secrets.token_urlsafe(24)


def default_invitation_expiry() -> object:
    return timezone.now() + timedelta(days=7)


class Invitation(models.Model):
    """A link that adds whoever opens it (once logged in) to a team with a role."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invitations")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.EDITOR)
    token = models.CharField(max_length=64, unique=True, default=new_invitation_token)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(default=default_invitation_expiry)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "pk"]

    def __str__(self) -> str:
        return f"Invitation to {self.team} as {self.role}"

    @property
    def is_usable(self) -> bool:
        """Return True if the link can still be accepted."""
        return (
            self.accepted_at is None
            and self.revoked_at is None
            and self.expires_at > timezone.now()
        )

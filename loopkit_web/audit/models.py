"""The append-only audit log."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from loopkit_web.teams.scoping import TeamScopedQuerySet


class AuditLogImmutable(Exception):
    """Raised on any attempt to change or delete an audit event."""

    def __init__(self, operation: str) -> None:
        self.operation = operation
        super().__init__(
            f"audit events are append-only: {operation} is refused; record a new event instead"
        )


class AuditEventQuerySet(TeamScopedQuerySet["AuditEvent"]):
    def for_team_log(self, team: Any) -> AuditEventQuerySet:
        """Return what the team's audit log shows: the team's events, plus the
        account events of its members (logins, logouts, failed logins on their
        usernames, password changes), which belong to no team."""
        from loopkit_web.teams.models import Membership

        members = Membership.objects.filter(team=team)
        usernames = members.values("user__username")
        # Subqueries, not a join on memberships: a join repeats every event once per
        # team its actor belongs to.
        return self.filter(
            models.Q(team=team)
            | models.Q(
                team__isnull=True,
                action__startswith="user.",
                actor_id__in=members.values("user_id"),
            )
            | models.Q(team__isnull=True, action="user.login_failed", actor_label__in=usernames)
        )

    def update(self, **kwargs: Any) -> int:
        raise AuditLogImmutable("update")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditLogImmutable("delete")

    # bulk_update and the admin's delete action go through these too.
    def bulk_update(self, *args: Any, **kwargs: Any) -> int:
        raise AuditLogImmutable("update")

    def _raw_delete(self, using: Any) -> int:
        raise AuditLogImmutable("delete")


class AuditEvent(models.Model):
    """One mutation or security event: who did what to which object, and what changed.

    Rows are written by ``loopkit_web.audit.services.record`` only. Actor and
    team are kept as loose references (no database constraint) plus a label,
    so deleting a user or team never rewrites history.
    """

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_label = models.CharField(
        max_length=150, blank=True, help_text="The actor's username when the event was written."
    )
    team = models.ForeignKey(
        "teams.Team",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    team_label = models.CharField(max_length=100, blank=True)
    action = models.CharField(
        max_length=100, db_index=True, help_text='Dotted noun.verb, e.g. "membership.updated".'
    )
    target_type = models.CharField(max_length=100, blank=True, help_text='e.g. "teams.membership"')
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=200, blank=True)
    changes = models.JSONField(
        default=dict,
        blank=True,
        help_text="The changed fields: {field: [before, after]}.",
    )
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["team", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label or '-'} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditLogImmutable("update")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditLogImmutable("delete")

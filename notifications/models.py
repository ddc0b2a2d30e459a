"""A team's notification settings, and the notifications sent for its runs."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from loopkit_web.teams.scoping import TeamScopedQuerySet
from providers import crypto


class TeamNotifications(models.Model):
    """Where a team is told about its runs: a Slack-compatible webhook and/or email."""

    team = models.OneToOneField(
        "teams.Team", on_delete=models.CASCADE, related_name="notification_settings"
    )
    #: The webhook URL as a Fernet token (providers/crypto.py): whoever has it can post.
    webhook_url_encrypted = models.TextField(blank=True)
    #: How the URL is shown after saving (``https://hooks.slack.com/…x7Qz``).
    webhook_url_hint = models.CharField(max_length=120, blank=True)
    #: Addresses emailed through the deployment's email settings (Django's EMAIL_*).
    email_recipients = models.JSONField(default=list, blank=True)
    #: Tell the team when a run waits at an approval gate (with a link to its page).
    on_approval = models.BooleanField(default=True)
    #: Tell the team when a run fails (failed, budget exceeded, verification failed).
    on_failure = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "team notifications"

    def __str__(self) -> str:
        return f"notifications of {self.team}"

    def set_webhook_url(self, value: str) -> None:
        """Store ``value`` encrypted (an empty value removes the webhook)."""
        self.webhook_url_encrypted = crypto.encrypt(value) if value else ""
        self.webhook_url_hint = hint(value) if value else ""

    def webhook_url(self) -> str:
        """Return the decrypted URL ("" when none); raise ``crypto.UnreadableKey``."""
        return crypto.decrypt(self.webhook_url_encrypted) if self.webhook_url_encrypted else ""

    @property
    def configured(self) -> bool:
        return bool(self.webhook_url_encrypted or self.email_recipients)


def hint(url: str) -> str:
    """Show a webhook URL by its scheme, host and last four characters: the path is the secret."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].rpartition("@")[2]
    return f"{scheme}://{host}/…{url[-4:]}"[:120]


class Event(models.TextChoices):
    APPROVAL = "approval", "Waiting for approval"
    FAILED = "failed", "Run failed"


class NotificationQuerySet(TeamScopedQuerySet["Notification"]):
    pass


class Notification(models.Model):
    """One notification of one run: unique, so a retried task or a run suspended again
    at the same gate tells the team once."""

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=16, choices=Event.choices)
    #: What within the run: the approval's id for ``approval``, "" for ``failed``.
    key = models.CharField(max_length=40, blank=True)
    #: Per channel: "sent", or the error in words (never a secret); absent: not configured.
    outcome = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["run", "event", "key"], name="notifications_unique_run_event_key"
            ),
        ]
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.run_id} · {self.event}{' ' + self.key if self.key else ''}"

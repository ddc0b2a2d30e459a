from __future__ import annotations

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """A team's notifications: a chat webhook and email for pending approvals and failed runs."""

    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

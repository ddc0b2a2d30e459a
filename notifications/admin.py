from __future__ import annotations

from django.contrib import admin

from notifications.models import Notification, TeamNotifications


@admin.register(TeamNotifications)
class TeamNotificationsAdmin(admin.ModelAdmin):  # type: ignore[type-arg]  # generic only in django-stubs
    """Read a team's settings; the webhook URL is entered on the team's page (never shown here)."""

    list_display = ("team", "webhook_url_hint", "on_approval", "on_failure", "updated_at")
    search_fields = ("team__name",)
    exclude = ("webhook_url_encrypted",)
    readonly_fields = ("webhook_url_hint",)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]  # generic only in django-stubs
    list_display = ("run", "event", "key", "team", "created_at", "outcome")
    list_filter = ("event", "team")
    raw_id_fields = ("run",)

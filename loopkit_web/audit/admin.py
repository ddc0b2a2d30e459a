from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from loopkit_web.audit.models import AuditEvent

# ModelAdmin and TabularInline are generic only in django-stubs (no __class_getitem__ at
# run time without django_stubs_ext.monkeypatch), hence each class's ignore[type-arg].


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Read-only: the audit log is append-only, also for superusers."""

    list_display = ("created_at", "actor_label", "team_label", "action", "target_type", "target_id")
    list_filter = ("action", "team_label")
    search_fields = ("actor_label", "action", "target_type", "target_id", "target_label")
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

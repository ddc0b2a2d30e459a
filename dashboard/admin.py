"""Admin: the rollups, read-only (they are derived from runs; ``rollups.rebuild`` remakes them)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from dashboard.models import LoopHour, ModelHour, RollupState

# ModelAdmin and TabularInline are generic only in django-stubs (no __class_getitem__ at
# run time without django_stubs_ext.monkeypatch), hence each class's ignore[type-arg].


class ReadOnly(admin.ModelAdmin):  # type: ignore[type-arg]
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(LoopHour)
class LoopHourAdmin(ReadOnly):
    list_display = ("team", "hour", "loop_name", "runs", "succeeded", "cost", "unknown_cost_runs")
    list_filter = ("team",)
    date_hierarchy = "hour"


@admin.register(ModelHour)
class ModelHourAdmin(ReadOnly):
    list_display = ("team", "hour", "model", "runs", "cost", "unknown_cost_runs")
    list_filter = ("team",)
    date_hierarchy = "hour"


@admin.register(RollupState)
class RollupStateAdmin(ReadOnly):
    list_display = ("team", "closed_until")

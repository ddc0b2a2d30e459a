"""Admin views of runs: read-mostly, for operators looking into a run."""

from __future__ import annotations

from django.contrib import admin

from runs.models import (
    ApprovalRequest,
    Checkpoint,
    CronFiring,
    LoopTest,
    LoopTestResult,
    MemoryRecord,
    Run,
    RunCassette,
    RunEvent,
    RunModel,
    WebhookDelivery,
)

# ModelAdmin and TabularInline are generic only in django-stubs (no __class_getitem__ at
# run time without django_stubs_ext.monkeypatch), hence each class's ignore[type-arg].


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("id", "loop_name", "team", "status", "trigger_type", "dry_run", "created_at")
    list_filter = ("status", "trigger_type", "dry_run")
    search_fields = ("loop_name", "error")
    raw_id_fields = ("loop", "loop_version", "rerun_of", "started_by")


@admin.register(RunEvent)
class RunEventAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("run", "seq", "type", "created_at")
    list_filter = ("type",)
    raw_id_fields = ("run",)


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("run", "step", "status", "decided_by_label", "created_at", "decided_at")
    list_filter = ("status",)
    raw_id_fields = ("run", "decided_by")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("loop", "delivery_id", "event", "action", "run", "received_at")
    raw_id_fields = ("loop", "run")


@admin.register(CronFiring)
class CronFiringAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("loop", "due_time", "run", "created_at")
    raw_id_fields = ("loop", "run")


@admin.register(Checkpoint)
class CheckpointAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("run", "key", "created_at")
    raw_id_fields = ("run",)


@admin.register(MemoryRecord)
class MemoryRecordAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("team", "namespace", "key", "updated_at")
    list_filter = ("namespace",)


@admin.register(RunModel)
class RunModelAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("run", "team", "model", "tokens_in", "tokens_out", "cost_usd", "created_at")
    list_filter = ("model",)
    raw_id_fields = ("run",)


@admin.register(RunCassette)
class RunCassetteAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("run", "calls", "created_at")
    raw_id_fields = ("run",)
    exclude = ("data",)  # gzip bytes


@admin.register(LoopTest)
class LoopTestAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "loop", "source_run", "source_version", "created_at")
    search_fields = ("name",)
    raw_id_fields = ("loop", "source_run", "created_by")
    exclude = ("cassette",)  # gzip bytes


@admin.register(LoopTestResult)
class LoopTestResultAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("test", "version_number", "passed", "status", "trigger", "created_at")
    list_filter = ("passed", "trigger")
    raw_id_fields = ("test",)

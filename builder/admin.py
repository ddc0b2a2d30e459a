from __future__ import annotations

from django.contrib import admin

from builder.models import GitRepository, Loop, LoopVersion

# ModelAdmin and TabularInline are generic only in django-stubs (no __class_getitem__ at
# run time without django_stubs_ext.monkeypatch), hence each class's ignore[type-arg].


class LoopVersionInline(admin.TabularInline):  # type: ignore[type-arg]
    model = LoopVersion
    extra = 0
    fields = ("number", "author_label", "message", "created_at", "lrs_score", "lrs_grade")
    readonly_fields = fields
    can_delete = False
    show_change_link = True


@admin.register(Loop)
class LoopAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "team", "version", "lrs_score", "lrs_grade", "updated_at")
    list_filter = ("team", "lrs_grade")
    search_fields = ("name", "description")
    readonly_fields = (
        "version",
        "lrs_score",
        "lrs_grade",
        "lrs_report",
        "created_at",
        "updated_at",
    )
    inlines = [LoopVersionInline]


@admin.register(LoopVersion)
class LoopVersionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("loop", "number", "author_label", "message", "created_at", "lrs_grade")
    list_filter = ("loop__team",)
    search_fields = ("loop__name", "message")
    readonly_fields = (
        "loop",
        "number",
        "yaml",
        "author",
        "author_label",
        "created_at",
        "lrs_report",
    )


@admin.register(GitRepository)
class GitRepositoryAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("team", "url", "branch", "folder", "last_export_at", "last_import_at")

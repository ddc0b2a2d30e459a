from __future__ import annotations

from django.contrib import admin

from loopkit_web.accounts.models import ApiToken

# ModelAdmin and TabularInline are generic only in django-stubs (no __class_getitem__ at
# run time without django_stubs_ext.monkeypatch), hence each class's ignore[type-arg].


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "prefix", "user", "team", "created_at", "last_used_at", "revoked_at")
    list_filter = ("team",)
    search_fields = ("name", "prefix", "user__username")
    readonly_fields = ("prefix", "token_hash", "created_at", "last_used_at")

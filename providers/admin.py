from __future__ import annotations

from django.contrib import admin

from providers.models import Provider


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):  # type: ignore[type-arg]  # generic only in django-stubs
    """Read the providers; keys are entered on the team's Providers page (never shown here)."""

    list_display = ("name", "team", "model", "api_base", "api_key_hint", "is_default")
    list_filter = ("team",)
    search_fields = ("name", "model", "team__name")
    exclude = ("api_key_encrypted",)
    readonly_fields = ("api_key_hint",)

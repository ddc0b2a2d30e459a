from __future__ import annotations

from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    """A team's model providers: LiteLLM model, endpoint, encrypted key, parameters."""

    name = "providers"
    default_auto_field = "django.db.models.BigAutoField"

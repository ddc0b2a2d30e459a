from __future__ import annotations

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The team dashboard of runs, tokens and costs, and the runs list."""

    name = "dashboard"
    verbose_name = "Dashboard"
    default_auto_field = "django.db.models.BigAutoField"

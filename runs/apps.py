from __future__ import annotations

from django.apps import AppConfig


class RunsConfig(AppConfig):
    """Runs of loops on Huey workers, their events, triggers and live pages."""

    name = "runs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Register the Huey tasks (and their periodic schedules) with the consumer.
        from runs import tasks  # noqa: F401

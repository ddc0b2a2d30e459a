from __future__ import annotations

from django.apps import AppConfig


class LoopkitWebConfig(AppConfig):
    name = "loopkit_web"
    verbose_name = "LoopKit web"

    def ready(self) -> None:
        from loopkit_web import checks  # noqa: F401

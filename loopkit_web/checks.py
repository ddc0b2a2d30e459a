"""System checks for LoopKit settings (``manage.py check``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.utils.module_loading import import_string


@register(Tags.compatibility)
def check_huey_immediate(app_configs: Any, **kwargs: Any) -> list[Error]:
    if "immediate" not in getattr(settings, "HUEY", {}):
        return [
            Error(
                "settings.HUEY has no 'immediate' key.",
                hint="Set it explicitly: djhuey otherwise runs tasks inline whenever DEBUG is on.",
                id="loopkit.E001",
            )
        ]
    return []


@register()
def check_demo_loaders(app_configs: Any, **kwargs: Any) -> list[Error]:
    errors = []
    for dotted in getattr(settings, "LOOPKIT_DEMO_LOADERS", []):
        try:
            import_string(dotted)
        except ImportError as exc:
            errors.append(
                Error(
                    f"LOOPKIT_DEMO_LOADERS entry {dotted!r} cannot be imported: {exc}",
                    hint="Give the dotted path of a callable loader(team, user, stdout).",
                    id="loopkit.E002",
                )
            )
    return errors

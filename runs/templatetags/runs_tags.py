"""Loop-page pieces of the runs app: ``{% run_dialog loop %}`` and ``{% how_it_starts loop %}``."""

from __future__ import annotations

from typing import Any

from django import template

from builder.models import Loop
from providers.models import Provider
from runs.models import LoopTest
from runs.starts import how_it_starts as describe
from runs.starts import run_dialog as dialog_fields
from runs.triggers import current_spec

register = template.Library()


@register.inclusion_tag("runs/_run_dialog.html", takes_context=True)
def run_dialog(context: dict[str, Any], loop: Loop) -> dict[str, Any]:
    """The Run button and its dialog: inputs, a payload for a webhook loop, live or dry, model."""
    parsed = current_spec(loop)
    return {
        "loop": loop,
        "request": context["request"],
        "csrf_token": context.get("csrf_token"),
        "fields": dialog_fields(parsed) if parsed is not None else None,
        # The team's providers, offered as ``team:NAME`` (any LiteLLM model string works too).
        "providers": list(
            Provider.objects.filter(team_id=loop.team_id).values_list("name", "is_default")
        ),
    }


@register.inclusion_tag("runs/_how_it_starts.html", takes_context=True)
def how_it_starts(context: dict[str, Any], loop: Loop) -> dict[str, Any]:
    """The loop's trigger: webhook URL and set-up, cron in words and next firings, events."""
    parsed = current_spec(loop)
    return {"start": describe(loop, parsed, context["request"]) if parsed is not None else None}


@register.inclusion_tag("runs/_loop_tests.html", takes_context=True)
def loop_tests(context: dict[str, Any], loop: Loop, can_edit: bool) -> dict[str, Any]:
    """The loop's tests (kept runs) and each one's last result, with "Run tests"."""
    tests = list(LoopTest.objects.filter(loop=loop).select_related("source_run"))
    rows = [(t, t.last_result()) for t in tests]
    return {
        "loop": loop,
        "rows": rows,
        "passed": sum(1 for _, r in rows if r is not None and r.passed),
        "can_edit": can_edit,
        "csrf_token": context.get("csrf_token"),
        "request": context["request"],
    }

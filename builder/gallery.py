"""The template gallery of "New loop": the shipped example loops and the team's loops.

Each template is shown with its Loop Readiness Score and a one-line
description; picking one opens the editor on a copy (a new loop, not saved,
named ``<name>-copy``). The team's loops are read through the team's queryset
only, so another team's loop is never offered nor copied.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from django.http import Http404

from builder import services
from builder.models import Loop
from loopkit import examples


@dataclass(frozen=True)
class Template:
    """One card of the gallery: ``source`` is what ``?from=`` names (``example:NAME``, ``loop:ID``)."""

    source: str
    name: str
    description: str
    grade: str
    score: int | None
    steps: int


def one_line(text: str | None, limit: int = 140) -> str:
    """Return the first line of *text*, cut at *limit* characters."""
    line = (text or "").strip().splitlines()[0].strip() if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


@cache
def example_templates() -> tuple[Template, ...]:
    """Return the example loops that validate, scored (once per process: they never change)."""
    out = []
    for name in examples.names():
        checked = services.validate(examples.read(name), file=f"loops/{name}.yaml")
        if checked.loop is None or not checked.ok:
            continue
        report = checked.lrs or {}
        out.append(
            Template(
                source=f"example:{name}",
                name=checked.loop.name,
                description=one_line(checked.loop.description),
                grade=str(report.get("grade", "")),
                score=report.get("score"),
                steps=len(checked.loop.pipeline),
            )
        )
    return tuple(out)


def team_templates(team: Any) -> list[Template]:
    """Return the team's saved loops as templates (their current version's score)."""
    loops = Loop.objects.for_team(team).filter(version__gt=0).order_by("name")
    return [
        Template(
            source=f"loop:{loop.pk}",
            name=loop.name,
            description=one_line(loop.description),
            grade=loop.lrs_grade or "",
            score=loop.lrs_score,
            steps=0,
        )
        for loop in loops
    ]


def _free_name(team: Any, name: str) -> str:
    """Return ``<name>-copy`` (then ``-copy-2``...) that no loop of *team* has."""
    taken = set(Loop.objects.for_team(team).values_list("name", flat=True))
    base = f"{name}-copy"[:100]
    candidate, n = base, 2
    while candidate in taken:
        candidate = f"{base[:95]}-{n}"
        n += 1
    return candidate


def template_yaml(team: Any, source: str) -> str:
    """Return the YAML of a copy of template *source*, renamed so it can be saved in *team*.

    An unknown example, a loop of another team or a malformed source is a 404.
    """
    kind, _, key = source.partition(":")
    if kind == "example":
        try:
            text = examples.read(key)
        except LookupError:
            raise Http404(f"no example loop named {key!r}") from None
    elif kind == "loop" and key.isdigit() and len(key) < 19:
        loop = Loop.objects.for_team(team).filter(pk=int(key), version__gt=0).first()
        if loop is None:
            raise Http404("no such loop in this team")
        text = loop.current().yaml
    else:
        raise Http404("a template is example:NAME or loop:ID")
    checked = services.validate(text)
    data = checked.data
    if data is None:
        return text  # the editor shows its problems
    data = {**data, "name": _free_name(team, str(data.get("name") or "loop"))}
    return services.validate(None, data).yaml or text

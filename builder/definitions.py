"""The connectors, subagents and skills a team has defined, for the editor's pickers.

A team's connectors and subagents are those its loops define (each loop's
``connectors:`` and ``subagents:`` maps, from its current version); its skills
are those ``loopkit.skills`` discovers on the server, in the project at
``settings.LOOPKIT_PROJECT_ROOT`` (default ``BASE_DIR``) and in installed
packages. The editor offers them by name; picking a connector or subagent that
another loop defines copies that definition into the loop being edited, so
every loop stays self-contained.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import F

from builder.models import LoopVersion
from loopkit import yamlio
from loopkit.errors import SpecError

logger = logging.getLogger(__name__)

#: The loop maps shared through the editor.
SHARED_MAPS = ("connectors", "subagents")


def project_root() -> Path:
    return Path(getattr(settings, "LOOPKIT_PROJECT_ROOT", settings.BASE_DIR))


def server_skills() -> list[dict[str, str]]:
    """Return the skills discoverable on the server: name, description, source."""
    from loopkit.project import find_project
    from loopkit.skills import discover

    root = project_root()
    try:
        catalog = find_project(root).skills()
    except SpecError:  # a broken loopkit.yaml: the default skills folder still counts
        catalog = discover(root)
    return [
        {"name": skill.name, "description": skill.description, "source": skill.source}
        for skill in (catalog.skills[name] for name in catalog.names())
    ]


def team_definitions(team: Any, *, skills: bool = True) -> dict[str, Any]:
    """Return the connectors, subagents and skills the team has defined.

    ``{"connectors": {name: {"definition": {...}, "loops": [loop names]}},
    "subagents": {...same...}, "skills": [{"name", "description", "source"}]}``.
    When loops define the same name differently, the first loop by name wins
    and ``variants`` counts the distinct definitions.
    """
    found: dict[str, dict[str, dict[str, Any]]] = {key: {} for key in SHARED_MAPS}
    current = (
        LoopVersion.objects.filter(loop__team=team, number=F("loop__version"))
        .select_related("loop")
        .order_by("loop__name")
    )
    for version in current:
        loop = version.loop
        try:
            data = yamlio.to_data(yamlio.load_loop(version.yaml, check=False))
        except SpecError:  # stored versions are valid; an older schema must not break the page
            logger.warning("loop %s v%s does not load", loop.pk, loop.version)
            continue
        for key in SHARED_MAPS:
            for name, definition in (data.get(key) or {}).items():
                entry = found[key].setdefault(
                    name, {"definition": definition, "loops": [], "_seen": []}
                )
                entry["loops"].append(loop.name)
                if definition not in entry["_seen"]:
                    entry["_seen"].append(definition)
    out: dict[str, Any] = {}
    for key in SHARED_MAPS:
        out[key] = {}
        for name in sorted(found[key]):
            entry = found[key][name]
            out[key][name] = {
                "definition": entry["definition"],
                "loops": entry["loops"],
                "variants": len(entry["_seen"]),
            }
    out["skills"] = server_skills() if skills else []
    return out

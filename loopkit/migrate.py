"""Bring loop and project data written for older LoopKit releases to today's form.

Works on plain data (what YAML or the editor's JSON gives) before validation,
so that the models only know the canonical form. Data of unexpected shape is
left alone for validation to report.

The first release (schema version 1, usually unmarked) wrote:
``trigger.cron`` for the schedule, ``agents:`` for a sequential group,
``skill:`` on an agent step, ``verify.maker`` as a string, ``verify.checker``
as a list, and a project file with ``version: "1"``, ``settings:``
(``defaultBudget``, ``defaultMemory``, ``enforceMakerChecker``) and an inline
``loops:`` map.

``budget.maxIterations`` is not migrated: the first release left its unit
unsaid and its authors read it as passes of the loop, which is what it means
today (``maxModelCalls`` caps model calls).
"""

from __future__ import annotations

from typing import Any

from loopkit.errors import Problem, SpecError
from loopkit.spec import SPEC_VERSION

#: Canonical key → the key the first release used in its place (for error positions).
LEGACY_KEYS = {
    "schedule": "cron",
    "sequential": "agents",
    "skills": "skill",
    "defaults": "settings",
    "budget": "defaultBudget",
    "memory": "defaultMemory",
    "model": "defaultModel",
}


def _version(data: dict[str, Any], kind: str) -> int | None:
    raw = data.get("version")
    if raw is None:
        return None
    try:
        version = int(str(raw).split(".")[0])
    except ValueError:
        raise SpecError(
            [
                Problem(
                    f"'version' must be a whole number, got {raw!r}",
                    path="version",
                    code="invalid_version",
                )
            ]
        ) from None
    if version > SPEC_VERSION:
        raise SpecError(
            [
                Problem(
                    f"this {kind} is schema version {version}, but this LoopKit understands "
                    f"versions up to {SPEC_VERSION}",
                    path="version",
                    code="version_too_new",
                    hint="upgrade LoopKit (pip install -U loopkit) to load it",
                )
            ]
        )
    return version


def migrate_loop(data: Any) -> Any:
    """Return loop data in today's form (a new dict; the input is not changed)."""
    if not isinstance(data, dict):
        return data
    version = _version(data, "loop")
    data = dict(data)
    if version is not None and version < SPEC_VERSION:
        data["version"] = SPEC_VERSION
    trigger = data.get("trigger")
    if isinstance(trigger, dict) and "cron" in trigger and "schedule" not in trigger:
        trigger = {("schedule" if k == "cron" else k): v for k, v in trigger.items()}
        data["trigger"] = trigger
    if isinstance(data.get("pipeline"), list):
        data["pipeline"] = [_migrate_step(s) for s in data["pipeline"]]
    verify = data.get("verify")
    if isinstance(verify, dict) and isinstance(verify.get("maker"), str):
        data["verify"] = {**verify, "maker": [verify["maker"]]}
    return data


def _migrate_step(step: Any) -> Any:
    if not isinstance(step, dict):
        return step
    step = {
        ("sequential" if k == "agents" and "sequential" not in step else k): v
        for k, v in step.items()
    }
    if "skill" in step and "skills" not in step:
        skill = step.pop("skill")
        step = {**step, "skills": [skill] if isinstance(skill, str) else skill}
    for key in ("parallel", "sequential", "then", "else"):
        if isinstance(step.get(key), list):
            step[key] = [_migrate_step(s) for s in step[key]]
    return step


def migrate_project(data: Any) -> Any:
    """Return project data in today's form (a new dict; the input is not changed)."""
    if not isinstance(data, dict):
        return data
    version = _version(data, "project file")
    data = dict(data)
    if version is not None and version < SPEC_VERSION:
        data["version"] = SPEC_VERSION
    settings = data.get("settings")
    if isinstance(settings, dict) and "defaults" not in data:
        data.pop("settings")
        renamed = {"defaultBudget": "budget", "defaultMemory": "memory", "defaultModel": "model"}
        data["defaults"] = {renamed.get(k, k): v for k, v in settings.items()}
    loops = data.get("loops")
    if isinstance(loops, dict):
        data["loops"] = {
            name: migrate_loop(
                {"name": name, **loop} if isinstance(loop, dict) and "name" not in loop else loop
            )
            for name, loop in loops.items()
        }
    return data

"""The change list between two versions of a loop, in the loop's own terms.

Steps are matched by label when they have one (so a labelled step that moved
is reported as moved, not as removed and added) and by path otherwise. Loop
sections (trigger, verify, budget, memory, ...) are compared field by field.
Input is canonical loop data (``loopkit.yamlio.to_data``), so formatting
differences never show up as changes.
"""

from __future__ import annotations

from typing import Any, TypedDict

STEP_GROUP_KEYS = ("parallel", "sequential", "then", "else")
SECTIONS = (
    "name",
    "description",
    "tags",
    "model",
    "trigger",
    "inputs",
    "verify",
    "budget",
    "memory",
    "skills",
    "dryRun",
    "version",
)
NAMED_SECTIONS = ("subagents", "connectors")


class Change(TypedDict):
    """One entry of the change list; ``path`` is the step's path in the newer version."""

    kind: str  # added | removed | changed | moved
    path: str
    summary: str
    section: str  # step | trigger | verify | budget | ... | lrs
    label: str | None
    from_path: str | None


def _kind(step: dict[str, Any]) -> str:
    for key, name in (
        ("parallel", "parallel group"),
        ("sequential", "sequential group"),
        ("when", "conditional"),
        ("approve", "approval step"),
    ):
        if key in step:
            return name
    return "agent step"


def _walk(steps: list[Any], path: str = "pipeline") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for index, step in enumerate(steps):
        here = f"{path}[{index}]"
        if not isinstance(step, dict):
            continue
        out.append((here, step))
        for key in STEP_GROUP_KEYS:
            children = step.get(key)
            if isinstance(children, list):
                out.extend(_walk(children, f"{here}.{key}"))
    return out


def _own(step: dict[str, Any]) -> dict[str, Any]:
    """Return a step's own fields, without its children (they are compared on their own)."""
    return {k: v for k, v in step.items() if k not in STEP_GROUP_KEYS}


def _name(step: dict[str, Any], path: str) -> str:
    label = step.get("label")
    return f"{_kind(step)} '{label}'" if label else f"{_kind(step)} at {path}"


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return repr(text) if "\n" not in text else repr(text.splitlines()[0] + "...")
    if isinstance(value, dict | list):
        return f"{type(value).__name__} of {len(value)}"
    return str(value)


def _field_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    parts: list[str] = []
    for key in list(old) + [k for k in new if k not in old]:
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            parts += _field_changes(a, b, f"{name}.")
        elif key == "prompt" and a is not None and b is not None:
            parts.append("prompt edited")
        else:
            parts.append(f"{name}: {_show(a)} → {_show(b)}")
    return parts


def _change(
    kind: str,
    path: str,
    summary: str,
    section: str = "step",
    label: str | None = None,
    from_path: str | None = None,
) -> Change:
    return {
        "kind": kind,
        "path": path,
        "summary": summary,
        "section": section,
        "label": label,
        "from_path": from_path,
    }


def step_changes(old: list[Any], new: list[Any]) -> list[Change]:
    """Return the steps added, removed, changed and moved between two pipelines."""
    old_steps, new_steps = _walk(old), _walk(new)
    old_by_label = {s["label"]: (p, s) for p, s in old_steps if s.get("label")}
    old_by_path = {p: s for p, s in old_steps if not s.get("label")}
    matched_old: set[str] = set()
    changes: list[Change] = []
    for path, step in new_steps:
        label = step.get("label")
        before: tuple[str, dict[str, Any]] | None = None
        if label and label in old_by_label:
            before = old_by_label[label]
        elif not label and path in old_by_path and _kind(old_by_path[path]) == _kind(step):
            before = (path, old_by_path[path])
        if before is None:
            changes.append(_change("added", path, f"added {_name(step, path)}", label=label))
            continue
        old_path, old_step = before
        matched_old.add(old_path)
        if old_path != path:
            changes.append(
                _change(
                    "moved",
                    path,
                    f"moved {_name(step, path)} from {old_path} to {path}",
                    label=label,
                    from_path=old_path,
                )
            )
        fields = _field_changes(_own(old_step), _own(step))
        if fields:
            changes.append(
                _change(
                    "changed",
                    path,
                    f"changed {_name(step, path)}: {'; '.join(fields)}",
                    label=label,
                    from_path=old_path if old_path != path else None,
                )
            )
    for path, step in old_steps:
        if path not in matched_old:
            changes.append(
                _change("removed", path, f"removed {_name(step, path)}", label=step.get("label"))
            )
    return changes


def section_changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Return the loop-level changes: trigger, verify, budget, memory, subagents, ..."""
    changes: list[Change] = []
    for key in SECTIONS:
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if a is None:
            changes.append(_change("added", key, f"added {key}: {_summary(b)}", key))
        elif b is None:
            changes.append(_change("removed", key, f"removed {key}", key))
        elif isinstance(a, dict) and isinstance(b, dict):
            detail = "; ".join(_field_changes(a, b, f"{key}."))
            changes.append(_change("changed", key, f"changed {detail}", key))
        else:
            changes.append(_change("changed", key, f"changed {key}: {_show(a)} → {_show(b)}", key))
    for key in NAMED_SECTIONS:
        a_map, b_map = old.get(key) or {}, new.get(key) or {}
        for name in list(a_map) + [n for n in b_map if n not in a_map]:
            path = f"{key}[{name!r}]"
            if name not in b_map:
                changes.append(_change("removed", path, f"removed {key[:-1]} '{name}'", key))
            elif name not in a_map:
                changes.append(_change("added", path, f"added {key[:-1]} '{name}'", key))
            elif a_map[name] != b_map[name]:
                detail = "; ".join(_field_changes(a_map[name], b_map[name]))
                changes.append(
                    _change("changed", path, f"changed {key[:-1]} '{name}': {detail}", key)
                )
    return changes


def _summary(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_show(v)}" for k, v in value.items())
    return _show(value)


def lrs_change(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[Change]:
    """Return the LRS before → after entry when the score or grade moved."""
    if not old or not new:
        return []
    if (old.get("score"), old.get("grade")) == (new.get("score"), new.get("grade")):
        return []
    return [
        _change(
            "changed",
            "lrs",
            f"LRS {old.get('score')} ({old.get('grade')}) → {new.get('score')} ({new.get('grade')})",
            "lrs",
        )
    ]


def loop_changes(
    old: dict[str, Any],
    new: dict[str, Any],
    lrs_old: dict[str, Any] | None = None,
    lrs_new: dict[str, Any] | None = None,
) -> list[Change]:
    """Return the whole change list from ``old`` to ``new`` (canonical loop data)."""
    return [
        *section_changes(old, new),
        *step_changes(old.get("pipeline") or [], new.get("pipeline") or []),
        *lrs_change(lrs_old, lrs_new),
    ]

"""The change list between two versions of a loop, in the loop's own terms.

Steps are matched by label when they have one (so a labelled step that moved
is reported as moved, not as removed and added) and by path otherwise. Loop
sections (trigger, verify, budget, memory, ...) are compared field by field.
Input is canonical loop data (``loopkit.yamlio.to_data``), so formatting
differences never show up as changes.
"""

from __future__ import annotations

import difflib
import json
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
        ("tool", "tool step"),
    ):
        if key in step:
            return name
    return "agent step"


class _Node(TypedDict):
    path: str
    step: dict[str, Any]
    ident: str  # the label, else the step's content signature (n-th of its kind)
    parent: str  # the ident of the group holding it ("" at the top level)
    key: str  # the step list: "pipeline" (or "onPass", "onFail"), "parallel", ..., "else"


#: The top-level step lists: the pipeline, then the actions after verification.
STEP_LISTS = ("pipeline", "onPass", "onFail")


def _signature(step: dict[str, Any]) -> str:
    children = [
        c.get("label") or _kind(c)
        for key in STEP_GROUP_KEYS
        for c in step.get(key) or []
        if isinstance(c, dict)
    ]
    return json.dumps([_kind(step), _own(step), children], sort_keys=True, default=str)


def _walk(steps: list[Any], top: str = "pipeline") -> list[_Node]:
    out: list[_Node] = []
    seen: dict[str, int] = {}

    def visit(items: list[Any], path: str, parent: str, key: str) -> None:
        for index, step in enumerate(items):
            here = f"{path}[{index}]"
            if not isinstance(step, dict):
                continue
            if step.get("label"):
                ident = f"label:{step['label']}"
            else:
                signature = _signature(step)
                seen[signature] = seen.get(signature, 0) + 1
                ident = f"{signature}#{seen[signature]}"
            out.append({"path": here, "step": step, "ident": ident, "parent": parent, "key": key})
            for child_key in STEP_GROUP_KEYS:
                children = step.get(child_key)
                if isinstance(children, list):
                    visit(children, f"{here}.{child_key}", ident, child_key)

    visit(steps, top, "", top)
    return out


def _match(old_nodes: list[_Node], new_nodes: list[_Node]) -> list[tuple[_Node, _Node]]:
    """Pair old and new steps: by label or identical content, then unlabelled ones by path."""
    old_by_ident = {n["ident"]: n for n in old_nodes}
    pairs: dict[str, tuple[_Node, _Node]] = {}
    for node in new_nodes:
        before = old_by_ident.get(node["ident"])
        if before is not None and _kind(before["step"]) == _kind(node["step"]):
            pairs[node["ident"]] = (before, node)
    used = {old["ident"] for old, _ in pairs.values()}
    old_by_path = {
        n["path"]: n for n in old_nodes if n["ident"] not in used and not n["step"].get("label")
    }
    for node in new_nodes:
        if node["ident"] in pairs or node["step"].get("label"):
            continue
        before = old_by_path.get(node["path"])
        if before is not None and _kind(before["step"]) == _kind(node["step"]):
            pairs[node["ident"]] = (before, node)  # an unlabelled step edited in place
            del old_by_path[node["path"]]
    order = {n["ident"]: i for i, n in enumerate(new_nodes)}
    return sorted(pairs.values(), key=lambda pair: order[pair[1]["ident"]])


def _moved(pairs: list[tuple[_Node, _Node]]) -> set[str]:
    """Return the idents (new) of matched steps that moved.

    A step moved when its group changed, or when its order among the matched
    steps of its group changed (outside their longest common subsequence):
    inserting a step above others does not move them.
    """
    renamed = {old["ident"]: new["ident"] for old, new in pairs}

    def where(node: _Node, *, old: bool) -> tuple[str, str]:
        parent = renamed.get(node["parent"], f"old:{node['parent']}") if old else node["parent"]
        return (parent if node["parent"] else "", node["key"])

    moved = {new["ident"] for old, new in pairs if where(old, old=True) != where(new, old=False)}
    stayed: dict[tuple[str, str], list[tuple[_Node, _Node]]] = {}
    for old, new in pairs:
        if new["ident"] not in moved:
            stayed.setdefault(where(new, old=False), []).append((old, new))
    for members in stayed.values():
        new_order = [new["ident"] for _, new in members]
        old_order = [new["ident"] for _, new in sorted(members, key=lambda m: _index(m[0]["path"]))]
        matcher = difflib.SequenceMatcher(None, old_order, new_order, autojunk=False)
        kept = {
            new_order[block.b + k]
            for block in matcher.get_matching_blocks()
            for k in range(block.size)
        }
        moved.update(ident for ident in new_order if ident not in kept)
    return moved


def _index(path: str) -> int:
    return int(path.rsplit("[", 1)[1].rstrip("]"))


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


def step_changes(old: list[Any], new: list[Any], top: str = "pipeline") -> list[Change]:
    """Return the steps added, removed, changed and moved between two step lists
    (``top``: the pipeline, ``onPass`` or ``onFail``)."""
    old_nodes, new_nodes = _walk(old, top), _walk(new, top)
    pairs = _match(old_nodes, new_nodes)
    moved = _moved(pairs)
    matched = {new["ident"]: old for old, new in pairs}
    changes: list[Change] = []
    for node in new_nodes:
        path, step, label = node["path"], node["step"], node["step"].get("label")
        before = matched.get(node["ident"])
        if before is None:
            changes.append(_change("added", path, f"added {_name(step, path)}", label=label))
            continue
        old_path = before["path"]
        if node["ident"] in moved:
            changes.append(
                _change(
                    "moved",
                    path,
                    f"moved {_name(step, path)} from {old_path} to {path}",
                    label=label,
                    from_path=old_path,
                )
            )
        fields = _field_changes(_own(before["step"]), _own(step))
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
    kept = {old["ident"] for old, _ in pairs}
    for node in old_nodes:
        if node["ident"] not in kept:
            step = node["step"]
            changes.append(
                _change(
                    "removed",
                    node["path"],
                    f"removed {_name(step, node['path'])}",
                    label=step.get("label"),
                )
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
        *(
            change
            for top in STEP_LISTS
            for change in step_changes(old.get(top) or [], new.get(top) or [], top)
        ),
        *lrs_change(lrs_old, lrs_new),
    ]

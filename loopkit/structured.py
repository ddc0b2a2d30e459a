"""Structured output: find the JSON in a model's answer, check it against a JSON Schema,
and make a minimal instance of a schema (the dry run's answer).

A model asked for JSON often wraps it in a code fence or a sentence; ``find_json``
tolerates both (one JSON value: the whole text, a fenced block, or the text from
the first ``{``/``[`` to the last ``}``/``]``). Validation uses the ``jsonschema``
library, imported on the first schema checked (``loopkit validate`` never needs it).
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)

#: How many validation errors an answer's description names (the model fixes them all).
MAX_ERRORS = 3


class NotJson(ValueError):
    """The answer holds no JSON value."""


class BadSchema(ValueError):
    """The schema itself is not a valid JSON Schema (the loop author's mistake)."""


def find_json(text: str) -> Any:
    """Return the one JSON value in ``text``; raise ``NotJson`` when there is none."""
    text = (text or "").strip()
    candidates = [text]
    fenced = _FENCE.search(text)
    if fenced:
        candidates.insert(0, fenced.group(1).strip())
    for opening, closing in ("{}", "[]"):
        start, end = text.find(opening), text.rfind(closing)
        if 0 <= start < end:
            candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    raise NotJson(text)


def json_object(text: str) -> Any:
    """Return the JSON value in ``text``, or ``None`` when there is none (never raise)."""
    try:
        return find_json(text)
    except NotJson:
        return None


_VALIDATORS: dict[str, Any] = {}


def _validator(schema: dict[str, Any]) -> Any:
    key = json.dumps(schema, sort_keys=True)
    found = _VALIDATORS.get(key)
    if found is None:
        from jsonschema.exceptions import SchemaError
        from jsonschema.validators import validator_for

        cls = validator_for(schema)
        try:
            cls.check_schema(schema)
        except SchemaError as exc:
            raise BadSchema(f"{error_path(exc.absolute_path)}: {exc.message}") from None
        found = _VALIDATORS[key] = cls(schema)
    return found


def validator(schema: dict[str, Any]) -> Any:
    """Return the (cached) validator of ``schema``; raise ``BadSchema`` when it is invalid."""
    return _validator(schema)


def error_path(path: Any) -> str:
    """Return a JSON path (``$.items[0].name``) for a validation error's ``absolute_path``."""
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def check(text: str, schema: dict[str, Any]) -> tuple[Any, str | None]:
    """Parse ``text`` and validate it against ``schema``.

    Return ``(value, None)`` for a valid answer, else ``(None, problem)``, the
    problem in words a model can act on ("$.severity: 'urgent' is not one of
    ['low', 'high']"). Raise ``BadSchema`` when the schema itself is invalid
    (the loop author's mistake, not the model's).
    """
    validator = _validator(schema)
    try:
        value = find_json(text)
    except NotJson:
        snippet = (text or "").strip().replace("\n", " ")
        shown = snippet[:80] + ("..." if len(snippet) > 80 else "")
        return None, f"the answer is not JSON (it reads {shown!r})"
    errors = sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return value, None
    described = [f"{error_path(e.absolute_path)}: {e.message}" for e in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        described.append(f"({len(errors) - MAX_ERRORS} more)")
    return None, "; ".join(described)


def minimal_instance(schema: Any, root: Any = None) -> Any:
    """Return a small value that validates against ``schema`` (the dry run's answer).

    Covers what output schemas use: ``const``, ``enum`` (its first value),
    ``type`` (the first listed), objects with their required properties,
    arrays with ``minItems`` items, string/number bounds, ``$ref`` into
    ``$defs``/``definitions``, and ``anyOf``/``oneOf``/``allOf`` (the first
    choice; ``allOf``'s parts merged).
    """
    root = schema if root is None else root
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return minimal_instance(target, root)
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return minimal_instance(schema[key][0], root)
    if schema.get("allOf"):
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            if isinstance(part, dict):
                merged["required"] = [*merged.get("required", []), *part.get("required", [])]
                merged["properties"] = {
                    **merged.get("properties", {}),
                    **part.get("properties", {}),
                }
                merged.update({k: v for k, v in part.items() if k not in merged})
        return minimal_instance(merged, root)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), kind[0] if kind else None)
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        properties = schema.get("properties") or {}
        return {
            name: minimal_instance(properties.get(name, {}), root)
            for name in schema.get("required", [])
        }
    if kind == "array":
        items = schema.get("items", {})
        return [minimal_instance(items, root) for _ in range(int(schema.get("minItems", 0)))]
    if kind == "string":
        return "x" * int(schema.get("minLength", 0))
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        value: int | float = 0
        if isinstance(low, int | float) and not isinstance(low, bool):
            value = low + (1 if "minimum" not in schema else 0)
        if kind == "integer":
            value = int(value) if value == int(value) else int(value) + 1
        return value
    if kind == "boolean":
        return False
    return None

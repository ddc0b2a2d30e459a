"""What a run is started with: its loop (valid, or refused with the reasons) and its inputs.

Every way to start a run (the API, the pages, the triggers) goes through
``runs.lifecycle.start_run``, which uses these, so each rule lives in one place.
"""

from __future__ import annotations

import json
from typing import Any

from loopkit import spec
from loopkit.document import analyze
from loopkit_web.errors import Invalid


class RunRefused(Invalid):
    """A run cannot be started as asked; the message says why and how to fix it.

    422 unless raised with another ``status=`` (409 for a state clash, 403 for a role).
    """


def parse_loop(text: str, name: str = "loop") -> spec.Loop:
    """Return the loop of a stored YAML text, or raise RunRefused with its problems."""
    analysis = analyze(text, file=f"{name}.yaml")
    if analysis.loop is None or not analysis.ok:
        problems = "\n".join(str(p) for p in analysis.problems)
        raise RunRefused(f"the loop '{name}' is invalid and cannot run: {problems}")
    return analysis.loop


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}
_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
}


def _typed(kind: str, value: Any) -> Any:
    """Return *value* as *kind*, converting a form's text ("5", "on"); raise ValueError."""
    if kind == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise ValueError
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower() if isinstance(value, str | int) else None
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise ValueError
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError
    if isinstance(value, str):
        text = value.strip()
        number: int | float = (
            int(text) if kind == "integer" or text.lstrip("+-").isdigit() else float(text)
        )
    else:
        number = value
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError
    if kind == "integer":
        if isinstance(number, float) and not number.is_integer():
            raise ValueError
        return int(number)
    return number


def coerce_inputs(loop: spec.Loop, given: dict[str, Any]) -> dict[str, Any]:
    """Return *given* with each typed input converted to its declared type.

    A form sends text: "5" for an integer input becomes 5, "on" for a boolean
    True, and an empty text for a number or boolean is no value (its default
    applies). A value that does not convert is refused with the input's name,
    in the message and in ``details`` (``loc``: body, inputs, name).
    """
    out: dict[str, Any] = {}
    for name, value in given.items():
        declared = loop.inputs.get(name)
        kind = declared.type if declared is not None else None
        if kind is None:
            out[name] = value
            continue
        if kind != "string" and isinstance(value, str) and not value.strip():
            continue
        try:
            out[name] = _typed(kind, value)
        except (ValueError, OverflowError):
            message = f"input '{name}' must be {_TYPE_WORDS[kind]}, not {json.dumps(value)}"
            raise RunRefused(
                message,
                details=[{"loc": ["body", "inputs", name], "msg": message, "type": "input_type"}],
            ) from None
    return out


def resolve_inputs(loop: spec.Loop, given: dict[str, Any]) -> dict[str, Any]:
    """Return *given* completed with the loop's input defaults; refuse unknown or missing ones."""
    unknown = sorted(set(given) - set(loop.inputs))
    if unknown:
        known = ", ".join(sorted(loop.inputs)) or "none"
        raise RunRefused(f"unknown input(s) {', '.join(unknown)} (this loop's inputs: {known})")
    values = dict(given)
    missing = []
    for name, declared in loop.inputs.items():
        if name in values:
            continue
        if declared.default is not None:
            values[name] = declared.default
        elif declared.required:
            missing.append(name)
    if missing:
        raise RunRefused(f"missing required input(s): {', '.join(missing)}")
    return values

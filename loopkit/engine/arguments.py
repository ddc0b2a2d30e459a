"""Arguments of tool calls the engine makes itself (tool steps, tool checks).

Rendered against the run's context in the Jinja2 sandbox, into JSON data.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from jinja2 import TemplateError, Undefined

from loopkit.engine.agent import render
from loopkit.errors import RunError
from loopkit.templating import TemplateLimitError, compile_condition

if TYPE_CHECKING:
    from loopkit.engine.runner import Run


_SINGLE = re.compile(r"\s*\{\{-?(.*?)-?\}\}\s*", re.S)


def render_value(run: Run, value: Any, where: str) -> Any:
    """Render the text values of *value* (at any depth) in the sandbox into JSON data.

    A string that is one ``{{ expression }}`` keeps the expression's type (``{{
    inputs.pr }}`` stays the number 42); other text renders as text.
    """
    if isinstance(value, str):
        return _render_text(run, value, where)
    if isinstance(value, dict):
        return {k: render_value(run, v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(run, v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _render_text(run: Run, source: str, where: str) -> Any:
    """Render one string: one ``{{ expression }}`` keeps its value's type, else text."""
    match = _SINGLE.fullmatch(source)
    inner = match.group(1) if match else ""
    if not match or any(mark in inner for mark in ("{{", "}}", "{%", "%}", "{#")):
        return render(run, source, where, "argument")
    try:
        value = compile_condition(inner.strip())(**run.ctx.variables)
        if isinstance(value, Undefined):
            str(value)  # raises the undefined name's error
    except TemplateLimitError as exc:
        raise RunError(
            f"{where}: the argument template {exc.message}", step=where, code="template_limit"
        ) from None
    except (TemplateError, ArithmeticError, RecursionError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        raise RunError(
            f"{where}: the argument template failed: {message}", step=where, code="template_error"
        ) from None
    # Plain JSON data (a dry run's placeholders as the text they render as).
    return json.loads(json.dumps(value, default=str))

"""Prompt templates and ``when:`` conditions, in Jinja2's sandboxed environment.

There is no home-made expression language: a condition is a Jinja2 expression
(``steps['Bug Review'].output | length > 0``) and a prompt is a Jinja2
template, both evaluated in a sandbox that refuses access to Python internals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "TemplateSyntaxError",
    "check_condition",
    "check_prompt",
    "compile_condition",
    "compile_prompt",
    "environment",
]


#: What ``getattr(some_dict, name)`` can find: for any other name, ``d.name`` is ``d["name"]``.
_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with ``mapping.key`` on a plain dict looked up without an exception.

    Jinja tries ``getattr(obj, name)`` first and falls back to ``obj[name]``;
    for a plain dict and a name that is not one of dict's own attributes the
    first try always fails, so going straight to the item gives the same result
    (prompts read ``inputs.x``, ``loop.name`` and ``trigger.payload...`` a lot).
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    """Return the one sandboxed environment every template and condition uses."""
    return _Sandbox(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )


@lru_cache(maxsize=4096)
def compile_condition(expression: str) -> Callable[..., Any]:
    """Compile a ``when:`` expression; raise ``TemplateSyntaxError`` if it is not valid."""
    return environment().compile_expression(expression, undefined_to_none=False)


@lru_cache(maxsize=4096)
def _compile_template(source: str) -> Any:
    return environment().from_string(source)


def compile_prompt(source: str) -> Callable[[Mapping[str, Any]], str]:
    """Compile a prompt template; the result renders a context mapping to text."""
    template = _compile_template(source)
    return lambda context: str(template.render(context))


@lru_cache(maxsize=8192)
def check_prompt(source: str) -> None:
    """Raise ``TemplateSyntaxError`` unless ``source`` is a valid prompt template.

    Parses without generating code (several times cheaper than compiling, which
    matters to ``loopkit validate``), then checks filter and test names as the
    compiler would. Valid sources are remembered: the editor re-validates the
    same prompts on every keystroke.
    """
    if "{" not in source:  # no Jinja syntax at all (line statements are off): plain text
        return
    env = environment()
    _check_names(env.parse(source))


@lru_cache(maxsize=8192)
def check_condition(expression: str) -> None:
    """Raise ``TemplateSyntaxError`` unless ``expression`` is a valid ``when:`` expression."""
    from jinja2 import nodes
    from jinja2.parser import Parser

    env = environment()
    parser = Parser(env, expression, state="variable")
    expr = parser.parse_expression()
    if not parser.stream.eos:
        raise TemplateSyntaxError("chunk after expression", parser.stream.current.lineno)
    expr.set_environment(env)
    _check_names(nodes.Template([nodes.Output([expr])]))


def _check_names(tree: Any) -> None:
    from jinja2 import nodes
    from jinja2.exceptions import TemplateAssertionError

    env = environment()
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        known = env.filters if isinstance(node, nodes.Filter) else env.tests
        kind = "filter" if isinstance(node, nodes.Filter) else "test"
        if node.name not in known:
            raise TemplateAssertionError(f"No {kind} named '{node.name}'.", node.lineno)

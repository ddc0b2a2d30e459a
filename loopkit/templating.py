"""Prompt templates and ``when:`` conditions, in Jinja2's sandboxed environment.

There is no home-made expression language: a condition is a Jinja2 expression
(``steps['Bug Review'].output | length > 0``) and a prompt is a Jinja2
template, both evaluated in a sandbox that refuses access to Python internals.

Rendering is bounded (``render_bounded``): a rendered template holds at most
``MAX_RENDER_CHARS`` characters and takes at most ``MAX_RENDER_SECONDS``.
The size of a value that ``*``, ``**``, ``%``, ``+``, ``~``, ``join``,
``center``, ``indent``, ``format`` or a string method would build is checked
before it is built; loops, ``range``, calls and each output chunk check the
deadline. Going past either limit raises ``TemplateLimitError``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateRuntimeError, TemplateSyntaxError, nodes
from jinja2.filters import do_center, do_indent, make_attrgetter, sync_do_join
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range
from jinja2.utils import generate_lorem_ipsum, pass_eval_context
from jinja2.visitor import NodeTransformer

__all__ = [
    "MAX_RENDER_CHARS",
    "MAX_RENDER_SECONDS",
    "TemplateLimitError",
    "TemplateSyntaxError",
    "check_condition",
    "check_prompt",
    "compile_condition",
    "compile_prompt",
    "environment",
    "render_bounded",
]

#: The most characters a rendered template (or one value it builds) may hold: 1 MB of text.
MAX_RENDER_CHARS = 1_000_000
#: The longest a template may take to render, in seconds.
MAX_RENDER_SECONDS = 2.0
#: Integers a template builds stay printable (Python refuses to print past 4,300 digits).
_MAX_INT_BITS = 13_000
#: The most paragraphs ``lipsum()`` may make.
_MAX_LIPSUM = 100


class TemplateLimitError(TemplateRuntimeError):
    """A template went past ``MAX_RENDER_CHARS`` or ``MAX_RENDER_SECONDS`` while rendering."""


#: When the render in progress must stop (``time.monotonic()``), or None outside a bounded render.
_DEADLINE: ContextVar[float | None] = ContextVar("loopkit_render_deadline", default=None)


def _check_deadline() -> None:
    deadline = _DEADLINE.get()
    if deadline is not None and time.monotonic() > deadline:
        raise TemplateLimitError(
            f"took more than {MAX_RENDER_SECONDS:g} s to render "
            f"(templates are limited to {MAX_RENDER_SECONDS:g} s)"
        )


def _too_big(size: int, what: str) -> TemplateLimitError:
    return TemplateLimitError(
        f"would build a value of {size:,} characters (with {what}); "
        f"values are limited to {MAX_RENDER_CHARS:,}"
    )


def _check_size(size: int, what: str) -> None:
    if size > MAX_RENDER_CHARS:
        raise _too_big(size, what)


def _checked(items: Iterator[Any]) -> Iterator[Any]:
    """Yield ``items``, checking the render's deadline every 256 of them."""
    for index, item in enumerate(items):
        if not index & 255:
            _check_deadline()
        yield item


def _bounded_iter(value: Any) -> Any:
    """The iterable of a ``{% for %}``: checked against the deadline as it is iterated."""
    if _DEADLINE.get() is None or isinstance(value, _Range):
        return value
    try:
        return _checked(iter(value))
    except TypeError:
        return value  # not iterable: let the loop report it as it would


class _Range:
    """``range()`` in templates: the sandbox's (at most 100,000 items), iterated against the deadline."""

    __slots__ = ("_range",)

    def __init__(self, *args: int) -> None:
        self._range = safe_range(*args)

    def __iter__(self) -> Iterator[int]:
        return _checked(iter(self._range)) if _DEADLINE.get() is not None else iter(self._range)

    def __reversed__(self) -> Iterator[int]:
        return _checked(reversed(self._range))

    def __len__(self) -> int:
        return len(self._range)

    def __contains__(self, item: object) -> bool:
        return item in self._range

    def __getitem__(self, index: Any) -> Any:
        return self._range[index]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._range, name)

    def __repr__(self) -> str:
        return repr(self._range)


def _lipsum(n: int = 5, *args: Any, **kwargs: Any) -> str:
    if not isinstance(n, int) or n > _MAX_LIPSUM:
        raise TemplateLimitError(f"lipsum() makes at most {_MAX_LIPSUM} paragraphs")
    return str(generate_lorem_ipsum(n, *args, **kwargs))


_WIDTH = re.compile(r"%[-#0 +]*(\d+)|%[-#0 +]*\d*\.(\d+)|\{[^{}]*?:[^{}]*?(\d+)[^{}]*\}")


def _check_format(text: str) -> None:
    """Refuse a printf- or format-style field wider than a template value may be."""
    if "%" not in text and "{" not in text:
        return
    for match in _WIDTH.finditer(text):
        width = int(next(g for g in match.groups() if g is not None))
        _check_size(width, "a format field")


def _width_of(value: Any) -> int:
    return value if isinstance(value, int) else len(value) if isinstance(value, str) else 0


def _center(value: Any, width: int = 80) -> str:
    _check_size(_width_of(width), "center")
    return do_center(value, width)


def _indent(value: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    text = str(value)
    _check_size(len(text) + _width_of(width) * (text.count("\n") + 1), "indent")
    return do_indent(value, width, first, blank)


@pass_eval_context
def _join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    if eval_ctx.autoescape:
        return sync_do_join(eval_ctx, value, d, attribute)
    if attribute is not None:
        value = map(make_attrgetter(eval_ctx.environment, attribute), value)
    parts = [str(item) for item in value]
    separator = str(d)
    if len(parts) > 1 or (parts and len(parts[0]) > MAX_RENDER_CHARS):
        _check_size(sum(map(len, parts)) + len(separator) * (len(parts) - 1), "join")
    return separator.join(parts)


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    _check_format(str(value))
    return str(str(value) % (kwargs or args))


def _concat(values: list[Any]) -> str:
    parts = [str(v) for v in values]
    _check_size(sum(len(p) for p in parts), "~")
    return "".join(parts)


def _sized(value: Any) -> int | None:
    return len(value) if isinstance(value, str | list | tuple) else None


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would pass the limits, before computing it."""
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            size = _sized(seq)
            if size is not None and isinstance(times, int):
                _check_size(size * times, "*")
        ints = isinstance(left, int) and isinstance(right, int)
        if ints and left.bit_length() + right.bit_length() > _MAX_INT_BITS:
            raise TemplateLimitError("would build an integer of more than 4,000 digits")
    elif operator == "**":
        ints = isinstance(left, int) and isinstance(right, int)
        if ints and right > 0 and abs(left) > 1 and right * left.bit_length() > _MAX_INT_BITS:
            raise TemplateLimitError("would build an integer of more than 4,000 digits")
    elif operator == "+":
        a, b = _sized(left), _sized(right)
        if a is not None and b is not None:
            _check_size(a + b, "+")
    elif operator == "%" and isinstance(left, str):
        _check_format(left)


_GROWING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "replace", "expandtabs", "join"})


def _check_str_call(text: str, name: str, args: tuple[Any, ...]) -> None:
    if name in ("center", "ljust", "rjust", "zfill") and args:
        _check_size(_width_of(args[0]), name)
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str):
        old, new = args[0], str(args[1])
        count = text.count(old) if old else len(text) + 1
        _check_size(len(text) + count * max(len(new) - len(old), 0), "replace")
    elif name == "expandtabs" and args and isinstance(args[0], int):
        _check_size(len(text) + text.count("\t") * args[0], "expandtabs")
    elif name == "join" and args:
        items = [str(item) for item in args[0]]
        _check_size(sum(len(item) for item in items) + len(text) * len(items), "join")


class _Bounds(NodeTransformer):
    """Compile-time rewrites that make loops and ``~`` check the render's limits."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, "loopkit_bounded", [], [], None, None)
        node.iter.lineno = node.lineno
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        out = nodes.Filter(nodes.List(node.nodes), "loopkit_concat", [], [], None, None)
        out.set_lineno(node.lineno)
        return out


#: What ``getattr(some_dict, name)`` can find: for any other name, ``d.name`` is ``d["name"]``.
_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with ``mapping.key`` on a plain dict looked up without an exception.

    Jinja tries ``getattr(obj, name)`` first and falls back to ``obj[name]``;
    for a plain dict and a name that is not one of dict's own attributes the
    first try always fails, so going straight to the item gives the same result
    (prompts read ``inputs.x``, ``loop.name`` and ``trigger.payload...`` a lot).

    It also keeps renders bounded (see the module's docstring).
    """

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = _Range
        self.globals["lipsum"] = _lipsum
        self.filters.update(
            {
                "center": _center,
                "indent": _indent,
                "join": _join,
                "format": _format,
                "loopkit_bounded": _bounded_iter,
                "loopkit_concat": _concat,
            }
        )

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_binop(operator, left, right)
        return self.binop_table[operator](left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _check_deadline()
        owner = getattr(__obj, "__self__", None)
        if type(owner) is str and getattr(__obj, "__name__", "") in _GROWING_METHODS:
            _check_str_call(owner, __obj.__name__, args)
        return super().call(__context, __obj, *args, **kwargs)

    def _generate(
        self,
        source: nodes.Template,
        name: str | None,
        filename: str | None,
        defer_init: bool = False,
    ) -> str:
        _Bounds().visit(source)
        return super()._generate(source, name, filename, defer_init)

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
    """Compile a ``when:`` expression; raise ``TemplateSyntaxError`` if it is not valid.

    The result evaluates it within ``MAX_RENDER_SECONDS`` (``TemplateLimitError``).
    """
    compiled = environment().compile_expression(expression, undefined_to_none=False)

    def evaluate(**variables: Any) -> Any:
        token = _DEADLINE.set(time.monotonic() + MAX_RENDER_SECONDS)
        try:
            return compiled(**variables)
        finally:
            _DEADLINE.reset(token)

    return evaluate


@lru_cache(maxsize=4096)
def _compile_template(source: str) -> Any:
    return environment().from_string(source)


def compile_prompt(source: str) -> Callable[[Mapping[str, Any]], str]:
    """Compile a prompt template; the result renders a context mapping to text (bounded)."""
    template = _compile_template(source)
    return lambda context: render_bounded(template.root_render_func(template.new_context(context)))


def render_bounded(chunks: Iterator[str]) -> str:
    """Join a template's output, within ``MAX_RENDER_CHARS`` and ``MAX_RENDER_SECONDS``.

    ``chunks`` is a compiled template's ``root_render_func(context)``: the
    deadline is set before its first chunk is made. Raise ``TemplateLimitError``.
    """
    token = _DEADLINE.set(time.monotonic() + MAX_RENDER_SECONDS)
    parts: list[str] = []
    append = parts.append
    size = 0
    try:
        for chunk in chunks:
            size += len(chunk)
            if size > MAX_RENDER_CHARS:
                raise TemplateLimitError(
                    f"rendered more than {MAX_RENDER_CHARS:,} characters "
                    f"(templates are limited to {MAX_RENDER_CHARS:,})"
                )
            append(chunk)
    finally:
        _DEADLINE.reset(token)
    return "".join(parts)


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

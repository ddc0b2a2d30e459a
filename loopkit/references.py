"""What a template reads: the chains of lookups in its Jinja2 syntax tree.

Each name a template reads is a chain: ``steps['Triage'].output.severity``
is the root ``steps`` and the keys ``('Triage', 'output', 'severity')``; a key
only the run knows (a variable, a slice) ends the chain as ``None``. With each
key goes whether its lookup is guarded, i.e. may find nothing without an error:

- the last lookup of a chain is guarded by ``| default(...)`` (or ``| d``), by
  an ``is defined`` / ``is undefined`` test, or by ``.get(key)``;
- inside ``{% if X is defined %}`` (or ``'k' in X``), after ``X is defined
  and``, and in the true branch of ``a if X is defined else b``, every lookup
  of the chain ``X`` is known to succeed.

Only the last lookup is guarded: ``steps['X'].output | default('')`` still
fails when step X did not run. The template's own names (``set``, ``for``
targets, macros and their arguments, ``loop`` inside a ``for``) are not read
from the run context and are left out. ``loopkit.template_context`` checks the
chains against what the run context holds when the template renders.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from jinja2 import nodes

from loopkit.templating import TemplateSyntaxError, environment

Key = str | int | None  # None: a key only the run knows (a variable, a slice)

#: Jinja2 names a macro body sees.
_MACRO_NAMES = frozenset({"caller", "varargs", "kwargs"})


@dataclass(frozen=True)
class Ref:
    """One chain a template reads: ``root`` then ``keys``, and which lookups are guarded."""

    root: str
    keys: tuple[Key, ...]
    #: ``guarded[i]`` is True when the lookup of ``keys[i]`` may fail without an error.
    guarded: tuple[bool, ...]
    line: int

    @property
    def text(self) -> str:
        out = self.root
        for key in self.keys:
            if key is None:
                break
            if isinstance(key, str) and key.isidentifier():
                out += f".{key}"
            else:
                out += f"[{key!r}]"
        return out


# ── Reading a template ───────────────────────────────────────────────────


@lru_cache(maxsize=8192)
def prompt_refs(source: str) -> tuple[Ref, ...]:
    """Return what a prompt template reads; raise ``TemplateSyntaxError`` if it is not valid.

    Parses once and checks filter and test names as ``templating.check_prompt``
    does, so a caller that needs both pays for one parse.
    """
    if "{" not in source:
        return ()
    return _References(environment().parse(source)).refs()


@lru_cache(maxsize=8192)
def condition_refs(expression: str) -> tuple[Ref, ...]:
    """Return what a ``when:`` expression reads; raise ``TemplateSyntaxError`` if not valid."""
    from jinja2.parser import Parser

    env = environment()
    parser = Parser(env, expression, state="variable")
    expr = parser.parse_expression()
    if not parser.stream.eos:
        raise TemplateSyntaxError("chunk after expression", parser.stream.current.lineno)
    expr.set_environment(env)
    return _References(nodes.Template([nodes.Output([expr])])).refs()


@lru_cache(maxsize=4096)
def proved_steps(expression: str) -> frozenset[str]:
    """Return the step names a true ``when:`` expression proves to have run
    (``steps['Fix'] is defined and ...``): the ``then`` branch reads them unguarded.
    An expression that does not parse proves nothing."""
    import ast

    from jinja2.parser import Parser

    try:
        parser = Parser(environment(), expression, state="variable")
        expr = parser.parse_expression()
    except TemplateSyntaxError:
        return frozenset()
    names = set()
    for chain in _defined(expr):
        if len(chain) >= 2 and chain[0] == "steps":
            key = ast.literal_eval(chain[1])
            if isinstance(key, str):
                names.add(key)
    return frozenset(names)


def clear_caches() -> None:
    """Forget every template read (for benchmarks that measure a cold server)."""
    prompt_refs.cache_clear()
    condition_refs.cache_clear()
    proved_steps.cache_clear()


Chain = tuple[str, ...]  # a guard: the root, then constant keys (as str or repr)


class _References:
    """Collect the chains of one parsed template (see the module's docstring).

    One pass over the tree also does what ``templating.check_prompt`` does
    (refuse an unknown filter or test name, as the compiler would) and
    collects the template's own variables (``set``, ``for`` targets, macro
    arguments), whose chains are dropped at the end.
    """

    def __init__(self, tree: nodes.Template) -> None:
        self.tree = tree
        self.local: set[str] = set()
        self.out: list[Ref] = []
        env = environment()
        self.filters, self.tests = env.filters, env.tests

    def refs(self) -> tuple[Ref, ...]:
        self.walk_all(self.tree.body, frozenset(), in_for=False, in_macro=False)
        return tuple(ref for ref in self.out if ref.root not in self.local)

    def walk(
        self, node: nodes.Node, guards: frozenset[Chain], *, in_for: bool, in_macro: bool
    ) -> None:
        if isinstance(node, nodes.TemplateData | nodes.Const):
            return
        if isinstance(node, nodes.Output):
            self.walk_all(node.nodes, guards, in_for=in_for, in_macro=in_macro)
            return
        if isinstance(node, nodes.Name | nodes.Getattr | nodes.Getitem):
            self.chain(node, guards, last_guarded=False, in_for=in_for, in_macro=in_macro)
            return
        if isinstance(node, nodes.Filter | nodes.Test):
            self.check_name(node)
            if node.name in ("default", "d", "defined", "undefined") and node.node is not None:
                self.chain(node.node, guards, last_guarded=True, in_for=in_for, in_macro=in_macro)
                self.walk_all(_arguments(node), guards, in_for=in_for, in_macro=in_macro)
                return
        elif isinstance(node, nodes.Call) and _is_get(node):
            target = node.node
            base, key = target.node, _const_key(node.args[0])  # type: ignore[attr-defined]
            self.chain(
                base, guards, last_guarded=False, in_for=in_for, in_macro=in_macro, extra=(key,)
            )
            self.walk_all(_arguments(node), guards, in_for=in_for, in_macro=in_macro)
            return
        elif isinstance(node, nodes.And):
            self.walk(node.left, guards, in_for=in_for, in_macro=in_macro)
            inner = guards | _defined(node.left)
            self.walk(node.right, inner, in_for=in_for, in_macro=in_macro)
            return
        elif isinstance(node, nodes.CondExpr):
            self.walk(node.test, guards, in_for=in_for, in_macro=in_macro)
            inner = guards | _defined(node.test)
            self.walk(node.expr1, inner, in_for=in_for, in_macro=in_macro)
            if node.expr2 is not None:
                self.walk(node.expr2, guards, in_for=in_for, in_macro=in_macro)
            return
        elif isinstance(node, nodes.If):
            self.walk(node.test, guards, in_for=in_for, in_macro=in_macro)
            inner = guards | _defined(node.test)
            self.walk_all(node.body, inner, in_for=in_for, in_macro=in_macro)
            self.walk_all(node.elif_, guards, in_for=in_for, in_macro=in_macro)
            self.walk_all(node.else_, guards, in_for=in_for, in_macro=in_macro)
            return
        elif isinstance(node, nodes.For):
            self.walk(node.target, guards, in_for=in_for, in_macro=in_macro)
            self.walk(node.iter, guards, in_for=in_for, in_macro=in_macro)
            body = [*node.body, *([node.test] if node.test is not None else [])]
            self.walk_all(body, guards, in_for=True, in_macro=in_macro)
            self.walk_all(node.else_, guards, in_for=in_for, in_macro=in_macro)
            return
        elif isinstance(node, nodes.Macro | nodes.CallBlock):
            if isinstance(node, nodes.Macro):
                self.local.add(node.name)
            self.walk_all(node.iter_child_nodes(), guards, in_for=in_for, in_macro=True)
            return
        self.walk_all(node.iter_child_nodes(), guards, in_for=in_for, in_macro=in_macro)

    def check_name(self, node: nodes.Filter | nodes.Test) -> None:
        from jinja2.exceptions import TemplateAssertionError

        is_filter = isinstance(node, nodes.Filter)
        if node.name not in (self.filters if is_filter else self.tests):
            kind = "filter" if is_filter else "test"
            raise TemplateAssertionError(f"No {kind} named '{node.name}'.", node.lineno)

    def walk_all(
        self, items: Iterable[nodes.Node], guards: frozenset[Chain], *, in_for: bool, in_macro: bool
    ) -> None:
        for item in items:
            self.walk(item, guards, in_for=in_for, in_macro=in_macro)

    def chain(
        self,
        node: nodes.Node,
        guards: frozenset[Chain],
        *,
        last_guarded: bool,
        in_for: bool,
        in_macro: bool,
        extra: tuple[Key, ...] = (),
    ) -> None:
        """Record the chain that ends at ``node`` (and walk what its keys compute)."""
        keys: list[Key] = list(extra)
        while isinstance(node, nodes.Getattr | nodes.Getitem):
            if isinstance(node, nodes.Getattr):
                keys.append(node.attr)
            else:
                keys.append(_const_key(node.arg))
                if not isinstance(node.arg, nodes.Const):
                    self.walk(node.arg, guards, in_for=in_for, in_macro=in_macro)
            node = node.node
        if not isinstance(node, nodes.Name):
            self.walk(node, guards, in_for=in_for, in_macro=in_macro)
            return
        name = node.name
        if node.ctx != "load":
            self.local.add(name)
            return
        if (name == "loop" and in_for) or (in_macro and name in _MACRO_NAMES):
            return
        keys.reverse()
        if None in keys:
            keys = keys[: keys.index(None) + 1]
        path: list[str] = [name]
        guarded: list[bool] = []
        for index, key in enumerate(keys):
            path.append(repr(key))
            guarded.append(
                tuple(path) in guards
                or (last_guarded and index == len(keys) - 1)
                or (bool(extra) and index == len(keys) - 1)
            )
        self.out.append(Ref(name, tuple(keys), tuple(guarded), node.lineno))


def _arguments(node: nodes.Filter | nodes.Test | nodes.Call) -> list[nodes.Node]:
    out: list[nodes.Node] = [*node.args, *node.kwargs]
    out += [n for n in (node.dyn_args, node.dyn_kwargs) if n is not None]
    return out


def _const_key(node: nodes.Node) -> Key:
    if isinstance(node, nodes.Const) and isinstance(node.value, str | int):
        return node.value if not isinstance(node.value, bool) else None
    return None


def _is_get(node: nodes.Call) -> bool:
    target = node.node
    return (
        isinstance(target, nodes.Getattr)
        and target.attr == "get"
        and len(node.args) >= 1
        and isinstance(target.node, nodes.Name | nodes.Getattr | nodes.Getitem)
    )


def _as_chain(node: nodes.Node) -> Chain | None:
    keys: list[str] = []
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        key = node.attr if isinstance(node, nodes.Getattr) else _const_key(node.arg)
        if key is None:
            return None
        keys.append(repr(key))
        node = node.node
    if not isinstance(node, nodes.Name):
        return None
    return (node.name, *reversed(keys))


def _defined(test: nodes.Node) -> frozenset[Chain]:
    """Return the chains a true ``test`` proves to exist."""
    if isinstance(test, nodes.And):
        return _defined(test.left) | _defined(test.right)
    if isinstance(test, nodes.Test) and test.name == "defined":
        chain = _as_chain(test.node)
        return frozenset([chain]) if chain else frozenset()
    if (
        isinstance(test, nodes.Compare)
        and isinstance(test.expr, nodes.Const)
        and isinstance(test.expr.value, str)
        and len(test.ops) == 1
        and test.ops[0].op == "in"
    ):
        chain = _as_chain(test.ops[0].expr)
        return frozenset([(*chain, repr(test.expr.value))]) if chain else frozenset()
    return frozenset()

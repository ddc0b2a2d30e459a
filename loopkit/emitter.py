"""Write canonical YAML: PyYAML's block output, without PyYAML's event machinery.

The canonical YAML of a loop is what ``yaml.dump`` writes with ``_Dumper``
and the options of ``pyyaml_dump`` below: block style, sequences indented
under their key, text with line breaks as literal ``|`` blocks, no line
folding, unicode as is, keys in data order. That definition stays PyYAML's;
``dump`` writes the same bytes about 25 times faster (PyYAML's pure-Python
emitter runs a state machine over an event stream and analyses every scalar
character by character; libyaml's emitter cannot indent sequences this way).

How: the block structure (keys, ``-`` items, indentation, ``{}`` and ``[]``
for empty collections) is written directly. The text scalars that make up
nearly all of a loop — one line of printable characters, or printable lines
for a literal block — are classified by two regular expressions and PyYAML's
own resolver (does ``yes`` or ``1.0`` read back as text?); their writing is
trivial. Any other scalar (tabs, control characters, unusual line breaks,
spaces before a line break, very long values) is written by PyYAML's own
``Emitter`` in the same context. Whatever this module does not model —
non-text keys, keys PyYAML writes as complex keys, shared or unusual
objects, a top level that is not a non-empty mapping — is dumped by
``pyyaml_dump`` whole. tests/engine/test_emitter.py holds ``dump`` equal to
``pyyaml_dump`` byte for byte, on every loop in loops/ and on generated data.
"""

from __future__ import annotations

import io
import re
from typing import Any

import yaml

#: No line is ever folded: one value, one line, clean diffs.
WIDTH = 1_000_000


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # Indent sequences under their key, as people write them by hand.
        super().increase_indent(flow, False)


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str_representer)


def pyyaml_dump(data: Any) -> str:
    """Return the canonical YAML of plain data as PyYAML writes it (the definition)."""
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=WIDTH,
    )


def dump(data: Any) -> str:
    """Return ``pyyaml_dump(data)``, written without PyYAML's emitter where it can be."""
    if type(data) is not dict or not data:
        return pyyaml_dump(data)
    try:
        return _Writer().document(data)
    except _Unsupported:
        return pyyaml_dump(data)


# ── Scalars ──────────────────────────────────────────────────────────────

_STR_TAG = "tag:yaml.org,2002:str"
# The characters PyYAML writes as they are with allow_unicode, line breaks
# aside (tab, the control characters, U+FEFF and U+FFFF are escaped in double
# quotes; U+0085, U+2028 and U+2029 are line breaks to YAML 1.1).
_PRINTABLE = "\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010fffe"
_ONE_LINE = re.compile(f"[{_PRINTABLE}]*")
_LINES = re.compile(f"[\n{_PRINTABLE}]*")
# Where a one-line printable scalar cannot be plain in block context (see
# Emitter.analyze_scalar): a document marker, a leading indicator, '-', '?'
# or ':' before a space or at the end, a leading or trailing space, ': ',
# ' #' or a final ':'.
_NOT_PLAIN = re.compile(r"\A(?:---|\.\.\.|[-?:](?: |\Z)|[#,\[\]{}&*!|>'\"%@`]| )|: | #| \Z|:\Z")
# How long a key PyYAML still writes as a simple key: the analysed scalar and
# its (unwritten) '!!str' tag must stay under 128 characters.
_MAX_SIMPLE_KEY = 128 - len("!!str")
_INF = float("inf")
# A resolver with _Dumper's tables: what tag would a plain scalar read back as?
_resolver = _Dumper(io.StringIO())


class _Unsupported(Exception):
    """Data this writer does not model; ``dump`` hands it to PyYAML whole."""


def _reads_as_text(value: str) -> bool:
    # The serializer's "implicit" test: is the tag a plain scalar resolves to text?
    tag = _resolver.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    return bool(tag == _STR_TAG)


def _float(value: float) -> str:
    # SafeRepresenter.represent_float
    if value != value:
        return ".nan"
    if value == _INF:
        return ".inf"
    if value == -_INF:
        return "-.inf"
    text = repr(value).lower()
    if "." not in text and "e" in text:
        text = text.replace("e", ".0e", 1)
    return text


def _literal(value: str, indent: int) -> str:
    # Emitter.determine_block_hints and Emitter.write_literal, for '\n' breaks only.
    hints = "2" if value[0] in " \n" else ""
    if value[-1] != "\n":
        hints += "-"
    elif len(value) == 1 or value[-2] == "\n":
        hints += "+"
    lines = value.split("\n")
    if value[-1] == "\n":
        lines.pop()
    pad = " " * indent
    return f" |{hints}\n" + "".join(f"{pad}{line}\n" if line else "\n" for line in lines)


def _pyyaml_scalar(value: str, indent: int, column: int, key: bool) -> tuple[str, bool]:
    """Return a text scalar as PyYAML's emitter writes it here, and whether it leaves the document open.

    ``indent`` is the scalar's own indent (its parent's plus two), ``column``
    where it starts; a value follows ':' or '-', a key starts a line.
    """
    stream = io.StringIO()
    emitter = yaml.emitter.Emitter(stream, allow_unicode=True, width=WIDTH)
    implicit = (_reads_as_text(value), True)
    style = "|" if "\n" in value else None
    emitter.event = yaml.ScalarEvent(None, _STR_TAG, implicit, value, style=style)
    emitter.indent = indent
    emitter.column = column
    emitter.simple_key_context = key
    emitter.whitespace = key
    emitter.indention = key
    emitter.process_scalar()
    return stream.getvalue(), emitter.open_ended


class _Writer:
    """One document: block mappings and sequences of plain data, as PyYAML lays them out."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.seen: set[int] = set()
        self.keys: dict[str, str] = {}
        self.open_ended = False  # the last scalar was a literal block that keeps its final breaks

    def document(self, data: dict[str, Any]) -> str:
        self.mapping(data, 0, "")
        if self.open_ended:
            self.out.append("...\n")
        return "".join(self.out)

    def container(self, value: dict[str, Any] | list[Any]) -> None:
        # PyYAML gives an object it meets twice an anchor and an alias.
        if id(value) in self.seen:
            raise _Unsupported
        self.seen.add(id(value))

    def mapping(self, data: dict[str, Any], indent: int, first: str) -> None:
        self.container(data)
        out = self.out
        pad = " " * indent
        prefix = first
        for key, value in data.items():
            text = self.keys.get(key) if type(key) is str else None
            if text is None:
                text = self.key(key, indent)
            out.append(f"{prefix}{text}:")
            prefix = pad
            self.value(value, indent, indent + len(text) + 1, item=False)

    def sequence(self, data: list[Any], indent: int, first: str) -> None:
        self.container(data)
        out = self.out
        pad = " " * indent
        prefix = first
        for element in data:
            out.append(f"{prefix}-")
            prefix = pad
            self.value(element, indent, indent + 1, item=True)

    def value(self, value: Any, parent: int, column: int, *, item: bool) -> None:
        """Write a value after its key's ':' or its item's '-', to the end of its line(s).

        ``parent`` is the indent of the mapping or sequence that holds it,
        ``column`` where the value starts.
        """
        kind = type(value)
        indent = parent + 2
        if kind is str:
            self.out.append(self.text(value, indent, column))
            return
        self.open_ended = False
        if kind is dict:
            if value:
                if item:  # the first key goes on the '-' line
                    self.mapping(value, indent, " ")
                else:
                    self.out.append("\n")
                    self.mapping(value, indent, " " * indent)
            else:
                self.container(value)
                self.out.append(" {}\n")
        elif kind is list:
            if value:
                if item:
                    self.sequence(value, indent, " ")
                else:
                    self.out.append("\n")
                    self.sequence(value, indent, " " * indent)
            else:
                self.container(value)
                self.out.append(" []\n")
        elif kind is bool:
            self.out.append(" true\n" if value else " false\n")
        elif kind is int:
            self.out.append(f" {value}\n")
        elif kind is float:
            self.out.append(f" {_float(value)}\n")
        elif value is None:
            self.out.append(" null\n")
        else:
            raise _Unsupported

    def text(self, value: str, indent: int, column: int) -> str:
        self.open_ended = False
        if column + 2 * len(value) + 2 < WIDTH:  # no line can reach the folding width
            if "\n" not in value:
                if _ONE_LINE.fullmatch(value):
                    if value and not _NOT_PLAIN.search(value) and _reads_as_text(value):
                        return f" {value}\n"
                    return " '" + value.replace("'", "''") + "'\n"
            elif _LINES.fullmatch(value) and " \n" not in value and value[-1] != " ":
                text = _literal(value, indent)
                self.open_ended = text[2 : text.index("\n")].endswith("+")
                return text
        text, self.open_ended = _pyyaml_scalar(value, indent, column, key=False)
        return text if text.endswith("\n") else text + "\n"

    def key(self, key: Any, indent: int) -> str:
        if type(key) is not str or not key or len(key) >= _MAX_SIMPLE_KEY:
            raise _Unsupported  # not a simple key: PyYAML writes '? key'
        if _ONE_LINE.fullmatch(key):
            if not _NOT_PLAIN.search(key) and _reads_as_text(key):
                text = key
            else:
                text = "'" + key.replace("'", "''") + "'"
        elif any(c in key for c in "\n\x85\u2028\u2029"):
            raise _Unsupported
        else:
            text, _ = _pyyaml_scalar(key, indent + 2, indent, key=True)
        self.keys[key] = text
        return text

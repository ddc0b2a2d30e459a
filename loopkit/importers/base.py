"""What every importer shares: the result of a conversion, notes, labels and Jinja text.

An importer reads another tool's agent definition and returns plain loop data
in LoopKit's canonical form (camelCase keys, as ``loopkit.yamlio.to_data``
gives) together with a list of :class:`Note`: each thing of the source that
did not map, or mapped only in part, with where it was in the source.
Malformed input raises ``SpecError`` with ``file:line:column`` where known.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from loopkit import yamlio
from loopkit.errors import Problem, SpecError

__all__ = [
    "Conversion",
    "Labels",
    "Note",
    "jinja_text",
    "load_structured",
    "loop_name",
    "refuse",
]


@dataclass(frozen=True)
class Note:
    """One thing of the source that did not map to the loop (or mapped only in part)."""

    message: str
    where: str = ""

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message

    def as_dict(self) -> dict[str, str]:
        return {"message": self.message, "where": self.where}


@dataclass
class Conversion:
    """A converted loop: its data (LoopKit's canonical keys) and what did not map."""

    format: str
    data: dict[str, Any]
    notes: list[Note] = field(default_factory=list)


class Source:
    """One parsed source document with positions, for notes that say where."""

    def __init__(self, doc: yamlio.Document | None, file: str, data: Any) -> None:
        self.doc = doc
        self.file = file
        self.data = data

    def where(self, *path: str | int) -> str:
        """Return ``file:line:column`` of ``path`` in the document (as far as it is known)."""
        position = self.doc.position(tuple(path)) if self.doc is not None else None
        if position is None:
            return self.file
        return f"{self.file}:{position[0]}:{position[1]}"


def refuse(
    message: str,
    file: str,
    *,
    line: int | None = None,
    column: int | None = None,
    path: str = "",
    hint: str | None = None,
) -> SpecError:
    """Return the error for input an importer cannot read (raise it)."""
    return SpecError(
        [Problem(message, path=path, file=file, line=line, column=column, code="import", hint=hint)]
    )


_LINE_COMMENT = re.compile(r'("(?:\\.|[^"\\])*")|//[^\n]*|/\*.*?\*/', re.S)
_TRAILING_COMMA = re.compile(r'("(?:\\.|[^"\\])*")|,(\s*[}\]])')


def strip_jsonc(text: str) -> str:
    """Return JSON text from JSONC: comments and trailing commas removed, lines kept."""

    def comment(match: re.Match[str]) -> str:
        if match.group(1):
            return match.group(1)
        return "\n" * match.group(0).count("\n")  # keep line numbers for errors

    text = _LINE_COMMENT.sub(comment, text)
    return _TRAILING_COMMA.sub(lambda m: m.group(1) or m.group(2), text)


def load_structured(text: str, file: str) -> Source:
    """Parse YAML, JSON or JSONC text into data with positions; raise ``SpecError``."""
    stripped = text.lstrip()
    if file.lower().endswith(".jsonc") or (stripped[:1] in "{[" and ("//" in text or "/*" in text)):
        try:
            return Source(None, file, json.loads(strip_jsonc(text)))
        except json.JSONDecodeError as exc:
            raise refuse(
                f"not valid JSONC: {exc.msg}", file, line=exc.lineno, column=exc.colno
            ) from None
    doc = yamlio.parse(text, file)
    return Source(doc, file, doc.data)


_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def loop_name(*candidates: str | None) -> str:
    """Return a valid loop name from the first candidate that has letters or digits."""
    for candidate in candidates:
        if not candidate:
            continue
        name = _NAME_CHARS.sub("-", candidate.strip().lower()).strip("-._")[:100]
        if name and name[0].isalnum():
            return name
    return "imported"


class Labels:
    """Unique step labels: a repeated title gets " 2", " 3"..."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def take(self, wanted: str | None, fallback: str) -> str:
        base = " ".join((wanted or "").split()) or fallback
        label, n = base, 2
        while label in self.used:
            label, n = f"{base} {n}", n + 1
        self.used.add(label)
        return label


_JINJA_OPEN = re.compile(r"\{[{%#]")


def jinja_text(text: str) -> str:
    """Return literal text as a Jinja2 template that renders it unchanged."""
    return _JINJA_OPEN.sub(lambda m: "{{ '" + m.group(0) + "' }}", text)


def string(value: Any) -> str:
    """Return a source value as one line of text (YAML's folded `>` leaves a trailing newline)."""
    return str(value).strip() if value is not None else ""


def quote(value: str) -> str:
    """Return a Jinja2 string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def step_ref(label: str) -> str:
    return f"steps[{quote(label)}]"

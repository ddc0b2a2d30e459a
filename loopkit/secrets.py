"""Secrets: ``${ENV_VAR}`` references resolved at run time, and their redaction.

A loop or project file never holds a secret, only a reference to the
environment variable that does (``Authorization: "Bearer ${GITHUB_TOKEN}"``).
References are resolved when a connector starts, and every value resolved
this way is remembered by the process-wide ``REGISTRY`` so that ``redact()``
can take it back out of anything about to be stored or shown: events, logs,
exports, the web app's rows. Sinks call ``redact()`` on each event's data.

Values shorter than ``MIN_SECRET_LENGTH`` are not registered: redacting every
"1" of a run's output would destroy it while protecting nothing.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from loopkit.errors import ConfigError

#: ``${NAME}``: upper-case letters, digits and underscores, not starting with a digit.
REFERENCE_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
MIN_SECRET_LENGTH = 4
#: What a redacted value is replaced with (``{name}`` is the environment variable).
MASK = "[redacted:{name}]"

# user:password@ in a URL's authority: the password is masked even when it was
# written literally (a loop should not, but a log line must not repeat it).
# Matched right after each "://" (a scan from every position would cost O(n²)).
_USERINFO_RE = re.compile(r"[^/\s:@]*:(?P<pw>[^/\s@]+)@")

T = TypeVar("T")


class MissingSecret(ConfigError):
    """A ``${NAME}`` reference names an environment variable that is not set."""

    code = "missing_secret"

    def __init__(self, name: str, where: str) -> None:
        self.name, self.where = name, where
        super().__init__(
            f"{where} refers to ${{{name}}}, but the environment variable {name} is not set "
            f"(set it in the environment of the process that runs the loop)"
        )


class Registry:
    """The secret values resolved so far in this process, by environment variable name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, str] = {}
        self._pattern: re.Pattern[str] | None = None

    def add(self, name: str, value: str) -> None:
        """Remember ``value`` (from ``$name``) as a secret to redact."""
        if len(value) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            if self._values.get(value) != name:
                self._values[value] = name
                self._pattern = None

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._pattern = None

    def redact_text(self, text: str) -> str:
        """Return ``text`` with every known secret value and URL password masked."""
        with self._lock:
            if self._pattern is None and self._values:
                # Longest first, so that a secret containing another is masked whole.
                ordered = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
            pattern, values = self._pattern, dict(self._values)
        if pattern is not None:
            text = pattern.sub(lambda m: MASK.format(name=values[m.group(0)]), text)
        return _mask_url_passwords(text) if "://" in text else text


def _mask_url_passwords(text: str) -> str:
    out, pos = [], 0
    for scheme_end in re.finditer("://", text):
        start = scheme_end.end()
        if start < pos:
            continue
        userinfo = _USERINFO_RE.match(text, start)
        if userinfo is not None:
            out += [text[pos : userinfo.start("pw")], "***"]
            pos = userinfo.end("pw")
    return "".join([*out, text[pos:]])


#: The process-wide registry that ``resolve`` fills and ``redact`` reads.
REGISTRY = Registry()


def references(text: str) -> list[str]:
    """Return the environment variable names ``text`` refers to, in order."""
    return REFERENCE_RE.findall(text)


def resolve(
    text: str,
    where: str,
    env: Mapping[str, str] | None = None,
    registry: Registry | None = REGISTRY,
) -> str:
    """Return ``text`` with each ``${NAME}`` replaced by ``$NAME`` from ``env``.

    ``where`` names the setting for the error message (``connector 'github' header
    'Authorization'``). Each resolved value is registered for redaction.
    Raise ``MissingSecret`` when a variable is not set.
    """
    source = os.environ if env is None else env

    def value_of(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in source:
            raise MissingSecret(name, where)
        value = source[name]
        if registry is not None:
            registry.add(name, value)
        return value

    return REFERENCE_RE.sub(value_of, text)


def resolve_all(
    values: Mapping[str, str],
    where: str,
    env: Mapping[str, str] | None = None,
    registry: Registry | None = REGISTRY,
) -> dict[str, str]:
    """Resolve every value of a mapping (headers, environment); ``where`` names the mapping."""
    return {key: resolve(value, f"{where} '{key}'", env, registry) for key, value in values.items()}


def redact(value: T, registry: Registry | None = None) -> T:
    """Return a copy of ``value`` (str, or dicts/lists/tuples of them) with secrets masked.

    Non-string leaves (numbers, booleans, None) are returned as they are.
    """
    reg = registry or REGISTRY
    return _redact(value, reg)  # type: ignore[no-any-return]


def _redact(value: Any, registry: Registry) -> Any:
    if isinstance(value, str):
        return registry.redact_text(value)
    if isinstance(value, Mapping):
        return {_redact(k, registry): _redact(v, registry) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items: Iterable[Any] = (_redact(v, registry) for v in value)
        return type(value)(items) if isinstance(value, tuple) else list(items)
    return value


def redact_event(event: Any, registry: Registry | None = None) -> None:
    """Mask secrets in the text fields of an event dataclass, in place (before any sink sees it)."""
    import dataclasses

    reg = registry or REGISTRY
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if isinstance(value, str | dict | list):
            setattr(event, f.name, _redact(value, reg))

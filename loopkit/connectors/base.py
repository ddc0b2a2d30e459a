"""The connector contract, tool naming and allow-lists.

A connector turns something outside the run (an MCP server, an HTTP API, a
SQL database) into ``loopkit.tools.Tool`` objects. Its life follows the run's:
``start()`` before the first step that uses it (an MCP server is launched and
its tools listed there), ``stop()`` when the run ends, however it ends.

The model sees a connector's tools under ``<connector>__<tool>`` (OpenAI tool
names allow ``[a-zA-Z0-9_-]`` only), so that two connectors can both have a
``search`` tool. A step's ``tools:`` allow-list may name a tool in any of
three ways: ``github__search``, ``github.search``, or a glob over the dotted
form (``github.*``, ``*.search``).
"""

from __future__ import annotations

import fnmatch
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

from loopkit.tools import Tool

#: Longest tool result handed back to the model; the rest is cut with a note.
MAX_RESULT_CHARS = 20_000

_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


class ConnectorError(Exception):
    """A connector could not start (its server did not launch, its database is unreachable)."""

    def __init__(self, connector: str, message: str) -> None:
        self.connector = connector
        super().__init__(f"connector '{connector}': {message}")


def tool_name(connector: str, tool: str) -> str:
    """Return the name the model sees for ``tool`` of ``connector`` (at most 64 characters)."""
    name = f"{_UNSAFE.sub('_', connector)}__{_UNSAFE.sub('_', tool)}"
    return name[:64]


class ConnectorTool(Tool):
    """A tool that belongs to a connector: it knows both names."""

    connector: str
    tool: str

    @property
    def dotted(self) -> str:
        """Return ``connector.tool``, the form allow-lists and docs use."""
        return f"{self.connector}.{self.tool}"


class Connector(ABC):
    """A source of tools with a lifecycle.

    Contract: ``start()`` makes ``tools()`` valid (and raises ``ConnectorError``
    when it cannot); ``stop()`` releases everything ``start()`` took and may be
    called more than once, or without a successful ``start()``. Tool calls
    never raise for failures the model could react to.
    """

    name: str

    @abstractmethod
    async def start(self) -> None:
        """Connect, launch or open whatever the tools need; list the tools."""

    @abstractmethod
    async def stop(self) -> None:
        """Release what ``start()`` took (close connections, shut servers down)."""

    @abstractmethod
    def tools(self) -> list[ConnectorTool]:
        """Return the tools this connector offers (valid after ``start()``)."""


def allowed(tool: Tool, allow: Iterable[str]) -> bool:
    """Return whether ``tool`` matches an entry of a ``tools:`` allow-list."""
    names = {tool.name}
    if isinstance(tool, ConnectorTool):
        names |= {tool.dotted, tool.tool}
    for entry in allow:
        if entry in names:
            return True
        if any(ch in entry for ch in "*?[") and any(fnmatch.fnmatchcase(n, entry) for n in names):
            return True
    return False


def select(tools: Iterable[Tool], allow: Iterable[str]) -> list[Tool]:
    """Return the tools an allow-list lets through (all of them when it is empty)."""
    allow = list(allow)
    return [t for t in tools if not allow or allowed(t, allow)]


def clip(text: str, limit: int = MAX_RESULT_CHARS) -> str:
    """Return ``text`` cut to ``limit`` characters with a note saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… [{len(text) - limit:,} more characters cut]"


def as_json(value: Any) -> str:
    """Return ``value`` as compact JSON text for the model (non-JSON values as strings)."""
    return json.dumps(value, ensure_ascii=False, default=str)

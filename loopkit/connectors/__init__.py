"""Connectors: MCP servers, HTTP APIs, SQL databases and notifications (Slack-compatible
webhooks, email) exposed to agents as tools.

``build()`` makes the runtime connector of a declared one; ``Toolbox`` holds
the connectors of one run: each starts the first time a step needs it (so a
run that never reaches that step never launches its server) and all of them
stop when the run ends, however it ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from loopkit import spec
from loopkit.connectors.base import (
    Connector,
    ConnectorError,
    ConnectorTool,
    allowed,
    select,
    tool_name,
)
from loopkit.tools import Tool, summary

_log = logging.getLogger("loopkit.connectors")

__all__ = [
    "Connector",
    "ConnectorError",
    "ConnectorTool",
    "Toolbox",
    "allowed",
    "build",
    "select",
    "summary",
    "tool_name",
]


def build(
    name: str,
    config: spec.Connector,
    *,
    env: Mapping[str, str] | None = None,
    root: Path | None = None,
) -> Connector:
    """Return the runtime connector for ``config`` (nothing is started yet)."""
    env_dict = dict(env) if env is not None else None
    if isinstance(config, spec.McpConnector):
        from loopkit.connectors.mcp import McpConnector

        return McpConnector(name, config, env=env_dict, cwd=str(root) if root else None)
    if isinstance(config, spec.HttpConnector):
        from loopkit.connectors.http import HttpConnector

        return HttpConnector(name, config, env=env_dict)
    if isinstance(config, spec.SlackConnector):
        from loopkit.connectors.notify import SlackConnector

        return SlackConnector(name, config, env=env_dict)
    if isinstance(config, spec.EmailConnector):
        from loopkit.connectors.notify import EmailConnector

        return EmailConnector(name, config, env=env_dict)
    from loopkit.connectors.sql import SqlConnector

    return SqlConnector(name, config, env=env_dict, root=root)


class Toolbox:
    """The connectors of one run, started on first use and stopped together.

    ``connectors`` are the declared ones (project's, then the loop's, which win);
    ``extra`` are already-built connectors by name (tests, built-ins).
    """

    def __init__(
        self,
        connectors: Mapping[str, spec.Connector],
        *,
        env: Mapping[str, str] | None = None,
        root: Path | None = None,
        extra: Mapping[str, Connector] | None = None,
    ) -> None:
        self.declared = dict(connectors)
        self._env = env
        self._root = root
        self._built: dict[str, Connector] = dict(extra or {})
        self._started: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._closed = False

    @classmethod
    def for_loop(
        cls,
        loop: spec.Loop,
        project: spec.Project | None = None,
        *,
        env: Mapping[str, str] | None = None,
        root: Path | None = None,
    ) -> Toolbox:
        """Return the toolbox of a loop: the project's connectors overlaid with the loop's."""
        declared = {**(project.connectors if project else {}), **loop.connectors}
        return cls(declared, env=env, root=root)

    def names(self) -> list[str]:
        return sorted({*self.declared, *self._built})

    async def connector(self, name: str) -> Connector:
        """Return the started connector ``name``; raise ``ConnectorError`` when it cannot start."""
        if self._closed:
            raise ConnectorError(name, "the run's connectors are already stopped")
        if name not in self._built and name not in self.declared:
            raise ConnectorError(name, "is not defined (declare it under 'connectors:')")
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            if name not in self._built:
                self._built[name] = build(name, self.declared[name], env=self._env, root=self._root)
            connector = self._built[name]
            if name not in self._started:
                await connector.start()
                self._started.add(name)
        return connector

    async def tools(self, names: Iterable[str], allow: Iterable[str] = ()) -> list[Tool]:
        """Return the tools of the named connectors that the allow-list lets through."""
        out: list[Tool] = []
        for name in dict.fromkeys(names):
            connector = await self.connector(name)
            out += connector.tools()
        return select(out, allow)

    async def aclose(self) -> None:
        """Stop every started connector (MCP servers are shut down here)."""
        self._closed = True
        started, self._started = self._started, set()
        for name in sorted(started):
            try:
                await self._built[name].stop()
            except Exception as exc:  # one failing stop must not keep the others alive
                _log.warning("connector '%s' did not stop cleanly: %s", name, exc)

    async def __aenter__(self) -> Toolbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

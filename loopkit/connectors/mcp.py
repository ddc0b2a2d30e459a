"""MCP servers as tools, through the official ``mcp`` SDK (version 2).

Over stdio the server is a child process launched at ``start()`` and shut
down at ``stop()``; over streamable HTTP the server is already running at
``url`` and ``stop()`` ends the session. Tools are listed once, at start.

The SDK's client is an async context manager whose task group must be
entered and left by the same task, while the engine may start a connector in
one task and stop it in another (a cancelled run). So one background task
owns the client for its whole life; tool calls from any task go through the
session it opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from typing import IO, Any

from loopkit import secrets, spec
from loopkit.connectors.base import (
    Connector,
    ConnectorError,
    ConnectorTool,
    as_json,
    clip,
    tool_name,
)
from loopkit.tools import ToolResult

#: Seconds a server has to launch and list its tools.
START_TIMEOUT = 30.0
#: Seconds one tool call may take before the model is told it timed out.
CALL_TIMEOUT = 120.0
#: Seconds ``stop()`` waits for the session to close before cancelling it.
STOP_TIMEOUT = 10.0
_MAX_PAGES = 100


class McpTool(ConnectorTool):
    """One tool of an MCP server."""

    def __init__(self, owner: McpConnector, tool: Any) -> None:
        self._owner = owner
        self.connector = owner.name
        self.tool = str(tool.name)
        self.name = tool_name(owner.name, self.tool)
        self.description = tool.description or tool.title or f"MCP tool {self.tool}"
        schema = dict(tool.input_schema or {})
        schema.setdefault("type", "object")
        self.parameters = schema

    async def call(self, arguments: dict[str, Any]) -> ToolResult:
        return await self._owner.call(self.tool, arguments)


class McpConnector(Connector):
    """An MCP server (stdio or streamable HTTP) whose tools the model may call."""

    def __init__(
        self,
        name: str,
        config: spec.McpConnector,
        *,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        start_timeout: float = START_TIMEOUT,
        call_timeout: float = CALL_TIMEOUT,
    ) -> None:
        self.name = name
        self.config = config
        self._env = env
        self._cwd = cwd
        self._start_timeout = start_timeout
        self._call_timeout = call_timeout
        self._client: Any = None
        self._tools: list[ConnectorTool] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None
        self._errlog: IO[str] | None = None

    # ── lifecycle ────────────────────────────────────────────────────────

    def _target(self) -> Any:
        from mcp import StdioServerParameters

        where = f"connector '{self.name}'"
        if self.config.transport == "stdio":
            return StdioServerParameters(
                command=secrets.resolve(self.config.command or "", f"{where} command", self._env),
                args=[secrets.resolve(a, f"{where} args", self._env) for a in self.config.args],
                env=secrets.resolve_all(self.config.env, f"{where} env", self._env) or None,
                cwd=self._cwd,
            )
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        url = secrets.resolve(self.config.url or "", f"{where} url", self._env)
        headers = secrets.resolve_all(self.config.headers, f"{where} header", self._env)
        return streamable_http_client(url, http_client=create_mcp_http_client(headers=headers))

    async def start(self) -> None:
        from mcp import Client

        target = self._target()
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stopping = asyncio.Event()
        if self.config.transport == "stdio":
            # The server's stderr goes to a file, not ours: it is shown when start fails.
            # It lives until stop(), beyond this method: no `with`.
            self._errlog = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115

        async def own() -> None:
            try:
                if self.config.transport == "stdio":
                    from mcp.client.stdio import stdio_client

                    transport: Any = stdio_client(target, errlog=self._errlog)  # type: ignore[arg-type]
                else:
                    transport = target
                async with Client(transport, read_timeout_seconds=self._call_timeout) as client:
                    self._client = client
                    self._tools = await self._list_tools(client)
                    ready.set_result(None)
                    await self._stopping.wait()  # type: ignore[union-attr]
            except BaseException as exc:
                if not ready.done():
                    ready.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
            finally:
                self._client = None

        self._task = asyncio.create_task(own(), name=f"mcp:{self.name}")
        try:
            await asyncio.wait_for(asyncio.shield(ready), self._start_timeout)
        except TimeoutError:
            tail = self._stderr_tail()
            await self.stop()
            raise ConnectorError(
                self.name, f"the MCP server did not answer within {self._start_timeout:g} s{tail}"
            ) from None
        except Exception as exc:
            tail = self._stderr_tail()
            await self.stop()
            raise ConnectorError(
                self.name, f"could not start the MCP server: {_describe(exc)}{tail}"
            ) from None

    async def _list_tools(self, client: Any) -> list[ConnectorTool]:
        tools: list[ConnectorTool] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            page = await client.list_tools(cursor=cursor)
            tools += [McpTool(self, t) for t in page.tools]
            cursor = page.next_cursor
            if not cursor:
                break
        return tools

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            if self._stopping is not None:
                self._stopping.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT)
            except (TimeoutError, Exception):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        if self._errlog is not None:
            self._errlog.close()
            self._errlog = None
        self._tools = []

    def tools(self) -> list[ConnectorTool]:
        return list(self._tools)

    def _stderr_tail(self, limit: int = 1500) -> str:
        if self._errlog is None:
            return ""
        try:
            self._errlog.flush()
            self._errlog.seek(0)
            text = self._errlog.read().strip()
        except (OSError, ValueError):
            return ""
        if not text:
            return ""
        return f"\nserver stderr:\n{secrets.redact(text[-limit:])}"

    # ── calls ────────────────────────────────────────────────────────────

    async def call(self, tool: str, arguments: dict[str, Any]) -> ToolResult:
        """Call ``tool`` on the server; every failure comes back as an error result."""
        client = self._client
        if client is None:
            return ToolResult(f"the MCP server '{self.name}' is not running", is_error=True)
        try:
            result = await asyncio.wait_for(
                client.call_tool(tool, arguments), self._call_timeout + 1
            )
        except TimeoutError:
            return ToolResult(
                f"the MCP tool '{tool}' did not answer within {self._call_timeout:g} s",
                is_error=True,
            )
        except Exception as exc:
            return ToolResult(f"the MCP tool '{tool}' failed: {_describe(exc)}", is_error=True)
        return _result(result)


def _result(result: Any) -> ToolResult:
    parts: list[str] = []
    for block in result.content or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            size = len(getattr(block, "data", "") or "") * 3 // 4
            parts.append(f"[{kind} {getattr(block, 'mime_type', '')}, about {size:,} bytes]")
        elif kind == "resource":
            res = block.resource
            parts.append(getattr(res, "text", None) or f"[resource {res.uri}]")
        elif kind == "resource_link":
            parts.append(f"[resource {block.uri}]")
        else:
            parts.append(f"[{kind or 'content'}]")
    structured = getattr(result, "structured_content", None)
    if not parts and structured is not None:
        parts.append(as_json(structured))
    data = {"structured": structured} if isinstance(structured, dict) else {}
    return ToolResult(clip("\n".join(parts)), is_error=bool(result.is_error), data=data)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    text = str(exc) or type(exc).__name__
    return secrets.redact(text)

"""HTTP APIs as tools: each declared operation is one tool.

An operation has a method, a path template relative to the connector's
``baseUrl`` (``/repos/{owner}/{repo}/issues``), a JSON Schema of its
arguments and optional headers. When the model calls the tool:

- the arguments are validated against the schema (a mismatch goes back to
  the model as an error result, nothing is sent);
- ``{name}`` placeholders of the path take the argument of that name,
  percent-encoded, so an argument can never add a path segment or a query;
- the other arguments become the query string of a GET or DELETE, and the
  JSON body of a POST, PUT or PATCH;
- headers (the connector's, then the operation's) are sent with ``${ENV}``
  references resolved; they are never shown to the model or stored.

The answer goes back to the model as text: the JSON body (or the text body),
cut to a bounded length; a status of 400 or more is an error result that
names the status.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

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

if TYPE_CHECKING:  # imported when a connector starts: checking a loop's tool steps needs none
    import httpx

#: Seconds one request may take.
REQUEST_TIMEOUT = 30.0
#: Bytes of a response body read at most (the model sees at most 20,000 characters anyway).
MAX_RESPONSE_BYTES = 1_000_000
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def placeholders(path: str) -> list[str]:
    """Return the names of the ``{placeholders}`` of a path template, in order."""
    return _PLACEHOLDER.findall(path)


def operation_schema(operation: spec.HttpOperation) -> dict[str, Any]:
    """Return the arguments' JSON Schema, with the path's placeholders as required strings."""
    schema = dict(operation.parameters)
    if "type" not in schema and "properties" not in schema and schema:
        # A bare mapping of properties: the common shorthand.
        schema = {"type": "object", "properties": schema}
    schema.setdefault("type", "object")
    properties = dict(schema.get("properties") or {})
    required = list(schema.get("required") or [])
    for name in placeholders(operation.path):
        properties.setdefault(name, {"type": "string", "description": f"path parameter {name}"})
        if name not in required:
            required.append(name)
    schema["properties"] = properties
    if required:
        schema["required"] = required
    return schema


class HttpTool(ConnectorTool):
    """One declared operation of an HTTP API."""

    def __init__(
        self, owner: HttpConnector, operation_name: str, operation: spec.HttpOperation
    ) -> None:
        self._owner = owner
        self._operation = operation
        self.connector = owner.name
        self.tool = operation_name
        self.name = tool_name(owner.name, operation_name)
        self.description = operation.description or f"{operation.method} {operation.path}"
        self.parameters = operation_schema(operation)

    async def call(self, arguments: dict[str, Any]) -> ToolResult:
        import jsonschema

        try:
            jsonschema.validate(arguments, self.parameters)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "arguments"
            return ToolResult(f"invalid arguments ({where}): {exc.message}", is_error=True)
        except jsonschema.SchemaError as exc:
            return ToolResult(
                f"the operation's parameter schema is invalid: {exc.message}", is_error=True
            )
        return await self._owner.request(self._operation, arguments)


class HttpConnector(Connector):
    """An HTTP API reached with httpx; its declared operations are its tools."""

    def __init__(
        self,
        name: str,
        config: spec.HttpConnector,
        *,
        env: dict[str, str] | None = None,
        timeout: float = REQUEST_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._env = env
        self._timeout = timeout
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._tools: list[ConnectorTool] = [
            HttpTool(self, op_name, op) for op_name, op in config.operations.items()
        ]

    async def start(self) -> None:
        where = f"connector '{self.name}'"
        base_url = secrets.resolve(self.config.base_url, f"{where} baseUrl", self._env)
        if not base_url.startswith(("http://", "https://")):
            raise ConnectorError(
                self.name, f"baseUrl must start with http:// or https:// (got '{base_url}')"
            )
        headers = secrets.resolve_all(self.config.headers, f"{where} header", self._env)
        import httpx

        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            timeout=self._timeout,
            transport=self._transport,
            follow_redirects=False,
        )

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def tools(self) -> list[ConnectorTool]:
        return list(self._tools)

    async def request(self, operation: spec.HttpOperation, arguments: dict[str, Any]) -> ToolResult:
        """Send one operation; every failure comes back as an error result."""
        if self._client is None:
            return ToolResult(f"the HTTP connector '{self.name}' is not started", is_error=True)
        rest = dict(arguments)

        def fill(match: re.Match[str]) -> str:
            return quote(str(rest.pop(match.group(1))), safe="")

        path = _PLACEHOLDER.sub(fill, operation.path).lstrip("/")
        try:
            headers = secrets.resolve_all(
                operation.headers, f"connector '{self.name}' header", self._env
            )
        except secrets.MissingSecret as exc:
            return ToolResult(str(exc), is_error=True)
        body = rest if operation.method in _BODY_METHODS else None
        import httpx  # already loaded by start()

        params = None if operation.method in _BODY_METHODS else _query(rest)
        try:
            request = self._client.build_request(
                operation.method, path, params=params, json=body, headers=headers
            )
            response = await self._client.send(request, stream=True)
            try:
                raw, cut = await _read_capped(response, MAX_RESPONSE_BYTES)
            finally:
                await response.aclose()
        except httpx.TimeoutException:
            return ToolResult(
                f"{operation.method} {operation.path} timed out after {self._timeout:g} s",
                is_error=True,
            )
        except httpx.HTTPError as exc:
            return ToolResult(
                f"{operation.method} {operation.path} failed: {secrets.redact(str(exc)) or type(exc).__name__}",
                is_error=True,
            )
        return _result(operation, response, raw, cut)


def _query(arguments: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in arguments.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, dict):
            out[key] = as_json(value)
        else:
            out[key] = value
    return out


async def _read_capped(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """Return at most ``limit`` bytes of the body, and whether more was left unread."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False


def _result(
    operation: spec.HttpOperation, response: httpx.Response, raw: bytes, cut: bool
) -> ToolResult:
    content_type = response.headers.get("content-type", "")
    encoding = response.encoding or "utf-8"
    data: Any = None
    if "json" in content_type and not cut:
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
    text = as_json(data) if data is not None else raw.decode(encoding, errors="replace")
    if not text and response.status_code == 204:
        text = "(no content)"
    meta = {"status": response.status_code}
    if response.is_error or response.is_redirect:
        reason = response.reason_phrase or ""
        return ToolResult(
            clip(
                f"HTTP {response.status_code} {reason} from {operation.method} {operation.path}: {text}"
            ),
            is_error=True,
            data=meta,
        )
    note = f"\n… [the body is over {MAX_RESPONSE_BYTES:,} bytes: only that much was read]"
    return ToolResult(clip(text) + (note if cut else ""), data=meta)

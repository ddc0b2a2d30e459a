"""A team's loops as MCP tools over streamable HTTP, at ``/mcp/`` (docs/mcp.md).

Every request carries ``Authorization: Bearer <API token>``; one without a
token, or with one that is unknown or revoked, is answered 401 with the API's
JSON error body before MCP sees it. The token acts as in the API: as its
user, inside its team only. So the tools are that team's loops (the current
version of each that validates), and a call needs the editor role, as
``POST /api/runs`` does.

A call starts a real run through ``runs.lifecycle.start_run`` (a Run row, an
audit event, the team's providers; ``dry_run`` honoured, and forced by
``LOOPKIT_RUNS_DRY_RUN_ONLY``), then waits for it: the run's stored events
are read as they come (every 0.1 s, backing off to 1 s while none comes) and
reported as progress (after a first line with the run's URL), and the
result is the run's verified output once it ends. A run that stops at an approval gate answers at once that it waits,
with its page's URL. A client that goes away leaves its run running: it is a
run of the team like any other.

No cookie is read: a page on another site cannot make a browser call this
on its user's behalf, so no Origin check is needed (the SDK's DNS-rebinding
guard is for servers without credentials).

The server is stateless (each POST is whole): any ASGI process of a
deployment answers any request. The SDK's session manager needs a task group
for its life; Daphne has no ASGI lifespan, so the first request starts it in
the server's event loop, where it stays.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from django.core.exceptions import DisallowedHost, PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.db.models import F
from django.http import Http404, HttpRequest

from builder.models import Loop, LoopVersion
from loopkit import spec
from loopkit.looptools import (
    Arguments,
    LoopTool,
    Outcome,
    Progress,
    error_result,
    tool_result,
    tools_of,
)
from loopkit.toolserver import build_server
from loopkit_web.accounts.models import ApiToken
from loopkit_web.errors import INVALID_TOKEN_MESSAGE, ApiError, Unauthorized
from loopkit_web.teams.scoping import require_role
from runs import lifecycle
from runs.inputs import RunRefused, parse_loop
from runs.models import TERMINAL, ApprovalRequest, ApprovalStatus, Run, RunEvent, Status

if TYPE_CHECKING:
    import mcp_types
    from mcp.server.context import ServerRequestContext
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

PATH = "/mcp"
#: Where the authenticated Django request rides in the ASGI scope, for the tool handlers.
SCOPE_KEY = "loopkit.request"

MISSING_TOKEN_MESSAGE = (
    "an API token is required: send Authorization: Bearer <token> "
    "(create one on the API tokens page of your account)"
)

#: Seconds between reads of a waited-for run's events: the first, and the most.
POLL_MIN, POLL_MAX = 0.1, 1.0
EVENT_BATCH = 500


def is_mcp_path(path: str) -> bool:
    """Whether an HTTP request's path is the MCP endpoint's (``/mcp`` or ``/mcp/...``)."""
    return path == PATH or path.startswith(PATH + "/")


# ── Who asks ─────────────────────────────────────────────────────────────


def _authenticate(scope: dict[str, Any]) -> HttpRequest:
    """Return a Django request for ``scope`` acting as its bearer token; raise Unauthorized."""
    request = ASGIRequest(scope, io.BytesIO())
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise Unauthorized(MISSING_TOKEN_MESSAGE, code="unauthenticated")
    token = ApiToken.authenticate(raw.strip())
    if token is None:
        raise Unauthorized(INVALID_TOKEN_MESSAGE, code="invalid_token")
    request.user = token.user
    # Django's request declares no api_token; request_token() reads it back.
    request.api_token = token  # type: ignore[attr-defined]
    return request


def _request(ctx: ServerRequestContext[Any, Any]) -> HttpRequest:
    http = ctx.request
    found = getattr(http, "scope", {}).get(SCOPE_KEY)
    if not isinstance(found, HttpRequest):  # the endpoint puts it there before MCP runs
        raise RuntimeError("an MCP request reached the tools without its authenticated request")
    return found


# ── The team's loops ─────────────────────────────────────────────────────


@functools.lru_cache(maxsize=1024)
def _parsed(version_id: int, name: str, text: str) -> spec.Loop | None:
    """Return the loop of a saved version (None if it does not validate); versions never change."""
    try:
        return parse_loop(text, name)
    except RunRefused:
        return None


def team_tools(request: HttpRequest) -> list[LoopTool]:
    """Return the tools of the request's team: the current version of each loop that validates."""
    loops = Loop.objects.for_request(request).filter(version__gt=0)
    versions = LoopVersion.objects.filter(loop__in=loops, number=F("loop__version"))
    versions = versions.select_related("loop")
    found = []
    for version in versions:
        parsed = _parsed(version.pk, version.loop.name, version.yaml)
        if parsed is not None:
            found.append((parsed, version.loop.pk))
    return tools_of(found)


def _start(request: HttpRequest, tool: LoopTool, arguments: Arguments) -> Run:
    loop = Loop.objects.for_request(request).select_related("team").get(pk=tool.ref)
    require_role(request, "editor", team=loop.team)
    return lifecycle.start_run(
        loop,
        trigger_type="manual",
        payload=arguments.payload,
        inputs=arguments.inputs,
        dry_run=arguments.dry_run,
        actor=request.user,
        request=request,
    )


def _read(run_id: int, after: int) -> tuple[Run, list[RunEvent]]:
    # The run first: when it has ended, every event it stored is among those read after it.
    run = Run.objects.get(pk=run_id)
    events = list(
        RunEvent.objects.filter(run_id=run_id, seq__gt=after).order_by("seq")[:EVENT_BATCH]
    )
    return run, events


def _url(request: HttpRequest, run: Run) -> str:
    path = f"/runs/{run.pk}/"
    try:
        return request.build_absolute_uri(path)
    except DisallowedHost:  # a Host the settings do not allow: the path still says where
        return path


class TeamBackend:
    """The tools of the token's team; a call is a run on the team's workers, awaited."""

    async def tools(self, ctx: ServerRequestContext[Any, Any]) -> list[LoopTool]:
        return await database_sync_to_async(team_tools)(_request(ctx))

    async def call(
        self,
        ctx: ServerRequestContext[Any, Any],
        tool: LoopTool,
        arguments: Arguments,
        progress: Progress,
    ) -> mcp_types.CallToolResult:
        request = _request(ctx)
        try:
            run = await database_sync_to_async(_start)(request, tool, arguments)
        except (PermissionDenied, ApiError) as exc:
            return error_result(str(exc) or "forbidden")
        except (Loop.DoesNotExist, Http404):
            return error_result(f"the loop '{tool.loop.name}' is gone from this team")
        url = _url(request, run)
        await progress.say(f"run #{run.pk} of '{tool.loop.name}' started: {url}")
        run = await self._wait(run.pk, progress)
        outcome = Outcome(
            status=run.status,
            outputs=run.outputs or {},
            error=run.error or None,
            run={
                "id": run.pk,
                "dry_run": run.dry_run,
                "rounds": run.verification_rounds,
                "cost": None if run.cost_usd is None else float(run.cost_usd),
            },
            url=url,
        )
        if run.status == Status.WAITING:
            outcome.error = await database_sync_to_async(_question)(run.pk)
        return tool_result(tool.loop, outcome)

    async def _wait(self, run_id: int, progress: Progress) -> Run:
        """Report the run's events until it ends or waits for approval; return its row."""
        after, delay = 0, POLL_MIN
        while True:
            run, events = await database_sync_to_async(_read)(run_id, after)
            for event in events:
                await progress.event(event.type, event.payload or {})
                after = event.seq
            if len(events) == EVENT_BATCH:
                continue
            if run.status in TERMINAL or run.status == Status.WAITING:
                return run
            delay = POLL_MIN if events else min(delay * 2, POLL_MAX)
            await asyncio.sleep(delay)


def _question(run_id: int) -> str | None:
    pending = ApprovalRequest.objects.filter(run_id=run_id, status=ApprovalStatus.PENDING).first()
    return pending.question if pending is not None else None


# ── The ASGI endpoint ────────────────────────────────────────────────────


async def _send_json(send: Any, status: int, body: dict[str, Any], **headers: str) -> None:
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


class McpEndpoint:
    """The ASGI app of ``/mcp``: authenticate, then hand the request to the SDK's transport."""

    def __init__(self) -> None:
        self._managers: dict[asyncio.AbstractEventLoop, StreamableHTTPSessionManager] = {}
        self._holders: set[asyncio.Task[None]] = set()

    async def _manager(self) -> StreamableHTTPSessionManager:
        """Return this event loop's session manager, started on first use and kept running."""
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

        loop = asyncio.get_running_loop()
        manager = self._managers.get(loop)
        if manager is not None:
            return manager
        # The SDK is imported by the first MCP request, not by every server's start.
        manager = StreamableHTTPSessionManager(app=build_server(TeamBackend()), stateless=True)
        self._managers[loop] = manager
        started = asyncio.Event()

        async def hold() -> None:
            async with manager.run():
                started.set()
                await asyncio.Event().wait()  # for the life of the event loop

        task = loop.create_task(hold(), name="mcp-session-manager")
        self._holders.add(task)
        task.add_done_callback(self._holders.discard)
        await started.wait()
        return manager

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            request = await database_sync_to_async(_authenticate)(scope)
        except Unauthorized as exc:
            await _send_json(send, exc.status, exc.body(), **{"www-authenticate": "Bearer"})
            return
        scope[SCOPE_KEY] = request
        manager = await self._manager()
        await manager.handle_request(scope, receive, send)


class WithMcp:
    """Route ``/mcp`` HTTP requests to the MCP endpoint and everything else to ``app``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.mcp = McpEndpoint()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and is_mcp_path(scope["path"]):
            await self.mcp(scope, receive, send)
        else:
            await self.app(scope, receive, send)

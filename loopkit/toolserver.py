"""Serve loops as MCP tools: ``build_server(backend)`` and the backend of ``loopkit mcp``.

A ``Backend`` says which tools a caller may call and runs one. The server
checks a call's arguments against the tool's input schema, hands the
backend a ``Progress`` bound to the caller's progress token, and returns
what the backend answers. ``ProjectBackend`` serves a project's loops and
runs each call with the engine in this process; the web app's backend
(``runs.mcp_endpoint``) starts a team's runs on its workers.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from loopkit import __version__, spec
from loopkit.engine.approval import ApprovalDecision, ApprovalRequest, Approver
from loopkit.looptools import (
    Arguments,
    ArgumentsError,
    LoopTool,
    Outcome,
    Progress,
    error_result,
    parse_arguments,
    tool_result,
    tools_of,
)

if TYPE_CHECKING:
    import mcp_types
    from mcp.server.context import ServerRequestContext
    from mcp.server.lowlevel import Server

    from loopkit.engine.events import Event
    from loopkit.project import ProjectContext


# ── The server ───────────────────────────────────────────────────────────


class Backend(Protocol):
    """Where the tools come from and how a call runs (the contract ``build_server`` serves).

    ``tools`` lists what the caller may call (the request context says who
    asks, for a server with accounts). ``call`` runs the tool's loop with
    parsed arguments, reports its events to ``progress`` while it goes, and
    returns the result; a refusal (a role, an input) is an ``error_result``.
    """

    async def tools(self, ctx: ServerRequestContext[Any, Any]) -> list[LoopTool]: ...

    async def call(
        self,
        ctx: ServerRequestContext[Any, Any],
        tool: LoopTool,
        arguments: Arguments,
        progress: Progress,
    ) -> mcp_types.CallToolResult: ...


INSTRUCTIONS = (
    "Each tool runs a LoopKit loop (an agent pipeline whose output a checker verifies) and "
    "returns its verified output. Pass dry_run: true to try a loop without calling any model."
)


def build_server(backend: Backend, name: str = "loopkit") -> Server[Any]:
    """Return an MCP server whose tools are ``backend``'s loops."""
    import mcp_types
    from mcp.server.lowlevel import Server
    from mcp.shared.exceptions import MCPError
    from mcp_types.jsonrpc import INVALID_PARAMS

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: mcp_types.PaginatedRequestParams | None
    ) -> mcp_types.ListToolsResult:
        return mcp_types.ListToolsResult(tools=[t.as_mcp() for t in await backend.tools(ctx)])

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: mcp_types.CallToolRequestParams
    ) -> mcp_types.CallToolResult:
        tools = {t.name: t for t in await backend.tools(ctx)}
        tool = tools.get(params.name)
        if tool is None:
            known = ", ".join(sorted(tools)) or "none"
            raise MCPError(INVALID_PARAMS, f"no tool named '{params.name}' (tools: {known})")
        try:
            arguments = parse_arguments(tool, params.arguments)
        except ArgumentsError as exc:
            return error_result(str(exc))
        return await backend.call(ctx, tool, arguments, Progress(ctx.session.report_progress))

    return Server(
        name,
        version=__version__,
        title="LoopKit",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


# ── A project's loops, run here (``loopkit mcp``) ────────────────────────


class ProjectBackend:
    """Serve the loops of a project, each call a run of the engine in this process.

    The project is read again on every listing and call, so an edited loop is
    served as it now is; a loop that does not load is left out (and said so on
    stderr, once per problem). ``dry_run_only`` makes every call a dry run.
    Approval gates are approved in a dry run; in a live one the client's user
    is asked (``AskingApprover``).
    """

    def __init__(self, project: ProjectContext, *, dry_run_only: bool = False) -> None:
        self.project = project
        self.dry_run_only = dry_run_only
        self._said: set[str] = set()

    def _warn(self, text: str) -> None:
        if text not in self._said:
            self._said.add(text)
            print(f"loopkit mcp: {text}", file=sys.stderr, flush=True)

    def loops(self) -> list[tuple[spec.Loop, Any]]:
        from loopkit.errors import SpecError

        found = []
        for name in self.project.loop_names():
            try:
                loop, path = self.project.locate(name)
            except SpecError as exc:
                self._warn(f"not serving '{name}': " + "; ".join(str(p) for p in exc.problems))
                continue
            found.append((loop, path))
        return found

    async def tools(self, ctx: ServerRequestContext[Any, Any]) -> list[LoopTool]:
        return tools_of(self.loops())

    async def call(
        self,
        ctx: ServerRequestContext[Any, Any],
        tool: LoopTool,
        arguments: Arguments,
        progress: Progress,
    ) -> mcp_types.CallToolResult:
        from loopkit.engine.approval import StaticApprover
        from loopkit.engine.runner import RunOptions, run_loop
        from loopkit.errors import ConfigError
        from loopkit.memory import open_store

        project, loop, path = self.project, tool.loop, Path(tool.ref)
        dry_run = arguments.dry_run or self.dry_run_only
        try:
            llm, providers = self._llm(loop, dry_run)
        except ConfigError as exc:
            return error_result(f"loopkit mcp: {exc}")
        defaults = project.project.defaults
        store = open_store(loop.memory or (defaults.memory if defaults else None), project.root)
        try:
            config = str(path.resolve().relative_to(project.root))
        except ValueError:
            config = str(path)
        options = RunOptions(
            inputs=arguments.inputs,
            payload=arguments.payload,
            project_model=(defaults.model if defaults else None) or providers.default_model(),
            config_path=config,
        )
        tools = None
        if not dry_run:  # as `loopkit run`: a dry run starts no connector
            from loopkit.connectors.provider import ConnectorTools

            tools = ConnectorTools(loop, project.project, root=project.root)
        approver = StaticApprover(True, by="dry run") if dry_run else AskingApprover(ctx)
        sink = ProgressSink()
        forward = asyncio.create_task(sink.forward(progress))
        try:
            result = await run_loop(
                loop,
                llm,
                sinks=[sink],
                store=store,
                approver=approver,
                options=options,
                project=project.project,
                tool_provider=tools,
            )
        finally:
            sink.close()
            await forward
            store.close()
        status = "waiting_for_approval" if result.status == "suspended" else result.status
        run = {"id": result.id, "dry_run": dry_run, "rounds": result.rounds, "cost": result.cost}
        outcome = Outcome(status, result.outputs, result.error, run)
        return tool_result(loop, outcome)

    def _llm(self, loop: spec.Loop, dry_run: bool) -> tuple[Any, Any]:
        from loopkit.providers import Providers, from_project

        if dry_run:
            from loopkit.llm import DryRunProvider

            options = loop.dry_run
            llm = DryRunProvider(
                checker_scores=[float(s) for s in options.checker_scores] if options else [],
                latency_ms=(options.latency_ms or 0) if options else 0,
            )
            return llm, Providers()
        from loopkit.llm import LiteLLMProvider

        configured = self.project.project.providers
        providers = from_project(configured) if configured else Providers()
        return LiteLLMProvider(providers=providers), providers


#: Why a live run's approval gate is rejected when the client cannot ask its user.
NO_ONE_TO_ASK = (
    "the MCP client cannot ask its user (no form elicitation): approve it with "
    "`loopkit run --approve`, or run the loop on the web app"
)

_APPROVAL_FORM: dict[str, Any] = {
    "type": "object",
    "properties": {
        "approve": {"type": "boolean", "title": "Approve", "default": False},
        "reason": {"type": "string", "title": "Reason (optional)"},
    },
    "required": ["approve"],
}


class AskingApprover(Approver):
    """Ask the MCP client's user at an approval gate, with an elicitation form.

    The answer approves only when the form comes back accepted with
    ``approve`` true; declining, dismissing or a failed request rejects with
    the reason. A client that did not declare form elicitation, or a
    connection with no channel for server requests, is not asked: the gate
    is rejected with ``NO_ONE_TO_ASK``.
    """

    def __init__(self, ctx: ServerRequestContext[Any, Any]) -> None:
        self.ctx = ctx

    def _can_ask(self) -> bool:
        session = self.ctx.session
        caps = session.client_capabilities
        elicitation = caps.elicitation if caps is not None else None
        # An empty ``elicitation: {}`` (the first version of the capability) means forms.
        forms = elicitation is not None and (
            elicitation.form is not None or elicitation.url is None
        )
        return forms and session.can_send_request

    async def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        from mcp.shared.exceptions import MCPError

        if not self._can_ask():
            return ApprovalDecision(approved=False, by="mcp", reason=NO_ONE_TO_ASK)
        gate = f" ({request.label})" if request.label else ""
        message = f"The loop '{request.loop}' waits for your approval{gate}: {request.question}"
        try:
            answer = await self.ctx.session.elicit_form(
                message, _APPROVAL_FORM, related_request_id=self.ctx.request_id
            )
        except MCPError as exc:
            return ApprovalDecision(
                approved=False, by="mcp", reason=f"the client could not ask: {exc.message}"
            )
        content = answer.content or {}
        if answer.action == "accept" and content.get("approve") is True:
            return ApprovalDecision(approved=True, by="mcp client")
        said = {"decline": "declined", "cancel": "dismissed"}.get(answer.action, "not approved")
        reason = str(content.get("reason") or "").strip()
        return ApprovalDecision(
            approved=False,
            by="mcp client",
            reason=f"{said} in the MCP client" + (f": {reason}" if reason else ""),
        )


class ProgressSink:
    """An engine sink that queues the events progress reports, for one task to send in order.

    ``emit`` must not wait (the engine calls it in its loop), so it queues;
    ``forward`` sends until ``close`` (the run is over) and the queue is empty.
    """

    wants_deltas = False
    _REPORTED = frozenset(
        {"step_started", "step_finished", "step_failed", "verification_round", "approval_requested"}
    )

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()

    def emit(self, event: Event) -> None:
        if event.type in self._REPORTED:
            self._queue.put_nowait(event)

    def close(self) -> None:
        self._queue.put_nowait(None)

    async def forward(self, progress: Progress) -> None:
        while (event := await self._queue.get()) is not None:
            await progress.event(event.type, event.as_dict())


__all__ = ["AskingApprover", "Backend", "ProgressSink", "ProjectBackend", "build_server"]

"""Replaying a cassette: a model, connectors and an approver that answer from the recording.

Nothing here opens a connection. ``ReplayLLM`` answers each request with the
recorded response of the same step, role and round whose rendered request
is equal (model, messages, tools offered, response format, output schema,
parameters); several calls of one step are matched in their order, and
steps that ran in parallel may arrive in any order. ``ReplayToolbox``
offers the tools each connector offered when recording and answers each
call with the result recorded for the same tool and arguments; the loop's
``tools:`` allow-lists and skills are applied to them as in a live run.
``ReplayApprover`` gives each approval gate its recorded decision.

A request, tool call or gate the cassette does not hold is a ``Miss``: it is
kept on the ``Session`` (with a unified diff of the closest recorded request
against the actual one, saying which step and which message changed) and
ends the run with ``CassetteMiss``, unless the session has a live model (and
connectors) to ask instead (``loopkit test --record-missing``): then the
answer is recorded as a new entry of the cassette.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from loopkit.cassette import (
    Cassette,
    arguments_key,
    error_from,
    match_key,
    request_data,
    response_data,
    response_from,
    tool_entry,
    tool_result_data,
    tool_result_from,
)
from loopkit.connectors import Connector, ConnectorError, ConnectorTool, Toolbox
from loopkit.engine.approval import ApprovalDecision, ApprovalRequest, Approver
from loopkit.errors import RunError
from loopkit.llm import LLM, LLMRequest, LLMResponse
from loopkit.tools import ToolResult


class CassetteMiss(RunError):
    """The run asked for something the cassette does not hold (its loop changed)."""


@dataclass
class Miss:
    """One request, tool call or approval the cassette does not hold."""

    kind: str  # "call", "tool" or "approval"
    step: str | None
    message: str
    diff: str = ""
    role: str | None = None
    round: int | None = None


@dataclass
class Session:
    """One replay: what it used of the cassette, what it missed, what it recorded anew.

    ``live`` (and ``live_toolbox``) answer the requests (and tool calls) the cassette
    does not hold, when given: ``loopkit test --record-missing``.
    """

    cassette: Cassette
    live: LLM | None = None
    live_toolbox: Toolbox | None = None
    misses: list[Miss] = field(default_factory=list)
    used_calls: set[int] = field(default_factory=set)
    used_tools: set[int] = field(default_factory=set)
    used_approvals: set[int] = field(default_factory=set)
    new_calls: list[dict[str, Any]] = field(default_factory=list)
    new_tools: list[dict[str, Any]] = field(default_factory=list)
    new_connectors: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    replayed: int = 0

    def __post_init__(self) -> None:
        self._by_key: dict[str, list[int]] = {}
        self._by_who: dict[tuple[Any, ...], list[int]] = {}
        for index, call in enumerate(self.cassette.calls):
            self._by_key.setdefault(match_key(call["request"]), []).append(index)
            who = (call.get("step"), call.get("role"), call.get("round"))
            self._by_who.setdefault(who, []).append(index)
        self._estimates: dict[str, int] = {}
        for call in self.cassette.calls:
            if "estimate" in call:
                request = call["request"]
                probe = _estimate_key(request.get("model"), request.get("messages"))
                self._estimates.setdefault(probe, int(call["estimate"]))
        self._tools: dict[str, list[int]] = {}
        for index, entry in enumerate(self.cassette.tools):
            key = arguments_key(str(entry.get("name")), entry.get("arguments"))
            self._tools.setdefault(key, []).append(index)

    @property
    def changed(self) -> bool:
        """Whether the cassette needs writing again (new entries, or entries left unused)."""
        return bool(self.new_calls or self.new_tools)

    def updated(self) -> Cassette:
        """Return the cassette as this replay used it: the entries used, then the new ones."""
        old = self.cassette
        return Cassette(
            loop=old.loop,
            inputs=old.inputs,
            payload=old.payload,
            memory=old.memory,
            defaults=old.defaults,
            prices=old.prices,
            calls=[c for i, c in enumerate(old.calls) if i in self.used_calls] + self.new_calls,
            connectors={**old.connectors, **self.new_connectors},
            tools=[t for i, t in enumerate(old.tools) if i in self.used_tools] + self.new_tools,
            approvals=old.approvals,
        )

    # ── Model calls ──────────────────────────────────────────────────────

    def find_call(self, request: LLMRequest, data: dict[str, Any]) -> dict[str, Any] | None:
        who = (request.step, request.role, request.round)
        for index in self._by_key.get(match_key(data), ()):
            call = self.cassette.calls[index]
            if index in self.used_calls:
                continue
            if (call.get("step"), call.get("role"), call.get("round")) == who:
                self.used_calls.add(index)
                return call
        return None

    def estimate(self, model: str, messages: list[dict[str, Any]]) -> int | None:
        return self._estimates.get(_estimate_key(model, messages))

    def closest(self, request: LLMRequest) -> dict[str, Any] | None:
        """Return the recorded call this request most likely stands for (for the diff)."""
        who = (request.step, request.role, request.round)
        unused = [i for i in self._by_who.get(who, ()) if i not in self.used_calls]
        if unused:
            return self.cassette.calls[unused[0]]
        same_step = [
            c
            for c in self.cassette.calls
            if c.get("step") == request.step and c.get("role") == request.role
        ]
        return same_step[0] if same_step else None

    def miss_call(self, request: LLMRequest, data: dict[str, Any]) -> Miss:
        closest = self.closest(request)
        where = f"step '{request.step}' ({request.role}, round {request.round})"
        if closest is None:
            message = f"the cassette holds no request of {where}"
            diff = request_diff(None, data, request)
        else:
            part = changed_part(closest["request"], data)
            message = f"the request of {where} is not in the cassette: {part} changed"
            diff = request_diff(closest["request"], data, request)
        miss = Miss("call", request.step, message, diff, request.role, request.round)
        self.misses.append(miss)
        return miss

    # ── Tool calls ───────────────────────────────────────────────────────

    def find_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any] | None:
        for index in self._tools.get(arguments_key(name, arguments), ()):
            if index not in self.used_tools:
                self.used_tools.add(index)
                return self.cassette.tools[index]
        return None


def _estimate_key(model: Any, messages: Any) -> str:
    return json.dumps([model, messages], sort_keys=True, ensure_ascii=False, default=str)


def changed_part(expected: dict[str, Any], actual: dict[str, Any]) -> str:
    """Name the first part of a request that differs (``message 2 (user)``, ``the tools``)."""
    if expected.get("model") != actual.get("model"):
        return f"the model ('{expected.get('model')}' → '{actual.get('model')}')"
    old, new = expected.get("messages") or [], actual.get("messages") or []
    for index in range(max(len(old), len(new))):
        a = old[index] if index < len(old) else None
        b = new[index] if index < len(new) else None
        if a != b:
            role = (b or a or {}).get("role", "?") if isinstance(b or a, dict) else "?"
            return f"message {index + 1} ({role})"
    for key, what in (
        ("tools", "the tools offered"),
        ("responseFormat", "the response format"),
        ("outputSchema", "the output schema"),
        ("params", "the parameters"),
        ("fallbacks", "the fallback models"),
    ):
        if expected.get(key) != actual.get(key):
            return what
    return "the request"


def request_lines(data: dict[str, Any] | None) -> list[str]:
    """Return a request as text lines for a diff: the model, each message, the tools."""
    if data is None:
        return []
    lines = [f"model: {data.get('model')}"]
    for index, message in enumerate(data.get("messages") or []):
        if not isinstance(message, dict):
            lines.append(f"--- message {index + 1}: {message!r}")
            continue
        lines.append(f"--- message {index + 1} ({message.get('role')})")
        content = message.get("content")
        if isinstance(content, str):
            lines.extend(content.splitlines() or [""])
        elif content is not None:
            lines.append(json.dumps(content, sort_keys=True, ensure_ascii=False))
        for extra in ("tool_calls", "tool_call_id", "name"):
            if extra in message:
                lines.append(f"{extra}: {json.dumps(message[extra], sort_keys=True)}")
    for key in ("tools", "responseFormat", "outputSchema", "params", "fallbacks"):
        if data.get(key):
            lines.append(f"--- {key}")
            lines.extend(json.dumps(data[key], sort_keys=True, indent=1).splitlines())
    return lines


def request_diff(
    expected: dict[str, Any] | None, actual: dict[str, Any], request: LLMRequest
) -> str:
    """Return a unified diff of the recorded request against the actual one."""
    who = f"{request.step} ({request.role}, round {request.round})"
    return "\n".join(
        difflib.unified_diff(
            request_lines(expected),
            request_lines(actual),
            fromfile=f"cassette: {who}",
            tofile=f"this run: {who}",
            lineterm="",
        )
    )


# ── The replaying parts ──────────────────────────────────────────────────


class ReplayLLM(LLM):
    """Answer each request from the session's cassette (or its live model, when missing)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    async def complete(self, request: LLMRequest) -> LLMResponse:
        session = self.session
        data = request_data(request)
        call = session.find_call(request, data)
        if call is None:
            if session.live is None:
                miss = session.miss_call(request, data)
                raise CassetteMiss(miss.message, step=request.step, code="cassette_miss")
            return await self._record(request, session.live)
        session.replayed += 1
        if "error" in call:
            raise error_from(call["error"], request.step)
        return response_from(call["response"])

    async def _record(self, request: LLMRequest, live: LLM) -> LLMResponse:
        session = self.session
        entry: dict[str, Any] = {
            "step": request.step,
            "role": request.role,
            "round": request.round,
            "request": request_data(request),
        }
        # A failure is not kept: a provider that is down now must not end up in the cassette.
        response = await live.complete(request)
        session.new_calls.append({**entry, "response": response_data(response)})
        return response

    def count_tokens(self, model: str, messages: list[dict[str, Any]]) -> int:
        found = self.session.estimate(model, messages)
        return found if found is not None else super().count_tokens(model, messages)

    def prices(self, model: str) -> tuple[float, float] | None:
        prices = self.session.cassette.prices
        if model in prices:
            found = prices[model]
            return (float(found[0]), float(found[1])) if found else None
        if self.session.live is not None:
            return self.session.live.prices(model)
        return None


class ReplayTool(ConnectorTool):
    """A connector's tool as recorded: its calls are answered from the cassette."""

    def __init__(self, connector: str, entry: dict[str, Any], session: Session) -> None:
        self.connector = connector
        self.tool = str(entry.get("tool"))
        self.name = str(entry.get("name"))
        self.description = str(entry.get("description") or "")
        self.parameters = dict(entry.get("parameters") or {})
        self.session = session
        self._live: ConnectorTool | None = None

    async def call(self, arguments: dict[str, Any]) -> ToolResult:
        session = self.session
        found = session.find_tool(self.name, arguments)
        if found is not None:
            return tool_result_from(found.get("result") or {})
        if session.live_toolbox is not None:
            result = await self._call_live(session.live_toolbox, arguments)
            session.new_tools.append(
                {
                    "name": self.name,
                    "arguments": json.loads(json.dumps(arguments, default=str)),
                    "result": tool_result_data(result),
                }
            )
            return result
        recorded = [t for t in session.cassette.tools if t.get("name") == self.name]
        expected = recorded[0].get("arguments") if recorded else None
        diff = "\n".join(
            difflib.unified_diff(
                json.dumps(expected, sort_keys=True, indent=1).splitlines() if recorded else [],
                json.dumps(arguments, sort_keys=True, indent=1, default=str).splitlines(),
                fromfile=f"cassette: {self.name}",
                tofile=f"this run: {self.name}",
                lineterm="",
            )
        )
        message = f"the cassette holds no call of the tool {self.connector}.{self.tool} " + (
            "with these arguments" if recorded else "at all"
        )
        session.misses.append(Miss("tool", None, message, diff))
        raise CassetteMiss(message, code="cassette_miss")

    async def _call_live(self, toolbox: Toolbox, arguments: dict[str, Any]) -> ToolResult:
        if self._live is None:
            connector = await toolbox.connector(self.connector)
            for tool in connector.tools():
                if tool.tool == self.tool:
                    self._live = tool
            if self._live is None:
                return ToolResult(f"connector '{self.connector}' has no tool '{self.tool}'", True)
        return await self._live.call(arguments)


class ReplayConnector(Connector):
    """A connector that starts nothing: its tools are those the cassette lists."""

    def __init__(self, name: str, entries: Sequence[dict[str, Any]], session: Session) -> None:
        self.name = name
        self._tools = [ReplayTool(name, entry, session) for entry in entries]

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def tools(self) -> list[ConnectorTool]:
        return list(self._tools)


class ReplayToolbox(Toolbox):
    """The connectors the cassette recorded; none is contacted (unless a live toolbox
    records the missing ones)."""

    def __init__(self, session: Session) -> None:
        super().__init__({})
        self.session = session
        self._replayed: dict[str, ReplayConnector] = {}

    def names(self) -> list[str]:
        return sorted(self.session.cassette.connectors)

    async def connector(self, name: str) -> Connector:
        session = self.session
        if name not in self._replayed:
            entries = session.cassette.connectors.get(name)
            if entries is None and session.live_toolbox is not None:
                live = await session.live_toolbox.connector(name)
                entries = [tool_entry(t) for t in live.tools()]
                session.new_connectors[name] = entries
            if entries is None:
                message = (
                    f"the cassette holds no tools of connector '{name}' "
                    "(the recorded run never used it)"
                )
                session.misses.append(Miss("tool", None, message))
                raise ConnectorError(name, "is not in the cassette (record the loop again)")
            self._replayed[name] = ReplayConnector(name, entries, session)
        return self._replayed[name]

    async def aclose(self) -> None:
        if self.session.live_toolbox is not None:
            await self.session.live_toolbox.aclose()


class ReplayApprover(Approver):
    """Give each approval gate its recorded decision, in order per gate."""

    def __init__(self, session: Session) -> None:
        self.session = session

    async def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        session = self.session
        for index, entry in enumerate(session.cassette.approvals):
            if index in session.used_approvals or entry.get("key") != request.key:
                continue
            session.used_approvals.add(index)
            if entry.get("timedOut") and "approved" not in entry:
                raise TimeoutError  # the engine applies the gate's onTimeout, as it did live
            return ApprovalDecision(
                approved=bool(entry.get("approved")),
                by=entry.get("by"),
                reason=entry.get("reason"),
                timed_out=bool(entry.get("timedOut")),
            )
        name = request.label or request.key
        message = f"the cassette holds no decision for the approval '{name}'"
        session.misses.append(Miss("approval", name, message))
        raise CassetteMiss(message, step=name, code="cassette_miss")


__all__ = [
    "CassetteMiss",
    "Miss",
    "ReplayApprover",
    "ReplayLLM",
    "ReplayToolbox",
    "Session",
]

"""Recording a run into a cassette (``loopkit run LOOP --record``).

The wrappers go around the run's real parts, so other wrappers (tracing, for
instance) compose with these: ``RecordingLLM`` around an ``LLM``,
``RecordingToolbox`` around the connectors' ``Toolbox`` (its tools are
``RecordingTool`` around each connector's tool), ``RecordingApprover`` around
an ``Approver``. Each reports to one ``Recorder``, whose ``cassette()``
returns what they saw in the file's order, secrets masked.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from typing import Any

from loopkit import spec
from loopkit.cassette import (
    Cassette,
    arguments_key,
    error_data,
    mask,
    request_data,
    response_data,
    step_order,
    tool_entry,
    tool_result_data,
)
from loopkit.connectors import Connector, ConnectorTool, Toolbox
from loopkit.engine.approval import ApprovalDecision, ApprovalRequest, Approver
from loopkit.errors import ProviderError
from loopkit.llm import LLM, LLMRequest, LLMResponse
from loopkit.tools import ToolResult


class Recorder:
    """Collects one run's exchanges; ``cassette()`` returns them in the file's order.

    The wrappers below report to it. ``inputs``, ``payload``, ``memory`` and
    ``defaults`` are what the run started from (the caller sets them).
    """

    def __init__(self, loop: spec.Loop) -> None:
        self.loop = loop
        self.inputs: dict[str, Any] = {}
        self.payload: Any = None
        self.memory: dict[str, Any] = {}
        self.defaults: dict[str, str] = {}
        self.prices: dict[str, list[float] | None] = {}
        self.calls: list[dict[str, Any]] = []
        self.connectors: dict[str, list[dict[str, Any]]] = {}
        self.tools: list[dict[str, Any]] = []
        self.approvals: list[dict[str, Any]] = []
        self._estimates: dict[str, int] = {}

    def cassette(self, *, extra_secrets: Iterable[str] = ()) -> Cassette:
        """Return the cassette of what was recorded, ordered and with secrets masked."""
        order = step_order(self.loop)
        roles = {"planner": 0, "agent": 1, "maker": 1, "checker": 2}
        seq: dict[tuple[Any, ...], int] = {}
        keyed = []
        for call in self.calls:
            who = (call.get("step"), call.get("role"), call.get("round"))
            seq[who] = seq.get(who, 0) + 1
            place = order.get(str(call.get("step")), len(order))
            keyed.append(
                (
                    (
                        int(call.get("round") or 0),
                        roles.get(str(call.get("role")), 3),
                        place,
                        str(call.get("step")),
                        seq[who],
                    ),
                    call,
                )
            )
        calls = [call for _, call in sorted(keyed, key=lambda item: item[0])]
        tools = sorted(self.tools, key=lambda t: arguments_key(t["name"], t["arguments"]))
        cassette = Cassette(
            loop=self.loop.name,
            inputs=self.inputs,
            payload=self.payload,
            memory=self.memory,
            defaults=self.defaults,
            prices=self.prices,
            calls=calls,
            connectors=dict(sorted(self.connectors.items())),
            tools=tools,
            approvals=self.approvals,
        )
        return mask(cassette, extra_secrets)

    def estimate(self, model: str, messages: list[dict[str, Any]], count: int) -> None:
        self._estimates[_messages_key(model, messages)] = count

    def call(self, request: LLMRequest, outcome: dict[str, Any]) -> None:
        data = request_data(request)
        entry: dict[str, Any] = {
            "step": request.step,
            "role": request.role,
            "round": request.round,
            "request": data,
            **outcome,
        }
        estimate = self._estimates.get(_messages_key(request.model, request.messages))
        if estimate is not None:
            entry["estimate"] = estimate
        self.calls.append(entry)


def _messages_key(model: str, messages: list[dict[str, Any]]) -> str:
    return json.dumps([model, messages], sort_keys=True, default=str)


class RecordingLLM(LLM):
    """An ``LLM`` that answers through ``inner`` and records each exchange."""

    def __init__(self, inner: LLM, recorder: Recorder) -> None:
        self.inner = inner
        self.recorder = recorder
        self.dry_run = inner.dry_run
        self.streams = inner.streams

    async def complete(self, request: LLMRequest) -> LLMResponse:
        try:
            response = await self.inner.complete(request)
        except ProviderError as exc:
            self.recorder.call(request, {"error": error_data(exc)})
            raise
        self.recorder.call(request, {"response": response_data(response)})
        return response

    async def warm_up(self, models: Any = ()) -> None:
        await self.inner.warm_up(models)

    def count_tokens(self, model: str, messages: list[dict[str, Any]]) -> int:
        count = self.inner.count_tokens(model, messages)
        self.recorder.estimate(model, messages, count)
        return count

    def prices(self, model: str) -> tuple[float, float] | None:
        found = self.inner.prices(model)
        self.recorder.prices[model] = list(found) if found is not None else None
        return found


class RecordingTool(ConnectorTool):
    """A connector's tool whose calls (arguments and result) are recorded."""

    def __init__(self, inner: ConnectorTool, recorder: Recorder) -> None:
        self.inner = inner
        self.recorder = recorder
        self.name, self.description, self.parameters = (
            inner.name,
            inner.description,
            inner.parameters,
        )
        self.connector, self.tool = inner.connector, inner.tool

    async def call(self, arguments: dict[str, Any]) -> ToolResult:
        result = await self.inner.call(arguments)
        self.recorder.tools.append(
            {
                "name": self.name,
                "arguments": json.loads(json.dumps(arguments, default=str)),
                "result": tool_result_data(result),
            }
        )
        return result


class RecordingConnector(Connector):
    """A started connector whose tools are ``RecordingTool``."""

    def __init__(self, inner: Connector, recorder: Recorder) -> None:
        self.inner = inner
        self.name = inner.name
        self._tools = [RecordingTool(t, recorder) for t in inner.tools()]
        recorder.connectors[inner.name] = [tool_entry(t) for t in self._tools]

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    def tools(self) -> list[ConnectorTool]:
        return list(self._tools)


class RecordingToolbox(Toolbox):
    """The connectors of ``inner``, each started by it, their tools recorded."""

    def __init__(self, inner: Toolbox, recorder: Recorder) -> None:
        super().__init__({})
        self.inner = inner
        self.recorder = recorder
        self._wrapped: dict[str, RecordingConnector] = {}
        self._lock = asyncio.Lock()

    def names(self) -> list[str]:
        return self.inner.names()

    async def connector(self, name: str) -> Connector:
        started = await self.inner.connector(name)
        async with self._lock:
            if name not in self._wrapped:
                self._wrapped[name] = RecordingConnector(started, self.recorder)
        return self._wrapped[name]

    async def aclose(self) -> None:
        await self.inner.aclose()


class RecordingApprover(Approver):
    """An ``Approver`` that asks ``inner`` and records each decision (or the gate's timeout)."""

    def __init__(self, inner: Approver, recorder: Recorder) -> None:
        self.inner = inner
        self.recorder = recorder
        self.suspends = inner.suspends

    async def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        entry: dict[str, Any] = {"key": request.key}
        if request.label:
            entry["label"] = request.label
        try:
            decision = await self.inner.decide(request)
        except asyncio.CancelledError:
            # The engine cancels the wait when the gate's timeout passes (or the run stops).
            if request.deadline is not None and time.time() >= request.deadline - 0.5:
                self.recorder.approvals.append({**entry, "timedOut": True})
            raise
        entry.update(approved=decision.approved, by=decision.by, reason=decision.reason)
        if decision.timed_out:
            entry["timedOut"] = True
        self.recorder.approvals.append(entry)
        return decision

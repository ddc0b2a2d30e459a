"""An agent step: a tool-use loop around one model, with budget, retries and timeouts.

``call_model`` is the only place the engine talks to a model: it reserves the
call's budget share (waiting while calls in flight hold the room its output
cap needs), applies the timeout, retries transient failures with backoff
(honouring ``Retry-After``), commits the real usage and refuses an answer cut
at its output cap (unless the step allows it). ``run_agent`` renders the
prompt, then asks the model until it answers without tool calls (at most
``maxToolRounds`` tool rounds: the step's, else its subagent's, else
``RunOptions.max_tool_iterations``; each one a model call counted against the
budget); a step with an output schema asks again, with the validation error,
until its answer matches (up to its ``retries``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from jinja2 import TemplateError, nodes

from loopkit import secrets, spec, structured
from loopkit.engine.budget import Reservation
from loopkit.engine.context import StepResult
from loopkit.engine.events import (
    OutputTruncated,
    StepFailed,
    StepFinished,
    StepOutput,
    Tokens,
    ToolCalled,
)
from loopkit.errors import ProviderError, RunError, WaitForRoom
from loopkit.llm import LLMRequest, LLMResponse, Role, TransientProviderError
from loopkit.memory import Checkpoint
from loopkit.templating import TemplateLimitError, environment, render_bounded
from loopkit.tools import Tool, ToolResult, summary

if TYPE_CHECKING:
    from loopkit.engine.runner import Run


def redact_text(text: str) -> str:
    """``secrets.redact`` for one text, skipped when it provably has nothing to do."""
    if "://" in text or getattr(secrets.REGISTRY, "_values", True):
        return secrets.redact(text)
    return text


def redact_value(value: Any) -> Any:
    """``secrets.redact`` for parsed JSON, skipped when no secret has been resolved."""
    if getattr(secrets.REGISTRY, "_values", True):
        return secrets.redact(value)
    return value


class ToolProvider(ABC):
    """Supplies the tools of an agent step (the connectors' seam).

    Contract: ``tools_for`` is awaited once per agent step execution, before
    its first model call; it returns the step's tools (names unique), already
    filtered by the step's ``tools:`` allow-list. ``close`` is awaited once
    when the run ends (stop MCP servers, close HTTP clients).
    """

    @abstractmethod
    async def tools_for(self, step: spec.AgentStep, loop: spec.Loop) -> list[Tool]:
        """Return the tools ``step`` may call."""

    async def close(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release what the tools hold; the default does nothing."""

    async def instructions_for(self, step: spec.AgentStep, loop: spec.Loop) -> str:
        """Return text for the step's system prompt (skill descriptions); default none."""
        return ""

    async def tool_for(self, step: spec.ToolStep, loop: spec.Loop) -> Tool | None:
        """Return the one tool a ``tool:`` step calls (``connector.tool``), or None.

        The default asks ``tools_for`` for the tools of the step's connector and
        picks the one named; a provider may answer more directly.
        """
        probe = spec.AgentStep(prompt=step.tool, connectors=[step.connector], tools=[step.tool])
        return _named(await self.tools_for(probe, loop), step)


def _named(tools: list[Tool], step: spec.ToolStep) -> Tool | None:
    """Return the tool of ``tools`` that a tool step names (``connector.tool``), if any."""
    from loopkit.connectors.base import ConnectorTool, tool_name

    wanted = {step.tool, tool_name(step.connector, step.tool_name)}
    for tool in tools:
        inner = getattr(tool, "inner", tool)  # a wrapper (redaction) keeps the tool it wraps
        if tool.name in wanted or (isinstance(inner, ConnectorTool) and inner.dotted == step.tool):
            return tool
    return None


class StaticTools(ToolProvider):
    """The same tools for every step, narrowed by each step's ``tools:`` allow-list."""

    def __init__(self, tools: list[Tool]) -> None:
        self.tools = list(tools)

    async def tools_for(self, step: spec.AgentStep, loop: spec.Loop) -> list[Tool]:
        if step.tools:
            return [t for t in self.tools if t.name in step.tools]
        return list(self.tools)

    async def tool_for(self, step: spec.ToolStep, loop: spec.Loop) -> Tool | None:
        return _named(self.tools, step)


def add_cost(a: float | None, b: float | None) -> float | None:
    """Sum two costs; unknown (``None``) stays unknown."""
    return None if a is None or b is None else a + b


_TEMPLATES: dict[str, Any] = {}

#: Template nodes that only read the context. A template made of these alone never
#: writes to its Jinja context (no ``set``, macro, block, include, import, call block
#: or autoescape change), so the renders of one run can share one context.
_READ_ONLY_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.If,
    nodes.For,
    nodes.Expr,
    nodes.Keyword,
    nodes.Pair,
)


def _template(source: str) -> Any:
    """Return ``source`` itself when it has no Jinja syntax, else its compiled template."""
    found = _TEMPLATES.get(source)
    if found is None:
        if "{" not in source:
            found = source
        else:
            env = environment()
            found = cast(Any, env.from_string(source))
            tree = env.parse(source)
            found.loopkit_read_only = all(
                isinstance(node, _READ_ONLY_NODES) for node in tree.find_all(nodes.Node)
            )
            found.loopkit_uses_feedback = any(
                node.name == "feedback" for node in tree.find_all(nodes.Name)
            )
        if len(_TEMPLATES) < 8192:
            _TEMPLATES[source] = found
    return found


def render(run: Run, source: str, key: str, what: str = "prompt") -> str:
    """Render a prompt in the sandbox against the run context (fast path for plain text).

    Bounded (``templating.render_bounded``): a prompt that renders past the size
    or time limit fails the step with code ``template_limit``.
    """
    template = _template(source)
    if isinstance(template, str):
        return template
    try:
        # The run's variables are merged with the globals once per run (``shared``
        # context), not once per render: a wide fan-out renders hundreds of prompts.
        # A read-only template renders in the run's one shared Jinja context.
        ctx = run.ctx
        if template.loopkit_read_only:
            context = ctx.jinja_context
            if context is None:
                context = ctx.jinja_context = template.new_context(ctx.render_vars, shared=True)
        else:
            context = template.new_context(ctx.render_vars, shared=True)
        return render_bounded(template.root_render_func(context))
    except TemplateLimitError as exc:
        raise RunError(
            f"{key}: the {what} template {exc.message}", step=key, code="template_limit"
        ) from None
    except (ArithmeticError, RecursionError) as exc:
        raise RunError(
            f"{key}: the {what} template failed: {exc}", step=key, code="template_error"
        ) from None
    except TemplateError as exc:
        hint = ""
        if "trigger.payload" in source and not run.ctx.variables["trigger"].get("payload"):
            hint = (
                " (this run has no trigger payload: start it with one, e.g. a webhook delivery;"
                " the CLI takes --payload FILE.json, the API a 'payload' field)"
            )
        raise RunError(
            f"{key}: the {what} template failed: {exc.message or exc}{hint}",
            step=key,
            code="template_error",
        ) from None


def open_request(
    run: Run,
    *,
    model: str,
    messages: list[dict[str, Any]],
    step_name: str,
    role: Role,
    round_: int,
    tools: list[dict[str, Any]] | None = None,
    response_format: dict[str, Any] | None = None,
    timeout: float | None = None,
    output_cap: int | None = None,
    output_schema: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    fallbacks: list[str] | None = None,
) -> tuple[Reservation, LLMRequest]:
    """Reserve one call's share of the budget and build its request.

    Raise ``BudgetExceeded`` when the budget cannot hold the call, and
    ``WaitForRoom`` while calls in flight hold the room its output cap needs
    (``call_model`` waits for them). ``output_cap`` is the step's
    ``maxOutputTokens``.
    """
    run.cancel.raise_if_cancelled()
    budget = run.budget
    limits = budget.limits
    limited = limits.max_tokens is not None or limits.max_cost_usd is not None
    # Prices only matter to a cost limit (a LiteLLM price look-up is not free).
    prices = run.llm.prices(model) if limits.max_cost_usd is not None else None
    reservation = budget.reserve(
        run.llm.count_tokens(model, messages) if limited else 0,
        input_price=prices[0] if prices else None,
        output_price=prices[1] if prices else None,
        output_cap=output_cap,
        step=step_name,
    )
    if budget.has_warnings():
        run.flush_warnings()
    return reservation, LLMRequest(
        model=model,
        messages=messages,
        tools=tools or [],
        response_format=response_format,
        max_output_tokens=reservation.max_output,
        output_schema=output_schema,
        timeout=timeout,
        step=step_name,
        role=role,
        round=round_,
        params=params or {},
        fallbacks=fallbacks or [],
    )


async def call_model(
    run: Run,
    *,
    model: str,
    messages: list[dict[str, Any]],
    key: str,
    label: str | None,
    role: Role,
    round_: int,
    kind: str = "agent",
    tools: list[dict[str, Any]] | None = None,
    response_format: dict[str, Any] | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    stream: OutputStream | None = None,
    opened: tuple[Reservation, LLMRequest] | None = None,
    output_cap: int | None = None,
    output_schema: dict[str, Any] | None = None,
    allow_truncation: bool = False,
    params: dict[str, Any] | None = None,
    fallbacks: list[str] | None = None,
) -> LLMResponse:
    """Send one request within the budget, retrying transient failures; return the response.

    With ``stream``, the request asks the client for the text as it comes
    (``LLMRequest.on_text``); every attempt starts a new ``call`` of the stream.
    ``opened`` is the first attempt's reservation and request, made beforehand
    by ``open_request`` with the same arguments (a parallel group's preparation).
    A call whose output cap does not fit beside the calls in flight waits for
    them to commit. An answer cut at the output cap (``finish_reason``
    ``length``) is an ``output_truncated`` event and, unless
    ``allow_truncation``, a ``RunError`` (code ``output_truncated``).
    """
    opts = run.options
    retries = opts.retries if retries is None else retries
    timeout = timeout if timeout is not None else opts.timeout
    step_name = label or key
    attempt = 1
    while True:
        if opened is not None:
            (reservation, request), opened = opened, None
        else:
            while True:
                try:
                    reservation, request = open_request(
                        run,
                        model=model,
                        messages=messages,
                        step_name=step_name,
                        role=role,
                        round_=round_,
                        tools=tools,
                        response_format=response_format,
                        timeout=timeout,
                        output_cap=output_cap,
                        output_schema=output_schema,
                        params=params,
                        fallbacks=fallbacks,
                    )
                    break
                except WaitForRoom:
                    await run.budget.room_freed()
        if stream is not None:
            request.on_text = stream.begin()
        started = time.perf_counter()
        try:
            if timeout is None:
                response = await run.llm.complete(request)
            else:
                try:
                    async with asyncio.timeout(timeout):
                        response = await run.llm.complete(request)
                except TimeoutError:
                    raise TransientProviderError(
                        f"the model did not answer within {timeout:g}s", step=label or key
                    ) from None
        except ProviderError as exc:
            run.budget.release(reservation)
            will_retry = exc.retryable and attempt <= retries
            run.emit(
                StepFailed(
                    key=key,
                    label=label,
                    kind=kind,  # type: ignore[arg-type]
                    round=round_,
                    error=exc.message,
                    code=exc.code,
                    duration_ms=(time.perf_counter() - started) * 1000,
                    attempt=attempt,
                    will_retry=will_retry,
                )
            )
            if not will_retry:
                raise
            after = getattr(exc, "retry_after", None)
            delay = (
                min(after, opts.retry_max_delay)
                if after is not None
                else min(opts.retry_base_delay * 2 ** (attempt - 1), opts.retry_max_delay)
                * (1 + random.random() * 0.1)
            )
            await asyncio.sleep(delay)
            attempt += 1
            continue
        except BaseException:
            run.budget.release(reservation)
            raise
        finally:
            if stream is not None:
                stream.end()
        run.requests += 1
        try:
            run.budget.commit(reservation, response.tokens, response.cost, step=label or key)
        finally:
            run.flush_warnings()
        if response.finish_reason == "length":
            error: RunError | None = None
            if not allow_truncation:
                error = (
                    # The rest of the budget was this answer's cap: it ran out mid-answer.
                    run.budget.cut_short(reservation, step_name)
                    if reservation.limited_by is not None
                    else truncation_error(request, key, label, kind, output_cap)
                )
            truncated(run, request, response, key, label, kind, round_, error)
            if error is not None:
                raise error
        return response


def truncated(
    run: Run,
    request: LLMRequest,
    response: LLMResponse,
    key: str,
    label: str | None,
    kind: str,
    round_: int,
    error: RunError | None,
) -> None:
    """Report an answer cut at its output cap (``output_truncated``), and the step's
    failure (``step_failed``) when it does not accept the cut answer (``error``)."""
    run.emit(
        OutputTruncated(
            key=key,
            label=label,
            kind=kind,  # type: ignore[arg-type]
            round=round_,
            limit=request.max_output_tokens,
            output_tokens=response.tokens.down,
            allowed=error is None,
        )
    )
    if error is not None:
        run.emit(
            StepFailed(
                key=key,
                label=label,
                kind=kind,  # type: ignore[arg-type]
                round=round_,
                error=error.message,
                code=error.code,
            )
        )


def truncation_error(
    request: LLMRequest, key: str, label: str | None, kind: str, output_cap: int | None
) -> RunError:
    """Return the error of an answer cut at its cap, saying how to allow a longer one."""
    name = label or key
    cap = request.max_output_tokens
    if cap is None:
        where = "the model's own output limit (no max_tokens was sent)"
        fix = "ask for a shorter answer"
    elif output_cap is not None:
        where = f"maxOutputTokens ({cap} tokens)"
        fix = "raise maxOutputTokens on the step"
    elif kind == "agent":
        where = f"the output cap of {cap} tokens the budget reserved"
        fix = "set maxOutputTokens on the step to reserve room for a longer answer"
    else:  # a checker's or planner's cap comes from the budget alone
        where = f"the output cap of {cap} tokens the budget reserved"
        fix = "ask for a shorter answer"
    if kind == "agent":
        fix += ", or set allowTruncation: true to accept a cut answer"
    return RunError(
        f"{name}: the answer was cut at {where} (finish_reason 'length'); {fix}",
        step=name,
        code="output_truncated",
    )


class OutputStream:
    """Turns an agent step's streamed text into coalesced ``step_output`` events.

    A piece of text is emitted at once when the last event of the step is
    ``INTERVAL`` seconds old or ``MAX_CHARS`` are waiting; otherwise a timer
    emits what waits when the interval is up, so a sink sees at most about one
    event per interval (or per ``MAX_CHARS``) per step and no text waits longer.
    ``end()`` emits the rest when the model call returns (or fails).

    Once a secret has been resolved in this process, each flush redacts the
    call's whole text so far and holds back its last characters (the longest
    secret's length, less one), so a secret split across two pieces is never
    emitted unmasked; ``chars`` counts the (redacted) characters emitted.
    """

    INTERVAL = 0.1
    MAX_CHARS = 200

    __slots__ = (
        "_last",
        "_pending",
        "_raw",
        "_sent",
        "_size",
        "_timer",
        "call",
        "chars",
        "key",
        "label",
        "round",
        "run",
    )

    def __init__(self, run: Run, key: str, label: str | None, round_: int) -> None:
        self.run = run
        self.key = key
        self.label = label
        self.round = round_
        self.call = 0
        self.chars = 0
        self._pending: list[str] = []
        self._raw: list[str] = []  # the call's text so far
        self._sent = 0
        self._size = 0
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def begin(self) -> Callable[[str], None]:
        """Start a model call's text (a new ``call``); return the ``on_text`` callback."""
        self.call += 1
        self.chars = self._sent = 0
        self._pending, self._raw, self._size = [], [], 0
        self._last = 0.0
        return self.add

    def add(self, text: str) -> None:
        self._pending.append(text)
        self._size += len(text)
        if self._timer is not None:
            if self._size >= self.MAX_CHARS:
                self.flush()
            return
        wait = self._last + self.INTERVAL - time.monotonic()
        if wait <= 0 or self._size >= self.MAX_CHARS:
            self.flush()
        else:
            self._timer = asyncio.get_running_loop().call_later(wait, self.flush)

    def flush(self, final: bool = False) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending and not (final and self._raw):
            return
        text = "".join(self._pending)
        self._pending, self._size = [], 0
        self._raw.append(text)
        values = getattr(secrets.REGISTRY, "_values", None)
        if values:
            whole = secrets.redact("".join(self._raw))
            end = len(whole) if final else len(whole) - (max(map(len, values)) - 1)
            if end <= self._sent:
                return
            text, self._sent = whole[self._sent : end], end
        else:
            self._sent += len(text)
        if not text:
            return
        self.chars += len(text)
        self._last = time.monotonic()
        self.run.emit(
            StepOutput(
                key=self.key,
                label=self.label,
                round=self.round,
                call=self.call,
                text=text,
                chars=self.chars,
            )
        )

    def end(self) -> None:
        self.flush(final=True)


def maker_messages(run: Run, step: spec.AgentStep, prompt: str, key: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    agent = run.subagent(step.subagent)
    if agent is not None and agent.prompt:
        messages.append(
            {"role": "system", "content": render(run, agent.prompt, key, "subagent prompt")}
        )
    name = step.label or key
    ctx = run.ctx
    if name in run.makers:  # what the checker is shown as the maker's instruction
        ctx.instructions[name] = prompt
    schema = _schema(step)
    if schema is not None:
        what = "object" if schema.get("type", "object") == "object" else "value"
        prompt += f"\n\nAnswer with one JSON {what} matching this JSON Schema:\n" + json.dumps(
            schema
        )
    if ctx.round > 1 and name in run.makers and ctx.feedback:
        previous = run.previous_output(name)
        if not uses_feedback(step.prompt):  # else the template has shown it already
            note = ctx.feedback_note
            if note is None:  # the same for every maker of the round: built once
                note = ctx.feedback_note = (
                    f"\n\nA reviewer rejected the previous answer (round {ctx.round - 1}). "
                    f"Address every issue:\n{ctx.feedback}"
                )
            prompt += note
        if previous:
            prompt += f"\n\nYour previous answer:\n{previous}"
    messages.append({"role": "user", "content": prompt})
    return messages


def uses_feedback(source: str) -> bool:
    """Return whether a prompt template reads ``feedback`` itself."""
    return bool(getattr(_template(source), "loopkit_uses_feedback", False))


async def run_tool_calls(
    run: Run, key: str, label: str | None, response: LLMResponse, by_name: dict[str, Tool]
) -> list[dict[str, Any]]:
    """Run a response's tool calls in order; return the messages that carry them and their results.

    Each call is announced as a ``tool_called`` event with its arguments redacted.
    """
    messages: list[dict[str, Any]] = [
        {
            "role": "assistant",
            "content": response.content or None,
            "tool_calls": [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {
                        "name": c.name,
                        "arguments": c.raw_arguments or json.dumps(c.arguments),
                    },
                }
                for c in response.tool_calls
            ],
        }
    ]
    for call in response.tool_calls:
        run.cancel.raise_if_cancelled()
        started = time.perf_counter()
        outcome = await run_tool(by_name.get(call.name), call.name, call.arguments)
        run.emit(
            ToolCalled(
                key=key,
                label=label,
                name=call.name,
                arguments=secrets.redact(call.arguments),
                result=summary(outcome),
                is_error=outcome.is_error,
                duration_ms=(time.perf_counter() - started) * 1000,
            )
        )
        messages.append({"role": "tool", "tool_call_id": call.id, "content": outcome.content})
    return messages


async def run_tool(tool: Tool | None, name: str, arguments: dict[str, Any]) -> ToolResult:
    if tool is None:
        return ToolResult(content=f"unknown tool '{name}'", is_error=True)
    try:
        return await tool.call(arguments)
    except (TypeError, ValueError) as exc:
        return ToolResult(content=f"the tool refused its arguments: {exc}", is_error=True)


class AgentCall:
    """An agent step prepared for its model call: what ``prepare_agent`` worked out."""

    __slots__ = (
        "key",
        "label",
        "messages",
        "model",
        "name",
        "opened",
        "round",
        "started",
        "step",
    )

    def __init__(
        self,
        step: spec.AgentStep,
        key: str,
        round_: int,
        model: str,
        messages: list[dict[str, Any]],
    ) -> None:
        self.step = step
        self.key = key
        self.label = step.label
        self.name = step.label or key
        self.round = round_
        self.model = model
        self.messages = messages
        #: The first model call's reservation and request, when made beforehand.
        self.opened: tuple[Reservation, LLMRequest] | None = None
        self.started = time.perf_counter()


def prepare_agent(
    run: Run, step: spec.AgentStep, key: str, round_: int, *, open_call: bool = False
) -> AgentCall | StepResult:
    """Get an agent step ready to call its model: model, prompt, messages, ``step_started``.

    Synchronous, so that a parallel group prepares its members one after the
    other in a tight loop; with ``open_call`` (and no tool provider, whose
    tools the request would need), the first call's budget is reserved and
    its request built here too, and the caller delivers ``step_started``
    (``Run.deliver_announced``) once the calls have started. Returns the
    step's result instead when there is nothing to call: an earlier round's
    answer (only makers run again) or a checkpoint of a resumed run.
    """
    name = step.label or key
    if round_ > 1 and name not in run.makers:
        # Only makers run again in later rounds; other steps keep their answer.
        previous = run.ctx.results.get(name)
        if previous is not None:
            return previous
    if run.checkpoints:  # nothing to resume in a fresh run: no key to build before the call
        checkpoint = run.checkpoints.get(f"r{round_}:{key}")
        if checkpoint is not None:
            result = run.resume_step(checkpoint, key, "agent", round_)
            if isinstance(step.output, spec.OutputSchema):
                # The checkpoint keeps the parsed answer as JSON text: the same value again
                # (a checkpoint from before answers were parsed stays text).
                with contextlib.suppress(ValueError):
                    result.value, result.structured = json.loads(result.output), True
                    run.ctx.record(result)
            return result

    pinned = run.pinned_output(key, step.label)
    if pinned is not None:
        structured = isinstance(step.output, spec.OutputSchema)
        return run.pin_step(key, step.label, pinned, round_, structured=structured)

    run.cancel.raise_if_cancelled()
    agent = run.subagent(step.subagent)
    model = run.model_for(step.model or (agent.model if agent else None))
    messages = maker_messages(run, step, render(run, step.prompt, key), key)
    # The prompt as sent (already rendered), redacted here: step_started skips redaction.
    prompt = redact_text(messages[-1]["content"])
    run.announce_step(key, step.label, round_, model, later=open_call, prompt=prompt)
    call = AgentCall(step, key, round_, model, messages)
    if open_call and run.tool_provider is None:
        schema = _schema(step)
        with contextlib.suppress(WaitForRoom):  # then its call waits in ``call_model``
            call.opened = open_request(
                run,
                model=model,
                messages=messages,
                step_name=call.name,
                role=_role(run, call.name),
                round_=round_,
                response_format=_response_format(schema),
                timeout=_timeout(run, step),
                output_cap=step.max_output_tokens,
                output_schema=schema,
                params=_params(step),
                fallbacks=step.fallbacks,
            )
    return call


def check_output(name: str, schema: dict[str, Any], text: str) -> tuple[Any, str | None]:
    """Return an answer's parsed value and ``None``, or ``None`` and what is wrong with it."""
    try:
        return structured.check(text, schema)
    except structured.BadSchema as exc:
        raise RunError(
            f"{name}: the step's output schema is not a valid JSON Schema: {exc}",
            step=name,
            code="invalid_schema",
        ) from None


def _params(step: spec.AgentStep) -> dict[str, Any]:
    """Return the step's provider parameters by their snake_case names."""
    return step.params.model_dump(exclude_none=True) if step.params else {}


def _schema(step: spec.AgentStep) -> dict[str, Any] | None:
    return step.output.json_schema if isinstance(step.output, spec.OutputSchema) else None


def _response_format(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """JSON mode for a schema whose answer is an object (JSON mode answers objects only)."""
    if schema is None or schema.get("type", "object") != "object":
        return None
    return {"type": "json_object"}


def tool_round_limit(run: Run, own: int | None, subagent: str | None) -> int:
    """Return how many tool rounds a step or checker may run: its own limit, else its
    subagent's, else the engine's."""
    if own is not None:
        return own
    agent = run.subagent(subagent)
    if agent is not None and agent.max_tool_rounds is not None:
        return agent.max_tool_rounds
    return run.options.max_tool_iterations


def tool_rounds_exceeded(who: str, step: str, limit: int, where: str) -> RunError:
    """Return the error of a model still calling tools after ``limit`` rounds; ``where`` to fix it."""
    return RunError(
        f"{who} kept calling tools after {limit} tool round{'s' if limit != 1 else ''} "
        f"(raise maxToolRounds on {where}, or narrow its tools)",
        step=step,
        code="tool_iterations",
    )


def _role(run: Run, name: str) -> Role:
    return "maker" if name in run.makers else "agent"


def _timeout(run: Run, step: spec.AgentStep) -> float | None:
    return float(step.timeout) if step.timeout is not None else run.options.timeout


async def run_agent(run: Run, step: spec.AgentStep, key: str, round_: int) -> StepResult:
    """Run one agent step (or answer it from its checkpoint) and record its result."""
    prepared = prepare_agent(run, step, key, round_)
    if isinstance(prepared, StepResult):
        return prepared
    return await complete_agent(run, prepared)


async def complete_agent(run: Run, call: AgentCall) -> StepResult:
    """Ask the model for a prepared step (a tool-use loop), then record, checkpoint, announce."""
    step, key, label, name, round_ = call.step, call.key, call.label, call.name, call.round
    model, messages = call.model, call.messages
    provider = run.tool_provider
    by_name: dict[str, Tool] = {}
    schemas: list[dict[str, Any]] = []
    if provider:
        tools = await provider.tools_for(step, run.loop)
        extra = await provider.instructions_for(step, run.loop)
        if extra:
            if messages[0]["role"] == "system":
                messages[0] = {"role": "system", "content": f"{messages[0]['content']}\n\n{extra}"}
            else:
                messages.insert(0, {"role": "system", "content": extra})
        by_name = {t.name: t for t in tools}
        schemas = [t.openai_schema() for t in tools]
    schema = _schema(step)
    retries = step.retries if step.retries is not None else run.options.retries

    started = call.started
    tokens, cost, requests = Tokens(), 0.0, 0
    cost_total: float | None = cost
    iteration = 0
    max_rounds = tool_round_limit(run, step.max_tool_rounds, step.subagent)
    stream = OutputStream(run, key, label, round_) if run.stream_output else None
    answers = 1
    while True:
        opened, call.opened = call.opened, None
        response = await call_model(
            run,
            model=model,
            messages=messages,
            key=key,
            label=label,
            role=_role(run, name),
            round_=round_,
            tools=schemas,
            response_format=None if schemas else _response_format(schema),
            timeout=_timeout(run, step),
            retries=step.retries,
            stream=stream,
            opened=opened,
            output_cap=step.max_output_tokens,
            output_schema=schema,
            allow_truncation=bool(step.allow_truncation),
            params=_params(step),
            fallbacks=step.fallbacks,
        )
        requests += 1
        tokens.add(response.tokens)
        cost_total = add_cost(cost_total, response.cost)
        if response.tool_calls:
            iteration += 1
            if iteration > max_rounds:
                where = "the step"
                if step.max_tool_rounds is None and step.subagent:
                    where = f"the step or on its subagent '{step.subagent}'"
                raise tool_rounds_exceeded(f"{name}: the model", name, max_rounds, where)
            messages += await run_tool_calls(run, key, label, response, by_name)
            continue
        if schema is None:
            break
        value, problem = check_output(name, schema, response.content)
        if problem is None:
            break
        # A model's mistake: shown to it with the schema's complaint, up to the step's retries.
        will_retry = answers <= retries
        error = f"{name}: the answer does not match the step's output schema: {problem}"
        run.emit(
            StepFailed(
                key=key,
                label=label,
                kind="agent",
                round=round_,
                error=error,
                code="invalid_output",
                duration_ms=(time.perf_counter() - started) * 1000,
                attempt=answers,
                will_retry=will_retry,
            )
        )
        if not will_retry:
            raise RunError(
                f"{error} (after {answers} answer{'s' if answers != 1 else ''})",
                step=name,
                code="invalid_output",
            )
        messages += [
            {"role": "assistant", "content": response.content},
            {
                "role": "user",
                "content": "Your answer does not match the JSON Schema: "
                f"{problem}\nAnswer again with only the corrected JSON.",
            },
        ]
        answers += 1

    # A resolved secret never reaches checkpoints, memory or later prompts.
    if schema is None:
        result = StepResult(key=key, label=label, output=redact_text(response.content))
    else:
        value = redact_value(value)
        result = StepResult(
            key=key,
            label=label,
            output=json.dumps(value, ensure_ascii=False),
            value=value,
            structured=True,
        )
    result.tokens, result.cost, result.requests, result.round = tokens, cost_total, requests, round_
    result.duration_ms = (time.perf_counter() - started) * 1000
    run.ctx.record(result)
    run.agent_runs += 1
    if run.store is not None:
        await run.save_checkpoint(
            Checkpoint(
                key=f"r{round_}:{key}",
                label=label,
                output=result.output,
                tokens=tokens.as_dict(),
                cost=cost_total,
                duration_ms=result.duration_ms,
                requests=requests,
            )
        )
    run.emit(
        StepFinished(
            key=key,
            label=label,
            kind="agent",
            round=round_,
            model=model,
            tokens=tokens,
            cost=cost_total,
            duration_ms=result.duration_ms,
            output=result.output,
            agents=1,
            structured=result.structured,
        )
    )
    return result

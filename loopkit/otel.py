"""A run as an OpenTelemetry trace, by the GenAI semantic conventions.

Imported only when tracing is on (``loopkit.tracing``). One process has one
``TracerProvider`` of its own (never the global one: other libraries' spans
are not mixed in), exporting through a ``BatchSpanProcessor`` to the OTLP/HTTP
exporter, which reads the standard variables itself (endpoint, headers,
timeout, compression, certificates; ``OTEL_BSP_*`` tune the batches,
``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` the resource,
``OTEL_TRACES_SAMPLER`` the sampling).

A run's spans (the attribute names are the GenAI conventions of semconv
``loopkit.genai.SEMCONV_VERSION``, taken from ``opentelemetry-semantic-conventions``)::

    invoke_workflow {loop}                 the run (one execution segment)
      invoke_agent {step}                  an agent step (a plan step's planner too)
        chat {model}                       one model call (retries are calls too)
        execute_tool {tool}                a tool call of the step's tool-use loop
      execute_tool {tool}                  a tool step's call
      verification round {n}               one Maker/Checker round, with its verdict
        execute_tool {tool}                a verify.checks tool check
        invoke_agent {checker}
          chat {model}

Every span is started with its parent passed explicitly (never the
process's "current span"), from state kept per run (``RunTracer``), so the
many concurrent runs of a web worker's event loop never cross. Spans are
built from the run's events (``RunTracer`` is a sink) and from the model
calls themselves (``TracedLLM`` wraps the run's client): a model call starts
before its step's ``step_started`` event is delivered, so whichever comes
first opens the step's span.

A run that suspends (an approval gate that parks it) ends its trace there;
its resume is a new trace whose ``invoke_workflow`` span has the same
``loopkit.run.id`` (and ``gen_ai.conversation.id``) and
``loopkit.run.resumed`` true. Steps the resume answers from checkpoints get
no spans (no work was done again).

Prompts and answers are recorded only when
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` is true, as the
``gen_ai.system_instructions``, ``gen_ai.input.messages`` and
``gen_ai.output.messages`` attributes (and tool arguments and results as
``gen_ai.tool.call.arguments`` / ``gen_ai.tool.call.result``), with every
known secret masked (``loopkit.secrets``). Error messages are never
recorded, only their type (``error.type``): a provider's error may quote a key.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

import loopkit
from loopkit import genai, secrets
from loopkit.engine.events import (
    ApprovalRequested,
    ApprovalResolved,
    BudgetWarning,
    Event,
    RunFinished,
    RunStarted,
    RunSuspended,
    StepFailed,
    StepFinished,
    StepStarted,
    ToolCalled,
    VerificationRound,
)
from loopkit.errors import ConfigError
from loopkit.llm import LLM, LLMRequest, LLMResponse, ToolCall
from loopkit.providers import PREFIX, is_reference
from loopkit.sinks import Sink
from loopkit.tracing import ENDPOINT_VARIABLES

#: The variable that lets prompts and answers into spans (``true``; default off).
CAPTURE_VARIABLE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
#: The values of ``CAPTURE_VARIABLE`` that turn capture on (the newer instrumentations'
#: ``SPAN_ONLY`` / ``SPAN_AND_EVENT`` too: LoopKit records content on spans).
CAPTURE_ON = frozenset({"true", "1", "yes", "span_only", "span_and_event"})
PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
_lock = threading.Lock()
_provider: TracerProvider | None = None
_tracer: Tracer | None = None
_pid = 0


class HashedResource(Resource):
    """A ``Resource`` that computes its hash once.

    The OTLP exporter groups every span it encodes by resource, hashing the
    span's resource each time, and the SDK's ``Resource.__hash__`` serialises
    all its attributes to JSON on each call: with a few spans per model call
    that was a measurable share of tracing's cost. A resource never changes
    after it is made, so its hash can be kept.
    """

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource.attributes, resource.schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or super().__eq__(other)


def capture_content() -> bool:
    """Return whether prompts and answers go into spans (``CAPTURE_VARIABLE``)."""
    return os.environ.get(CAPTURE_VARIABLE, "").strip().lower() in CAPTURE_ON


def check_protocol() -> None:
    """Raise ``ConfigError`` unless the protocol is ``http/protobuf`` and the endpoint a URL."""
    for name in PROTOCOL_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            if value.lower() != "http/protobuf":
                raise ConfigError(
                    f"{name}={value} is not supported: LoopKit exports traces over OTLP/HTTP "
                    f"with protobuf; set {name}=http/protobuf (or unset it) and point "
                    "OTEL_EXPORTER_OTLP_ENDPOINT at the collector's HTTP port (usually 4318)"
                )
            break
    for name in ENDPOINT_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            if not value.lower().startswith(("http://", "https://")):
                raise ConfigError(
                    f"{name}={value} is not a URL: give the collector's OTLP/HTTP address "
                    f"with its scheme, e.g. {name}=http://localhost:4318"
                )
            return


def provider() -> TracerProvider:
    """Return this process's tracer provider, made on first use (again in a forked child)."""
    global _provider, _tracer, _pid
    with _lock:
        if _provider is None or _pid != os.getpid():
            check_protocol()
            resource = Resource.create({SERVICE_VERSION: loopkit.__version__})
            if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
                resource = resource.merge(Resource({SERVICE_NAME: "loopkit"}))
            made = TracerProvider(resource=HashedResource(resource))
            made.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            _provider, _tracer, _pid = made, None, os.getpid()
        return _provider


def tracer() -> Tracer:
    """Return LoopKit's tracer (instrumentation scope ``loopkit``, the semconv schema URL),
    one per provider (the SDK makes a new one, reading its variables again, on each ask)."""
    global _tracer
    made = provider()
    with _lock:
        if _tracer is None:
            _tracer = made.get_tracer("loopkit", loopkit.__version__, schema_url=genai.SCHEMA_URL)
        return _tracer


def flush(timeout_s: float = 10.0) -> None:
    """Export what the batch processor holds, waiting up to ``timeout_s`` seconds."""
    if _provider is not None:
        _provider.force_flush(int(timeout_s * 1000))


def shutdown() -> None:
    """Flush and stop the exporter; a later run makes a new provider."""
    global _provider, _tracer
    with _lock:
        made, _provider, _tracer = _provider, None, None
    if made is not None:
        made.shutdown()


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


def _fail(span: Span, error_type: str) -> None:
    span.set_attribute(ERROR_TYPE, error_type)
    span.set_status(Status(StatusCode.ERROR))


class RunTracer(Sink):
    """The spans of one run: a sink for its events, and the state ``TracedLLM`` parents to.

    Used from the run's event-loop thread only (events and model calls both
    happen there), so it needs no lock.
    """

    def __init__(self, tracer_: Tracer, capture: bool | None = None) -> None:
        self.tracer = tracer_
        self.capture = capture_content() if capture is None else capture
        self.root: Span | None = None
        self.loop_name = ""
        #: Open agent spans by (step name, round); a checker's name is ``verify:NAME``.
        self.agents: dict[tuple[str, int], Span] = {}
        #: The latest agent span of each step name (tool calls carry no round).
        self.latest: dict[str, Span] = {}
        #: Open verification round spans by round.
        self.rounds: dict[int, Span] = {}
        #: Tool calls a model asked for, by step name, until their ``tool_called`` events.
        self.calls: dict[str, list[ToolCall]] = {}
        self.round = 1
        self.resumed: set[tuple[str, int]] = set()

    def wrap(self, llm: LLM) -> LLM:
        """Return ``llm`` with a ``chat`` span around each call."""
        return TracedLLM(llm, self)

    # ── Spans ───────────────────────────────────────────────────────────

    def _start(
        self,
        name: str,
        parent: Span | None,
        attributes: dict[str, Any],
        at: float | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> Span:
        context = trace.set_span_in_context(parent) if parent is not None else None
        return self.tracer.start_span(
            name,
            context=context,
            kind=kind,
            attributes=attributes,
            start_time=_ns(at) if at is not None else None,
        )

    def workflow(self, at: float | None = None) -> Span:
        """Return the run's ``invoke_workflow`` span, started now (or at ``at``) if need be."""
        if self.root is None:
            self.root = self._start(
                f"invoke_workflow {self.loop_name}".rstrip(),
                None,
                {gen_ai.GEN_AI_OPERATION_NAME: "invoke_workflow"},
                at,
            )
        return self.root

    def agent(self, name: str, round_: int, at: float | None = None, checker: bool = False) -> Span:
        """Return the open ``invoke_agent`` span of step ``name`` in ``round_``, starting it."""
        key = (f"verify:{name}" if checker else name, round_)
        span = self.agents.get(key)
        if span is None:
            parent = self.verification(round_) if checker else self.workflow()
            span = self._start(
                f"invoke_agent {name}",
                parent,
                {
                    gen_ai.GEN_AI_OPERATION_NAME: "invoke_agent",
                    gen_ai.GEN_AI_AGENT_NAME: name,
                    "loopkit.step.round": round_,
                },
                at,
            )
            self.agents[key] = span
            self.latest[name] = span
        return span

    def verification(self, round_: int, at: float | None = None) -> Span:
        """Return the open span of verification round ``round_``, starting it."""
        span = self.rounds.get(round_)
        if span is None:
            span = self.rounds[round_] = self._start(
                f"verification round {round_}",
                self.workflow(),
                {"loopkit.verification.round": round_},
                at,
            )
        return span

    def _end_agent(self, key: tuple[str, int], at: float) -> Span | None:
        span = self.agents.pop(key, None)
        if span is not None:
            span.end(_ns(at))
        return span

    # ── Model calls (from TracedLLM) ────────────────────────────────────

    def start_chat(self, request: LLMRequest, model: str, provider_: str) -> Span:
        parent = self.agent(
            request.step or "agent", request.round, checker=request.role == "checker"
        )
        attributes: dict[str, Any] = {
            gen_ai.GEN_AI_OPERATION_NAME: "chat",
            gen_ai.GEN_AI_PROVIDER_NAME: provider_,
            gen_ai.GEN_AI_REQUEST_MODEL: model,
        }
        if request.on_text is not None:
            attributes[gen_ai.GEN_AI_REQUEST_STREAM] = True
        if request.max_output_tokens is not None:
            attributes[gen_ai.GEN_AI_REQUEST_MAX_TOKENS] = request.max_output_tokens
        if request.response_format is not None or request.output_schema is not None:
            attributes[gen_ai.GEN_AI_OUTPUT_TYPE] = "json"
        for param, name in genai.PARAMS.items():
            value = request.params.get(param)
            if isinstance(value, int | float) and not isinstance(value, bool):
                attributes[name] = value
        stop = request.params.get("stop")
        if stop:
            attributes[gen_ai.GEN_AI_REQUEST_STOP_SEQUENCES] = (
                [stop] if isinstance(stop, str) else [str(s) for s in stop]
            )
        if request.fallbacks:
            attributes["loopkit.request.fallbacks"] = list(request.fallbacks)
        if self.capture:
            system, chat = genai.input_messages(request.messages)
            if system:
                attributes[gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS] = genai.as_json(system)
            attributes[gen_ai.GEN_AI_INPUT_MESSAGES] = genai.as_json(chat)
        return self._start(f"chat {model}", parent, attributes, kind=SpanKind.CLIENT)

    def end_chat(
        self,
        span: Span,
        request: LLMRequest,
        response: LLMResponse | None,
        error: BaseException | None,
    ) -> None:
        if response is not None:
            attributes: dict[str, Any] = genai.usage(response.tokens)
            if response.model:
                attributes[gen_ai.GEN_AI_RESPONSE_MODEL] = response.model
            if response.finish_reason:
                attributes[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] = [response.finish_reason]
            if response.cost is not None:
                attributes["loopkit.cost_usd"] = response.cost
            if response.tool_calls:
                self.calls.setdefault(request.step or "agent", []).extend(response.tool_calls)
            if self.capture:
                attributes[gen_ai.GEN_AI_OUTPUT_MESSAGES] = genai.as_json(
                    genai.output_messages(response)
                )
            span.set_attributes(attributes)
        elif error is not None:
            status = getattr(error, "status_code", None)
            _fail(span, str(status) if status else type(error).__name__)
        span.end()

    # ── Events ──────────────────────────────────────────────────────────

    def emit(self, event: Event) -> None:
        handler = getattr(self, f"_on_{event.type}", None)
        if handler is not None:
            handler(event)

    def _on_run_started(self, e: RunStarted) -> None:
        self.loop_name = e.loop
        root = self.workflow(e.at)
        root.update_name(f"invoke_workflow {e.loop}")
        root.set_attributes(
            {
                gen_ai.GEN_AI_WORKFLOW_NAME: e.loop,
                gen_ai.GEN_AI_CONVERSATION_ID: e.run_id,
                "loopkit.run.id": e.run_id,
                "loopkit.run.dry_run": e.dry_run,
                "loopkit.run.resumed": e.resumed,
            }
        )
        if e.config:
            root.set_attribute("loopkit.loop.config", e.config)

    def _on_step_started(self, e: StepStarted) -> None:
        self.round = e.round
        name = e.label or e.key
        if e.resumed:
            self.resumed.add((name, e.round))
            return
        if e.kind not in ("agent", "plan"):
            return
        attributes = {"loopkit.step.key": e.key, "loopkit.step.kind": e.kind}
        if e.model:
            attributes[gen_ai.GEN_AI_REQUEST_MODEL] = e.model
        self.agent(name, e.round, e.at).set_attributes(attributes)

    def _on_step_finished(self, e: StepFinished) -> None:
        name = e.label or e.key
        if (name, e.round) in self.resumed or e.kind not in ("agent", "plan"):
            return
        span = self.agents.get((name, e.round))
        if span is None:
            return
        attributes: dict[str, Any] = genai.usage(e.tokens)
        if e.cost is not None:
            attributes["loopkit.cost_usd"] = e.cost
        span.set_attributes(attributes)
        self._end_agent((name, e.round), e.at)

    def _on_step_failed(self, e: StepFailed) -> None:
        if e.will_retry:
            return
        name = e.label or e.key
        key = (f"verify:{name}", e.round) if e.kind == "checker" else (name, e.round)
        span = self.agents.get(key)
        if span is not None:
            _fail(span, e.code)
            self._end_agent(key, e.at)

    def _on_tool_called(self, e: ToolCalled) -> None:
        name = e.label or e.key
        parent = self.latest.get(name)
        if parent is None or not parent.is_recording():
            parent = self.verification(self.round) if e.key.startswith("verify.") else None
        attributes: dict[str, Any] = {
            gen_ai.GEN_AI_OPERATION_NAME: "execute_tool",
            gen_ai.GEN_AI_TOOL_NAME: e.name,
            gen_ai.GEN_AI_TOOL_TYPE: "function",
        }
        waiting = self.calls.get(name) or []
        for index, call in enumerate(waiting):
            if call.name == e.name:
                attributes[gen_ai.GEN_AI_TOOL_CALL_ID] = call.id
                del waiting[index]
                break
        if self.capture and not e.dry_run:
            attributes[gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS] = genai.as_json(e.arguments)
            attributes[gen_ai.GEN_AI_TOOL_CALL_RESULT] = secrets.redact(e.result)
        if e.dry_run:
            attributes["loopkit.tool.dry_run"] = True
        span = self._start(
            f"execute_tool {e.name}",
            parent or self.workflow(),
            attributes,
            e.at - e.duration_ms / 1000.0,
        )
        if e.is_error:
            _fail(span, "tool_error")
        span.end(_ns(e.at))

    def _on_verification_round(self, e: VerificationRound) -> None:
        if e.resumed:
            return
        span = self.verification(e.round, e.at - e.duration_ms / 1000.0)
        label = "skipped" if e.skipped else ("pass" if e.passed else "fail")
        attributes: dict[str, Any] = {
            gen_ai.GEN_AI_EVALUATION_NAME: e.checker,
            gen_ai.GEN_AI_EVALUATION_SCORE_LABEL: label,
            "loopkit.verification.max_rounds": e.max_rounds,
            "loopkit.verification.passed": e.passed,
            "loopkit.verification.issues": len(e.issues),
            "loopkit.verification.will_retry": e.will_retry,
            "loopkit.verification.stalled": e.stalled,
            "loopkit.verification.skipped": e.skipped,
        }
        if e.score is not None:
            attributes[gen_ai.GEN_AI_EVALUATION_SCORE_VALUE] = e.score
        if self.capture and e.reason:
            attributes[gen_ai.GEN_AI_EVALUATION_EXPLANATION] = secrets.redact(e.reason)
        # The conventions' evaluation result is an event: backends that read it find it too.
        span.add_event(
            "gen_ai.evaluation.result",
            {k: v for k, v in attributes.items() if k.startswith("gen_ai.")},
            _ns(e.at),
        )
        span.set_attributes({**attributes, **genai.usage(e.tokens)})
        for key in [k for k in self.agents if k[1] == e.round and k[0].startswith("verify:")]:
            self._end_agent(key, e.at)
        self.rounds.pop(e.round, None)
        span.end(_ns(e.at))

    def _on_budget_warning(self, e: BudgetWarning) -> None:
        self.workflow().add_event(
            "loopkit.budget_warning",
            {"loopkit.budget.limit": e.limit, "loopkit.budget.observed": e.observed or 0.0},
            _ns(e.at),
        )

    def _on_approval_requested(self, e: ApprovalRequested) -> None:
        self.workflow().add_event(
            "loopkit.approval_requested", {"loopkit.step.key": e.key}, _ns(e.at)
        )

    def _on_approval_resolved(self, e: ApprovalResolved) -> None:
        self.workflow().add_event(
            "loopkit.approval_resolved",
            {"loopkit.step.key": e.key, "loopkit.approval.approved": e.approved},
            _ns(e.at),
        )

    def _on_run_suspended(self, e: RunSuspended) -> None:
        self.workflow().set_attributes(
            {"loopkit.run.status": "suspended", "loopkit.run.suspended_at": e.key}
        )
        self._end_all(e.at)

    def _on_run_finished(self, e: RunFinished) -> None:
        root = self.workflow()
        attributes: dict[str, Any] = {
            "loopkit.run.status": e.status,
            "loopkit.run.tokens": e.tokens.total,
            "loopkit.run.requests": e.requests,
            "loopkit.run.steps": e.steps,
            "loopkit.run.rounds": e.rounds,
            **genai.usage(e.tokens),
        }
        if e.cost_known and e.cost is not None:
            attributes["loopkit.run.cost_usd"] = e.cost
        if e.verification:
            attributes["loopkit.verification.outcome"] = e.verification
        root.set_attributes(attributes)
        if e.status != "succeeded":
            _fail(root, e.error_code or e.status)
        self._end_all(e.at)

    def _end_all(self, at: float) -> None:
        """End every open span (the run is over or suspended), the run's last."""
        for key in list(self.agents):
            self._end_agent(key, at)
        for span in self.rounds.values():
            span.end(_ns(at))
        self.rounds.clear()
        if self.root is not None:
            self.root.end(_ns(at))
            self.root = None

    def close(self) -> None:
        self._end_all(time.time())


class TracedLLM(LLM):
    """A client that wraps another with a ``chat`` span per call (see ``RunTracer``).

    Everything else (token counts, prices, a dry run's recorded requests) is
    the wrapped client's.
    """

    def __init__(self, inner: LLM, run_tracer: RunTracer) -> None:
        self.inner = inner
        self.run_tracer = run_tracer
        self.dry_run = inner.dry_run
        self.streams = inner.streams

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _model(self, model: str) -> str:
        providers = getattr(self.inner, "providers", None)
        if is_reference(model) and providers is not None:
            entry = providers.get(model[len(PREFIX) :])
            if entry is not None:
                return str(entry.model)
        return model

    async def complete(self, request: LLMRequest) -> LLMResponse:
        model = self._model(request.model)
        span = self.run_tracer.start_chat(request, model, genai.provider_name(model, self.inner))
        try:
            response = await self.inner.complete(request)
        except BaseException as exc:
            self.run_tracer.end_chat(span, request, None, exc)
            raise
        self.run_tracer.end_chat(span, request, response, None)
        return response

    async def warm_up(self, models: Sequence[str] = ()) -> None:
        await self.inner.warm_up(models)

    def count_tokens(self, model: str, messages: list[dict[str, Any]]) -> int:
        return self.inner.count_tokens(model, messages)

    def prices(self, model: str) -> tuple[float, float] | None:
        return self.inner.prices(model)

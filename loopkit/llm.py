"""Model clients: one small base class, a LiteLLM adapter, a dry run and a scripted fake.

``LLM`` is the contract the engine calls. Implementations:

- ``LiteLLMProvider``: any provider through LiteLLM's ``acompletion``
  (LiteLLM is imported on the first live call, offline: no price-map fetch).
- ``DryRunProvider``: deterministic, no network, no cost; the checker answers
  the loop's ``dryRun.checkerScores`` (default 0.95).
- ``ScriptedLLM``: a fake for tests and benchmarks, answering from a script
  or a function, with an optional simulated latency.

Retries are not the client's job: a client raises ``ProviderError`` with
``retryable=True`` (and ``retry_after`` when the provider said so) for a
transient failure, and the engine retries with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from loopkit.engine.events import Tokens
from loopkit.errors import ConfigError, ProviderError
from loopkit.providers import PREFIX, Providers, is_reference, param_kwargs

Role = Literal["maker", "checker", "agent", "planner"]


@dataclass
class LLMRequest:
    """One chat completion request. ``step``, ``role`` and ``round`` say who asks."""

    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    response_format: dict[str, Any] | None = None
    max_output_tokens: int | None = None
    #: The JSON Schema the answer must match (a step with ``output: {schema: ...}``);
    #: the prompt already says so, a client may also use it (the dry run answers with it).
    output_schema: dict[str, Any] | None = None
    timeout: float | None = None
    step: str | None = None
    role: Role = "agent"
    round: int = 1
    #: Called with each piece of the answer's text as it arrives, when the client
    #: streams (``None``: the caller wants no pieces, the client does not stream).
    on_text: Callable[[str], None] | None = None
    #: The step's provider parameters (``temperature``, ``top_p``, ``seed``, ``stop``,
    #: ``headers``), over its provider's.
    params: dict[str, Any] = field(default_factory=dict)
    #: Models or ``team:NAME`` providers LiteLLM tries, in order, when ``model`` fails.
    fallbacks: list[str] = field(default_factory=list)


@dataclass
class ToolCall:
    """A tool call the model asked for; ``arguments`` is ``{}`` when they were not JSON."""

    id: str
    name: str
    arguments: dict[str, Any]
    raw_arguments: str = ""


@dataclass
class LLMResponse:
    """A completion: text and/or tool calls, tokens by kind, cost in USD (``None``: unknown)."""

    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tokens: Tokens = field(default_factory=Tokens)
    cost: float | None = 0.0
    model: str = ""
    finish_reason: str | None = None


@dataclass
class TransientProviderError(ProviderError):
    """A failure worth retrying (429, 5xx, timeout, connection); ``retry_after`` in seconds."""

    retry_after: float | None = None
    retryable: bool = True


class LLM(ABC):
    """A chat model client.

    Contract: ``complete`` sends one request and returns one ``LLMResponse``
    (never partial, also when it streams: with ``request.on_text`` set, a
    client that can stream calls it with each piece of text as it arrives and
    still returns the whole answer); it raises ``ProviderError`` for a failure, with
    ``retryable=True`` (``TransientProviderError``) when trying again may
    help, and lets ``asyncio.CancelledError`` through. ``count_tokens`` and
    ``prices`` let the engine reserve a budget share before the call; they
    must be cheap and must not touch the network. ``prices`` returns USD per
    input and per output token, or ``None`` when the price is unknown (never
    a guessed 0).
    """

    #: True for clients that cost nothing and call nothing (the dry run).
    dry_run: bool = False
    #: True for clients that pass text pieces to ``LLMRequest.on_text`` (the engine
    #: sets ``on_text`` only then, so a client that cannot stream costs nothing more).
    streams: bool = False

    @abstractmethod
    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Send ``request`` and return the model's answer."""

    async def warm_up(self, models: Sequence[str] = ()) -> None:  # noqa: B027 - optional hook
        """Load what the first call would load (outside any call's timeout); default: nothing."""

    def count_tokens(self, model: str, messages: list[dict[str, Any]]) -> int:
        """Return the (estimated) prompt tokens of ``messages``; default: 4 characters a token."""
        chars = 0
        for message in messages:
            content = message.get("content")
            chars += len(content) if type(content) is str else len(str(content or ""))
        return chars // 4 + 4 * len(messages)

    def prices(self, model: str) -> tuple[float, float] | None:
        """Return (input, output) USD per token for ``model``, or ``None`` if unknown."""
        return None


# ── LiteLLM ──────────────────────────────────────────────────────────────


class _RedactingFilter(logging.Filter):
    """Mask known secrets in LiteLLM's log records (a failed fallback logs the provider's
    error, which may quote the key); the traceback is dropped, the engine reports the error."""

    def filter(self, record: logging.LogRecord) -> bool:
        from loopkit import secrets

        try:
            message = record.getMessage()
        except Exception:  # a malformed record of LiteLLM's: keep its bare template
            message = str(record.msg)
        record.msg = secrets.redact(message)
        record.args = None
        record.exc_info = None
        record.exc_text = None
        return True


def import_litellm() -> Any:
    """Import LiteLLM offline (local price map, no tokenizer downloads) and quiet."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
    import litellm

    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        if not any(isinstance(f, _RedactingFilter) for f in logger.filters):
            logger.addFilter(_RedactingFilter())
    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


def usage_tokens(usage: Any) -> Tokens:
    """Split a provider usage object into token kinds, each token counted once.

    ``prompt_tokens`` includes cached reads and cache writes, and
    ``completion_tokens`` includes reasoning (OpenAI's convention, which
    LiteLLM follows for every provider): they are subtracted here.
    """
    if usage is None:
        return Tokens()

    def get(obj: Any, name: str) -> int:
        if obj is None:
            return 0
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        return int(value or 0)

    prompt = get(usage, "prompt_tokens")
    completion = get(usage, "completion_tokens")
    pdetails = (
        usage.get("prompt_tokens_details")
        if isinstance(usage, dict)
        else getattr(usage, "prompt_tokens_details", None)
    )
    cdetails = (
        usage.get("completion_tokens_details")
        if isinstance(usage, dict)
        else getattr(usage, "completion_tokens_details", None)
    )
    cached = get(pdetails, "cached_tokens") or get(usage, "cache_read_input_tokens")
    written = get(usage, "cache_creation_input_tokens") or get(pdetails, "cache_creation_tokens")
    reasoning = get(cdetails, "reasoning_tokens")
    return Tokens(
        input=max(prompt - cached - written, 0),
        output=max(completion - reasoning, 0),
        cached_read=cached,
        cache_write=written,
        reasoning=reasoning,
    )


def _retry_after(exc: Exception) -> float | None:
    headers: Any = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        value = headers.get("retry-after") or headers.get("Retry-After")
    except AttributeError:
        return None
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


def provider_error(exc: Exception, step: str | None) -> ProviderError:
    """Translate a LiteLLM/OpenAI exception into ``ProviderError`` (retryable or not)."""
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    message = str(getattr(exc, "message", None) or exc).strip()
    transient_names = (
        "Timeout",
        "APIConnectionError",
        "ServiceUnavailableError",
        "RateLimitError",
        "InternalServerError",
    )
    if (
        isinstance(exc, asyncio.TimeoutError | TimeoutError)
        or name in transient_names
        or (isinstance(status, int) and (status == 429 or status >= 500 or status == 408))
    ):
        return TransientProviderError(
            f"{name}: {message}", step=step, status_code=status, retry_after=_retry_after(exc)
        )
    return ProviderError(f"{name}: {message}", step=step, status_code=status, retryable=False)


class LiteLLMProvider(LLM):
    """Call any model through ``litellm.acompletion``.

    ``api_base`` / ``api_key`` default to ``LOOPKIT_API_BASE`` /
    ``LOOPKIT_API_KEY`` (useful for a local OpenAI-compatible server with
    ``openai/<name>`` models); otherwise LiteLLM reads the provider's usual
    variables (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, ...). A model
    ``team:NAME`` is the provider NAME of ``providers``: its own model,
    endpoint, key and parameters are passed to that call only (these
    defaults do not apply to it).
    """

    def __init__(
        self,
        api_base: str | None = None,
        api_key: str | None = None,
        extra: dict[str, Any] | None = None,
        providers: Providers | None = None,
    ) -> None:
        self.api_base = api_base or os.environ.get("LOOPKIT_API_BASE") or None
        self.api_key = api_key or os.environ.get("LOOPKIT_API_KEY") or None
        self.extra = dict(extra or {})
        self.providers = providers or Providers()
        self.streams = True
        self._litellm: Any = None
        self._json_ok: dict[str, bool] = {}

    @property
    def litellm(self) -> Any:
        if self._litellm is None:
            self._litellm = import_litellm()
        return self._litellm

    def target(self, model: str) -> dict[str, Any]:
        """Return LiteLLM's ``model`` and endpoint arguments for ``model`` (or its provider)."""
        entry = self.providers.resolve(model)
        if entry is not None:
            return entry.call_kwargs()
        kwargs: dict[str, Any] = {"model": model}
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self.api_key:
            kwargs["api_key"] = self.api_key
        elif self.api_base:
            kwargs["api_key"] = "loopkit-local"
        return kwargs

    def _model(self, model: str) -> str:
        entry = self.providers.get(model[len(PREFIX) :]) if is_reference(model) else None
        return entry.model if entry is not None else model

    async def warm_up(self, models: Sequence[str] = ()) -> None:
        """Import LiteLLM and run one offline mock call, so a step's first real call
        is not charged LiteLLM's lazy imports against its timeout."""
        litellm = self.litellm
        for model in list(models)[:1] or ["openai/warm-up"]:
            with contextlib.suppress(Exception):
                await litellm.acompletion(
                    model=self._model(model),
                    messages=[{"role": "user", "content": "warm up"}],
                    mock_response="ok",
                )

    def _supports_json(self, model: str) -> bool:
        model = self._model(model)
        if model not in self._json_ok:
            try:
                params = self.litellm.get_supported_openai_params(model=model) or []
                self._json_ok[model] = "response_format" in params
            except Exception:
                self._json_ok[model] = False
        return self._json_ok[model]

    async def complete(self, request: LLMRequest) -> LLMResponse:
        litellm = self.litellm
        try:
            target = self.target(request.model)
            fallbacks = [self.target(model) for model in request.fallbacks]
        except ConfigError as exc:
            raise ProviderError(str(exc), step=request.step, retryable=False) from None
        entry = self.providers.resolve(request.model)
        kwargs: dict[str, Any] = {
            "messages": request.messages,
            "num_retries": 0,
            "max_retries": 0,
            **self.extra,
            **target,
        }
        step_params = param_kwargs(request.params)
        if "extra_headers" in step_params and "extra_headers" in kwargs:
            step_params["extra_headers"] = {
                **kwargs["extra_headers"],
                **step_params["extra_headers"],
            }
        kwargs.update(step_params)
        if fallbacks:
            kwargs["fallbacks"] = fallbacks
        if request.max_output_tokens is None and entry is not None:
            cap = entry.params.get("max_output_tokens")
            if cap is not None:
                kwargs["max_tokens"] = int(cap)
        if request.timeout is not None:
            kwargs["timeout"] = request.timeout
        if request.tools:
            kwargs["tools"] = request.tools
        if request.max_output_tokens is not None:
            kwargs["max_tokens"] = request.max_output_tokens
        if request.response_format is not None and self._supports_json(request.model):
            kwargs["response_format"] = request.response_format
        call = (
            litellm.acompletion(**kwargs)
            if request.on_text is None
            else self._stream(request, kwargs)
        )
        try:
            if request.timeout is not None:
                # LiteLLM's own timeout does not cover every phase; enforce it here too.
                response = await asyncio.wait_for(call, timeout=request.timeout + 0.5)
            else:
                response = await call
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise provider_error(exc, request.step) from exc
        return self._response(request, response)

    async def _stream(self, request: LLMRequest, kwargs: dict[str, Any]) -> Any:
        """Stream the answer, passing each text piece to ``request.on_text``; return the
        whole response rebuilt by ``litellm.stream_chunk_builder``.

        ``stream_options.include_usage`` asks for the provider's usage in a last
        chunk (token kinds, cached and reasoning details included), so tokens and
        cost are the same as without streaming. A provider that sends no usage on
        a stream gets LiteLLM's own count (``token_counter`` of the messages and
        the text), as LiteLLM's streaming docs recommend. Tool calls arrive in
        pieces too; only text is passed on.
        """
        litellm = self.litellm
        on_text = request.on_text
        assert on_text is not None
        kwargs = {**kwargs, "stream": True, "stream_options": {"include_usage": True}}
        chunks: list[Any] = []
        stream = await litellm.acompletion(**kwargs)
        async for chunk in stream:
            chunks.append(chunk)
            choices = getattr(chunk, "choices", None)
            if choices:
                delta = getattr(choices[0], "delta", None)
                text = getattr(delta, "content", None) if delta is not None else None
                if text:
                    on_text(text)
        if not chunks:
            raise TransientProviderError(
                "the model's stream ended without a chunk", step=request.step
            )
        return litellm.stream_chunk_builder(chunks, messages=request.messages)

    def _response(self, request: LLMRequest, response: Any) -> LLMResponse:
        choice = response.choices[0]
        message = choice.message
        calls: list[ToolCall] = []
        for call in getattr(message, "tool_calls", None) or []:
            raw = call.function.arguments or ""
            try:
                args = json.loads(raw) if raw else {}
            except json.JSONDecodeError:
                args = {}
            calls.append(
                ToolCall(
                    id=call.id,
                    name=call.function.name,
                    arguments=args if isinstance(args, dict) else {},
                    raw_arguments=raw,
                )
            )
        usage = getattr(response, "usage", None)
        return LLMResponse(
            content=message.content or "",
            tool_calls=calls,
            tokens=usage_tokens(usage),
            cost=self._cost(self._model(request.model), response),
            model=getattr(response, "model", None) or self._model(request.model),
            finish_reason=getattr(choice, "finish_reason", None),
        )

    def _cost(self, model: str, response: Any) -> float | None:
        # LiteLLM prices every token kind (cached reads, cache writes, reasoning) itself.
        try:
            cost = self.litellm.completion_cost(completion_response=response, model=model)
        except Exception:
            return None
        return float(cost) if cost is not None else None

    def count_tokens(self, model: str, messages: list[dict[str, Any]]) -> int:
        try:
            return int(self.litellm.token_counter(model=self._model(model), messages=messages))
        except Exception:
            return super().count_tokens(model, messages)

    def prices(self, model: str) -> tuple[float, float] | None:
        try:
            info = self.litellm.get_model_info(self._model(model))
        except Exception:
            return None
        inp, out = info.get("input_cost_per_token"), info.get("output_cost_per_token")
        if inp is None or out is None:
            return None
        return float(inp), float(out)


# ── Dry run ──────────────────────────────────────────────────────────────

DEFAULT_DRY_RUN_SCORE = 0.95


class DryRunProvider(LLM):
    """Deterministic answers with no network and no cost.

    Makers answer a fixed text naming their step (a step with an output
    schema: a minimal JSON value that matches it); the checker answers a JSON
    verdict whose score is ``checker_scores[round - 1]`` (the last one
    repeats; default 0.95), passing at 0.8 and above with one issue
    otherwise. With ``latency_ms`` and a request that wants text pieces
    (``on_text``), the text comes in ``STREAM_PIECES`` pieces spread over the
    latency, so a browser can watch a dry run's output arrive. ``requests`` keeps every request (the projection of a live
    run's cost is computed from their rendered prompts).
    """

    dry_run = True
    #: With a latency, a streaming request gets its text in this many pieces.
    STREAM_PIECES = 4

    def __init__(self, checker_scores: Sequence[float] = (), latency_ms: int = 0) -> None:
        self.checker_scores = [float(s) for s in checker_scores]
        self.latency_ms = latency_ms
        self.streams = bool(latency_ms)
        self.requests: list[LLMRequest] = []

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.requests.append(request)
        streams = bool(self.latency_ms) and request.on_text is not None
        if self.latency_ms and not streams:
            await asyncio.sleep(self.latency_ms / 1000.0)
        if request.role == "checker":
            scores = self.checker_scores or [DEFAULT_DRY_RUN_SCORE]
            score = scores[min(request.round, len(scores)) - 1]
            passed = score >= 0.8
            issues = (
                []
                if passed
                else [f"dry run: the checker scored round {request.round} at {score:g}"]
            )
            text = json.dumps({"pass": passed, "score": score, "issues": issues})
        elif request.output_schema is not None:
            from loopkit.structured import minimal_instance

            text = json.dumps(minimal_instance(request.output_schema))
        else:
            text = (
                f"[dry run] {request.step or 'agent'}: no model was called (round {request.round})."
            )
        if streams:
            await self._stream(text, request.on_text)  # type: ignore[arg-type]
        return LLMResponse(content=text, tokens=Tokens(), cost=0.0, model=request.model)

    async def _stream(self, text: str, on_text: Callable[[str], None]) -> None:
        """Hand ``text`` over in ``STREAM_PIECES`` pieces spread over the latency."""
        pieces = self.STREAM_PIECES
        size = -(-len(text) // pieces) or 1
        pause = self.latency_ms / 1000.0 / pieces
        for start in range(0, len(text), size):
            await asyncio.sleep(pause)
            on_text(text[start : start + size])

    def count_tokens(self, model: str, messages: list[dict[str, Any]]) -> int:
        return 0

    def prices(self, model: str) -> tuple[float, float] | None:
        return (0.0, 0.0)


# ── Scripted fake ────────────────────────────────────────────────────────

Reply = LLMResponse | str | Exception
Responder = Callable[[LLMRequest], Reply]


class ScriptedLLM(LLM):
    """A fake model for tests and benchmarks.

    Answers come from ``replies`` in order (then ``default``), or from a
    ``responder(request)`` function. A reply is an ``LLMResponse``, a string
    (the content) or an exception (raised). ``latency`` seconds are slept per
    call; ``requests`` records every request.
    """

    def __init__(
        self,
        replies: Sequence[Reply] | Responder = (),
        *,
        default: Reply = "ok",
        latency: float = 0.0,
        prices: tuple[float, float] | None = (0.0, 0.0),
        record: bool = True,
    ) -> None:
        self._responder: Responder | None = replies if callable(replies) else None
        self._replies: list[Reply] = [] if callable(replies) else list(replies)
        self.default = default
        self.latency = latency
        self._prices = prices
        self.record = record
        self.requests: list[LLMRequest] = []

    async def complete(self, request: LLMRequest) -> LLMResponse:
        if self.record:
            self.requests.append(request)
        if self.latency:
            await asyncio.sleep(self.latency)
        if self._responder is not None:
            reply = self._responder(request)
        else:
            reply = self._replies.pop(0) if self._replies else self.default
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, str):
            return LLMResponse(content=reply, model=request.model)
        return reply

    def prices(self, model: str) -> tuple[float, float] | None:
        return self._prices


def default_model(step_model: str | None, loop_model: str | None, project_model: str | None) -> str:
    """Return the model of a step: its own, else the loop's, project's, ``LOOPKIT_MODEL``."""
    model = step_model or loop_model or project_model or os.environ.get("LOOPKIT_MODEL")
    if not model:
        raise ConfigError(
            "no model configured: set 'model:' on the step or the loop, a default in "
            "loopkit.yaml (a model or a provider marked 'default: true'), a default provider "
            "of the team in the web app, or the LOOPKIT_MODEL environment variable "
            "(e.g. gpt-4o-mini)"
        )
    return model

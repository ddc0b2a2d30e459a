"""The OpenTelemetry GenAI semantic conventions' shapes, as LoopKit fills them.

Which conventions (``SEMCONV_VERSION``), a model string's ``gen_ai.provider.name``,
token usage as attributes, and chat messages in the conventions' JSON shapes
(role plus ``parts``) for ``gen_ai.input.messages`` / ``gen_ai.output.messages``.
Imported with ``loopkit.otel``, only when tracing is on.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.schemas import Schemas

from loopkit import secrets
from loopkit.engine.events import Tokens
from loopkit.llm import LLM, LLMResponse

#: The OpenTelemetry semantic conventions version whose ``gen_ai.*`` names LoopKit follows
#: (those of opentelemetry-semantic-conventions 0.66b2, the last release carrying them before
#: they moved to the semantic-conventions-genai repository).
SEMCONV_VERSION = "1.44.0"
SCHEMA_URL = Schemas.V1_44_0.value
#: ``gen_ai.provider.name`` of the dry run (no provider is called).
DRY_RUN_PROVIDER = "loopkit.dry_run"


def provider_name(model: str, inner: LLM) -> str:
    """Return ``gen_ai.provider.name`` for a LiteLLM model string (``anthropic/claude-...``)."""
    if inner.dry_run:
        return DRY_RUN_PROVIDER
    prefix, slash, _ = model.partition("/")
    if slash:
        return PROVIDERS.get(prefix, prefix)
    name = model.lower()
    for start, provider_ in BARE_MODELS:
        if name.startswith(start):
            return provider_
    return "litellm"


PROVIDERS = {
    "gemini": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "watsonx": "ibm.watsonx.ai",
}
BARE_MODELS = (
    ("gpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("chatgpt", "openai"),
    ("claude", "anthropic"),
    ("command", "cohere"),
)


def usage(tokens: Tokens) -> dict[str, int]:
    """Return the usage attributes of ``tokens`` (input counts cached reads and writes)."""
    out = {
        gen_ai.GEN_AI_USAGE_INPUT_TOKENS: tokens.up,
        gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS: tokens.down,
    }
    if tokens.cached_read:
        out[gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = tokens.cached_read
    if tokens.cache_write:
        out[gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = tokens.cache_write
    if tokens.reasoning:
        out[gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = tokens.reasoning
    return out


def as_json(value: Any) -> str:
    """Return ``value`` as JSON text with every known secret masked."""
    return secrets.redact(json.dumps(value, ensure_ascii=False, default=str))


def parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Return a chat message's content as the conventions' parts (text, tool calls, results)."""
    parts: list[dict[str, Any]] = []
    content = message.get("content")
    if message.get("role") == "tool":
        return [
            {
                "type": "tool_call_response",
                "id": message.get("tool_call_id"),
                "response": content,
            }
        ]
    if isinstance(content, str) and content:
        parts.append({"type": "text", "content": content})
    elif isinstance(content, list):
        for piece in content:
            if isinstance(piece, dict) and piece.get("type") == "text":
                parts.append({"type": "text", "content": piece.get("text", "")})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        arguments = function.get("arguments")
        with contextlib.suppress(ValueError):  # not JSON: kept as the model wrote it
            arguments = json.loads(arguments) if isinstance(arguments, str) else arguments
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id"),
                "name": function.get("name"),
                "arguments": arguments,
            }
        )
    return parts


def input_messages(messages: Sequence[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    """Return (system instructions, input messages) in the conventions' JSON shapes."""
    system: list[Any] = []
    chat: list[Any] = []
    for message in messages:
        if message.get("role") == "system":
            system += parts(message)
        else:
            chat.append({"role": message.get("role"), "parts": parts(message)})
    return system, chat


def output_messages(response: LLMResponse) -> list[Any]:
    """Return the model's answer as the conventions' output messages."""
    parts: list[dict[str, Any]] = []
    if response.content:
        parts.append({"type": "text", "content": response.content})
    for call in response.tool_calls:
        parts.append(
            {"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.arguments}
        )
    return [
        {"role": "assistant", "parts": parts, "finish_reason": response.finish_reason or "stop"}
    ]


#: A step's provider parameters and the request attributes they become.
PARAMS = {
    "temperature": gen_ai.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": gen_ai.GEN_AI_REQUEST_TOP_P,
    "top_k": gen_ai.GEN_AI_REQUEST_TOP_K,
    "seed": gen_ai.GEN_AI_REQUEST_SEED,
    "frequency_penalty": gen_ai.GEN_AI_REQUEST_FREQUENCY_PENALTY,
    "presence_penalty": gen_ai.GEN_AI_REQUEST_PRESENCE_PENALTY,
}

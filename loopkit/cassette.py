"""Cassettes: a run's model and tool exchanges, recorded once and replayed by ``loopkit test``.

A cassette is a YAML file holding what a live run exchanged with the world:
every model request (step, role, round, model, the rendered messages, the
tools offered) with its response (text, tool calls, tokens, cost) or its
failure, every connector tool call with its result, the tools each
connector offered, every approval decision, and the run's inputs, trigger
payload, memory and default models.

The file is made for review in a pull request: keys and entries are in a
fixed order (by round, then by the step's place in the loop), tool call
ids are renumbered ``call_1``, ``call_2``, ... and nothing holds a time or a
run id, so recording the same run twice writes the same bytes. Secrets are
masked before anything is written: values resolved from ``${NAME}``
references (``loopkit.secrets``), the variables the loop and project files
refer to, and variables named like keys (``*_KEY``, ``*_TOKEN``,
``*_SECRET``, ``*_PASSWORD``).

``loopkit.recording`` writes cassettes, ``loopkit.replay`` answers from them.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from loopkit import emitter, secrets, spec
from loopkit.connectors import ConnectorTool
from loopkit.errors import Problem, ProviderError, SpecError
from loopkit.llm import LLMRequest, LLMResponse
from loopkit.tools import ToolResult

#: The version of the file format (``version:``); a newer one is refused.
VERSION = 1
CASSETTE_SUFFIX = ".cassette.yaml"
TEST_SUFFIX = ".test.yaml"
#: Where ``loopkit run --record`` writes, under the project's root.
DEFAULT_DIR = "tests"
HEADER = (
    "# LoopKit cassette: what a live run exchanged with its model, tools and approvers.\n"
    "# Written by `loopkit run LOOP --record`, replayed offline by `loopkit test`\n"
    "# (docs/testing.md). Secrets are masked; review it like code.\n"
)
#: The shortest value of a variable masked only because of its name.
MIN_GUESSED_LENGTH = 8
#: Environment variables masked in a cassette even when no file refers to them.
_SECRET_NAME = re.compile(r"(^|_)(API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD)$")


def default_cassette(root: Path, loop_name: str) -> Path:
    """Return where a loop's cassette goes by default: ``<root>/tests/<loop>.cassette.yaml``."""
    return root / DEFAULT_DIR / f"{loop_name}{CASSETTE_SUFFIX}"


def recorded_defaults(project_model: str | None) -> dict[str, str]:
    """Return the default models a replay must use to ask for the same models as this run:
    the project's (else ``LOOPKIT_MODEL``) and ``LOOPKIT_CHECKER_MODEL``."""
    defaults = {}
    model = project_model or os.environ.get("LOOPKIT_MODEL")
    if model:
        defaults["model"] = model
    checker = os.environ.get("LOOPKIT_CHECKER_MODEL")
    if checker:
        defaults["checkerModel"] = checker
    return defaults


def test_file_for(cassette: Path) -> Path:
    """Return the test file beside a cassette (``x.cassette.yaml`` → ``x.test.yaml``)."""
    name = cassette.name
    stem = name[: -len(CASSETTE_SUFFIX)] if name.endswith(CASSETTE_SUFFIX) else cassette.stem
    return cassette.with_name(f"{stem}{TEST_SUFFIX}")


# ── The file ─────────────────────────────────────────────────────────────


@dataclass
class Cassette:
    """A recorded run. Entries are plain JSON data in the file's own shape (see the module)."""

    loop: str
    inputs: dict[str, Any] = field(default_factory=dict)
    payload: Any = None
    memory: dict[str, Any] = field(default_factory=dict)
    #: ``model`` (the default model of steps without one) and ``checkerModel``.
    defaults: dict[str, str] = field(default_factory=dict)
    #: USD per input and output token by model (``None``: unknown), as the client said.
    prices: dict[str, list[float] | None] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    #: The tools each connector offered: ``{connector: [{tool, name, description, parameters}]}``.
    connectors: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    tools: list[dict[str, Any]] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)

    def as_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"version": VERSION, "loop": self.loop}
        for name in ("inputs", "memory", "defaults", "prices", "connectors"):
            if getattr(self, name):
                data[name] = getattr(self, name)
        if self.payload is not None:
            data["payload"] = self.payload
        data["calls"] = self.calls
        if self.tools:
            data["tools"] = self.tools
        if self.approvals:
            data["approvals"] = self.approvals
        return data

    def dumps(self) -> str:
        """Return the cassette's YAML: fixed order, sorted keys inside data, stable ids."""
        return HEADER + emitter.dump(_canonical(_stable_ids(self.as_data())))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.dumps(), encoding="utf-8")

    @classmethod
    def from_data(cls, data: Any, file: str | None = None) -> Cassette:
        def refuse(message: str, path: str = "") -> SpecError:
            return SpecError([Problem(message, path=path, file=file, code="invalid_cassette")])

        if not isinstance(data, dict):
            raise refuse("a cassette is a mapping (loop, calls, ...); record it again")
        version = data.get("version", VERSION)
        if not isinstance(version, int) or version > VERSION:
            raise refuse(
                f"cassette version {version!r} is newer than this LoopKit reads ({VERSION})",
                "version",
            )
        if not isinstance(data.get("loop"), str):
            raise refuse("missing the loop's name", "loop")
        lists = {"calls": list, "tools": list, "approvals": list}
        maps = {"inputs": dict, "memory": dict, "defaults": dict, "prices": dict}
        for key, kind in {**lists, **maps, "connectors": dict}.items():
            value = data.get(key)
            if value is not None and not isinstance(value, kind):
                raise refuse(f"'{key}' must be a {'list' if kind is list else 'mapping'}", key)
        for index, call in enumerate(data.get("calls") or []):
            if not isinstance(call, dict) or not isinstance(call.get("request"), dict):
                raise refuse("each call needs a 'request' mapping", f"calls[{index}]")
            if not isinstance(call.get("response"), dict) and not isinstance(
                call.get("error"), dict
            ):
                raise refuse("each call needs a 'response' or an 'error'", f"calls[{index}]")
        return cls(
            loop=data["loop"],
            inputs=data.get("inputs") or {},
            payload=data.get("payload"),
            memory=data.get("memory") or {},
            defaults=data.get("defaults") or {},
            prices=data.get("prices") or {},
            calls=data.get("calls") or [],
            connectors=data.get("connectors") or {},
            tools=data.get("tools") or [],
            approvals=data.get("approvals") or [],
        )


def load(path: Path, shown: str | None = None) -> Cassette:
    """Read a cassette file; raise ``SpecError`` (with the position) when it is not one."""
    file = shown or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            [
                Problem(
                    "the cassette does not exist",
                    file=file,
                    code="missing_cassette",
                    hint="record it with 'loopkit run LOOP --record' "
                    "(or 'loopkit test --record-missing')",
                )
            ]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([Problem(f"cannot read the cassette: {exc}", file=file)]) from None
    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise SpecError(
            [
                Problem(
                    f"the cassette is not valid YAML: {exc.problem}",
                    file=file,
                    line=mark.line + 1 if mark else None,
                    column=mark.column + 1 if mark else None,
                    code="yaml_syntax",
                )
            ]
        ) from None
    return Cassette.from_data(data, file)


#: The order of the file's own keys (any other key, and every key of recorded data such
#: as tool arguments, is sorted).
_ORDER = {
    key: index
    for index, key in enumerate(
        [
            "version",
            "loop",
            "defaults",
            "inputs",
            "payload",
            "memory",
            "prices",
            "connectors",
            "calls",
            "tools",
            "approvals",
            "step",
            "role",
            "round",
            "key",
            "label",
            "request",
            "response",
            "error",
            "estimate",
            "model",
            "messages",
            "content",
            "toolCalls",
            "tool_calls",
            "tool_call_id",
            "name",
            "tool",
            "description",
            "parameters",
            "arguments",
            "result",
            "isError",
            "data",
            "responseFormat",
            "outputSchema",
            "params",
            "fallbacks",
            "maxOutputTokens",
            "tokens",
            "cost",
            "finishReason",
            "approved",
            "by",
            "reason",
            "timedOut",
        ]
    )
}


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (_ORDER.get(k, len(_ORDER)), str(k)))
        return {k: _canonical(value[k]) for k in keys}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def _stable_ids(data: dict[str, Any]) -> dict[str, Any]:
    """Renumber the tool call ids of responses (and of the requests that repeat them)
    ``call_1``, ``call_2``, ... in the file's order: providers make new ones each run."""
    ids: dict[str, str] = {}
    for call in data.get("calls", []):
        for tool_call in (call.get("response") or {}).get("toolCalls", []):
            old = str(tool_call.get("id"))
            ids.setdefault(old, f"call_{len(ids) + 1}")
    if not ids:
        return data
    data = copy.deepcopy(data)
    for call in data["calls"]:
        for tool_call in (call.get("response") or {}).get("toolCalls", []):
            tool_call["id"] = ids.get(str(tool_call.get("id")), tool_call.get("id"))
        for message in call["request"].get("messages", []):
            if not isinstance(message, dict):
                continue
            if message.get("tool_call_id") in ids:
                message["tool_call_id"] = ids[message["tool_call_id"]]
            for tool_call in message.get("tool_calls") or []:
                if isinstance(tool_call, dict) and tool_call.get("id") in ids:
                    tool_call["id"] = ids[tool_call["id"]]
    return data


# ── Requests and responses as data ───────────────────────────────────────

#: Request fields that must match for a replay (``maxOutputTokens`` and ``timeout`` follow
#: the budget and the machine, so they are recorded but not compared).
MATCHED = ("model", "messages", "tools", "responseFormat", "outputSchema", "params", "fallbacks")


def request_data(request: LLMRequest) -> dict[str, Any]:
    """Return a request as cassette data (a deep copy: the engine extends its messages)."""
    data: dict[str, Any] = {
        "model": request.model,
        "messages": json.loads(json.dumps(request.messages, default=str)),
    }
    if request.tools:
        data["tools"] = json.loads(json.dumps(request.tools, default=str))
    if request.response_format is not None:
        data["responseFormat"] = request.response_format
    if request.output_schema is not None:
        data["outputSchema"] = request.output_schema
    if request.params:
        data["params"] = json.loads(json.dumps(request.params, default=str))
    if request.fallbacks:
        data["fallbacks"] = list(request.fallbacks)
    if request.max_output_tokens is not None:
        data["maxOutputTokens"] = request.max_output_tokens
    return data


def match_key(data: dict[str, Any]) -> str:
    """Return the text two requests share when a replay may answer one with the other."""
    return json.dumps({k: data.get(k) for k in MATCHED}, sort_keys=True, ensure_ascii=False)


def response_data(response: LLMResponse) -> dict[str, Any]:
    data: dict[str, Any] = {"content": response.content}
    if response.tool_calls:
        data["toolCalls"] = [
            {
                "id": c.id,
                "name": c.name,
                "arguments": c.raw_arguments or json.dumps(c.arguments, sort_keys=True),
            }
            for c in response.tool_calls
        ]
    tokens = {k: v for k, v in response.tokens.as_dict().items() if v and k != "total"}
    if tokens:
        data["tokens"] = tokens
    data["cost"] = response.cost
    if response.model:
        data["model"] = response.model
    if response.finish_reason:
        data["finishReason"] = response.finish_reason
    return data


def response_from(data: dict[str, Any]) -> LLMResponse:
    """Return the ``LLMResponse`` a cassette's response data stands for."""
    from loopkit.engine.events import Tokens
    from loopkit.llm import ToolCall

    calls = []
    for raw in data.get("toolCalls") or []:
        text = raw.get("arguments")
        text = text if isinstance(text, str) else json.dumps(text or {})
        try:
            args = json.loads(text) if text else {}
        except ValueError:
            args = {}
        calls.append(
            ToolCall(
                id=str(raw.get("id")),
                name=str(raw.get("name")),
                arguments=args if isinstance(args, dict) else {},
                raw_arguments=text,
            )
        )
    cost = data.get("cost")
    return LLMResponse(
        content=str(data.get("content") or ""),
        tool_calls=calls,
        tokens=Tokens.from_dict(data.get("tokens") or {}),
        cost=float(cost) if cost is not None else None,
        model=str(data.get("model") or ""),
        finish_reason=data.get("finishReason"),
    )


def error_data(exc: ProviderError) -> dict[str, Any]:
    data: dict[str, Any] = {"message": exc.message, "retryable": exc.retryable}
    if exc.status_code is not None:
        data["statusCode"] = exc.status_code
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        data["retryAfter"] = retry_after
    return data


def error_from(data: dict[str, Any], step: str | None) -> ProviderError:
    from loopkit.llm import TransientProviderError

    message = str(data.get("message") or "the model failed")
    status = data.get("statusCode")
    if data.get("retryable"):
        return TransientProviderError(
            message, step=step, status_code=status, retry_after=data.get("retryAfter")
        )
    return ProviderError(message, step=step, status_code=status, retryable=False)


def tool_result_data(result: ToolResult) -> dict[str, Any]:
    data: dict[str, Any] = {"content": result.content}
    if result.is_error:
        data["isError"] = True
    if result.data:
        data["data"] = json.loads(json.dumps(result.data, default=str))
    return data


def tool_result_from(data: dict[str, Any]) -> ToolResult:
    return ToolResult(
        content=str(data.get("content") or ""),
        is_error=bool(data.get("isError")),
        data=dict(data.get("data") or {}),
    )


def arguments_key(name: str, arguments: Any) -> str:
    return json.dumps([name, arguments], sort_keys=True, ensure_ascii=False, default=str)


def tool_entry(tool: ConnectorTool) -> dict[str, Any]:
    """Return how a cassette lists a connector's tool (what the model is offered)."""
    return {
        "tool": tool.tool,
        "name": tool.name,
        "description": tool.description,
        "parameters": tool.parameters,
    }


def step_order(loop: spec.Loop) -> dict[str, int]:
    """Return each step's place in the loop by label (and by key): the cassette's order."""
    order: dict[str, int] = {}
    for index, (path, step) in enumerate(spec.iter_loop_steps(loop)):
        order.setdefault(path, index)
        label = getattr(step, "label", None)
        if label:
            order.setdefault(label, index)
    return order


# ── Secrets ──────────────────────────────────────────────────────────────


def secret_names(texts: Iterable[str], env: dict[str, str] | None = None) -> list[str]:
    """Return the environment variables whose values a cassette must not hold: those
    ``texts`` (the loop and project files) refer to, and those named like keys."""
    source = os.environ if env is None else env
    names = {name for text in texts for name in secrets.references(text)}
    # Named like a key, but short: more likely a setting ("name", "true") than a secret, and
    # masking every "name" of a cassette would break it.
    names |= {
        name
        for name, value in source.items()
        if _SECRET_NAME.search(name.upper()) and len(value) >= MIN_GUESSED_LENGTH
    }
    return sorted(names)


def mask(
    cassette: Cassette, names: Iterable[str] = (), env: dict[str, str] | None = None
) -> Cassette:
    """Return ``cassette`` with every known secret masked (``[redacted:NAME]``)."""
    source = os.environ if env is None else env
    local = secrets.Registry()
    for name in names:
        value = source.get(name)
        if value:
            local.add(name, value)
    data = secrets.redact(cassette.as_data())
    data = secrets.redact(data, local)
    return Cassette.from_data(data)

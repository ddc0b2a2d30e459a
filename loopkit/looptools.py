"""Loops as MCP tools: the tool a loop is, and the result its run gives.

A loop becomes one tool: its name is the loop's name made a valid MCP tool
name, its description the loop's, and its input schema the loop's declared
inputs (types, defaults, descriptions, required) plus ``dry_run`` (and
``payload`` for a loop started by a webhook or an event). Calling the tool runs
the loop; the result is the loop's verified output: the makers' outputs of
its last round when it has ``verify:``, else the last pipeline step's. A step
with an output schema gives ``structuredContent`` too. A run that does not
succeed is an error result (``isError``) naming its status and why.

While a run goes, its steps and verification rounds are reported as progress
notifications to a caller that sent a progress token (``Progress``).
``loopkit.toolserver`` serves these tools over MCP.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopkit import spec

if TYPE_CHECKING:
    import mcp_types

#: MCP's tool names: 1-128 characters of A-Z, a-z, 0-9, ``_``, ``-`` and ``.``.
TOOL_NAME_MAX = 128
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_.-]+")

DRY_RUN = "dry_run"
PAYLOAD = "payload"

#: The ``_meta`` key of a result that carries the run's id, status and (web) URL.
RUN_META = "loopkit/run"

_JSON_TYPES = {"string": "string", "number": "number", "integer": "integer", "boolean": "boolean"}


# ── The tool a loop is ───────────────────────────────────────────────────


def tool_name(loop_name: str) -> str:
    """Return ``loop_name`` as an MCP tool name: runs of other characters become ``_``."""
    name = _NOT_IN_NAME.sub("_", loop_name).strip("_")[:TOOL_NAME_MAX]
    return name or "loop"


def unique_names(loop_names: list[str]) -> list[str]:
    """Return the tool name of each loop, in order; a name taken already gets ``_2``, ``_3``..."""
    taken: set[str] = set()
    out = []
    for loop_name in loop_names:
        base = tool_name(loop_name)
        name, n = base, 1
        while name in taken:
            n += 1
            suffix = f"_{n}"
            name = base[: TOOL_NAME_MAX - len(suffix)] + suffix
        taken.add(name)
        out.append(name)
    return out


def takes_payload(loop: spec.Loop) -> bool:
    """Whether the loop reads a trigger payload (started by a webhook or an event)."""
    return isinstance(loop.effective_trigger, spec.WebhookTrigger | spec.EventTrigger)


def input_schema(loop: spec.Loop) -> dict[str, Any]:
    """Return the JSON Schema of the loop's tool arguments: its inputs, then the controls.

    A declared input is required when it says so and has no default. The
    controls (``dry_run``, ``payload``) are left out when an input has their name.
    """
    properties: dict[str, Any] = {}
    required = []
    for name, declared in loop.inputs.items():
        prop: dict[str, Any] = {"type": _JSON_TYPES[declared.type or "string"]}
        if declared.description:
            prop["description"] = declared.description
        if declared.default is not None:
            prop["default"] = declared.default
        elif declared.required:
            required.append(name)
        properties[name] = prop
    properties.setdefault(
        DRY_RUN,
        {
            "type": "boolean",
            "default": False,
            "description": "Run without calling any model: deterministic answers, no cost.",
        },
    )
    if takes_payload(loop):
        properties.setdefault(
            PAYLOAD,
            {
                "type": "object",
                "description": "The trigger's payload (trigger.payload), e.g. a webhook "
                "delivery's JSON body; a dry run without one reads a sample of the event.",
            },
        )
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    return schema


@dataclass(frozen=True)
class LoopTool:
    """One loop served as a tool. ``ref`` is what the backend finds the loop by again."""

    name: str
    loop: spec.Loop
    ref: Any = None

    @property
    def schema(self) -> dict[str, Any]:
        return input_schema(self.loop)

    def as_mcp(self) -> mcp_types.Tool:
        import mcp_types

        description = self.loop.description or f"Run the LoopKit loop '{self.loop.name}'."
        return mcp_types.Tool(
            name=self.name,
            title=self.loop.name,
            description=description.strip(),
            input_schema=self.schema,
        )


def tools_of(loops: list[tuple[spec.Loop, Any]]) -> list[LoopTool]:
    """Return a tool per ``(loop, ref)``, sorted by loop name, with unique tool names."""
    ordered = sorted(loops, key=lambda pair: pair[0].name)
    names = unique_names([loop.name for loop, _ in ordered])
    return [LoopTool(n, loop, ref) for n, (loop, ref) in zip(names, ordered, strict=True)]


class ArgumentsError(ValueError):
    """The caller's arguments do not fit the tool's input schema (the message says how)."""


@dataclass
class Arguments:
    """A call's arguments split into the loop's inputs and the controls."""

    inputs: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    payload: dict[str, Any] | None = None


def parse_arguments(tool: LoopTool, arguments: Mapping[str, Any] | None) -> Arguments:
    """Check ``arguments`` against the tool's schema; raise ``ArgumentsError`` naming each problem."""
    from jsonschema import Draft202012Validator

    given = dict(arguments or {})
    validator = Draft202012Validator(tool.schema)
    problems = []
    for error in sorted(validator.iter_errors(given), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in error.path)
        problems.append(f"{where}: {error.message}" if where else error.message)
    if problems:
        raise ArgumentsError("invalid arguments: " + "; ".join(problems))
    declared = tool.loop.inputs
    out = Arguments()
    for name, value in given.items():
        if name == DRY_RUN and name not in declared:
            out.dry_run = bool(value)
        elif name == PAYLOAD and name not in declared:
            out.payload = value
        else:
            out.inputs[name] = value
    return out


# ── The result a run gives ───────────────────────────────────────────────


def _names(steps: list[Any], path: str) -> dict[str, Any]:
    return {getattr(s, "label", None) or p: s for p, s in spec.iter_steps(steps, path)}


def _last_outputs(steps: list[Any], path: str, outputs: Mapping[str, Any]) -> list[str]:
    """Return the names of the last of ``steps`` that gave an output."""
    for index in reversed(range(len(steps))):
        found = _outputs_of(steps[index], f"{path}[{index}]", outputs)
        if found:
            return found
    return []


def _outputs_of(step: Any, here: str, outputs: Mapping[str, Any]) -> list[str]:
    """Return the names of one step's outputs: a parallel group's members' (each its
    last), a sequence's or a branch's last; a single step's own."""
    if isinstance(step, spec.ParallelStep):
        members = enumerate(step.parallel)
        return [n for i, m in members for n in _outputs_of(m, f"{here}.parallel[{i}]", outputs)]
    if isinstance(step, spec.SequentialStep):
        return _last_outputs(step.sequential, f"{here}.sequential", outputs)
    if isinstance(step, spec.ConditionalStep):  # one branch ran
        taken = _last_outputs(step.then, f"{here}.then", outputs)
        return taken or _last_outputs(step.else_ or [], f"{here}.else", outputs)
    name = getattr(step, "label", None) or here
    return [name] if name in outputs else []


def result_names(loop: spec.Loop, outputs: Mapping[str, Any]) -> list[str]:
    """Return the names of the outputs that are the loop's result.

    With ``verify:``, the makers' (their last round's, the one verified); without
    it, the last pipeline step's that gave one. Actions after verification
    (``onPass``: posting a review) deliver the result; they are not it.
    """
    if loop.verify is not None:
        makers = [m for m in loop.verify.maker if m in outputs]
        if makers:
            return makers
    return _last_outputs(loop.pipeline, "pipeline", outputs)


def _structured(step: Any, text: str) -> tuple[bool, Any]:
    if not isinstance(getattr(step, "output", None), spec.OutputSchema):
        return False, None
    from loopkit.structured import NotJson, find_json

    try:
        return True, find_json(text)
    except NotJson:
        return False, None


@dataclass
class Outcome:
    """What a run of a loop came to, as a tool result is made of it."""

    status: str
    outputs: Mapping[str, Any]
    error: str | None = None
    run: dict[str, Any] = field(default_factory=dict)
    url: str | None = None


def result_text(loop: spec.Loop, outputs: Mapping[str, Any]) -> tuple[str, Any]:
    """Return the loop's result as text and, when every part is structured, as data."""
    names = result_names(loop, outputs)
    steps = _names(loop.pipeline, "pipeline")
    texts = {name: str(outputs[name] or "") for name in names}
    parsed = {name: _structured(steps.get(name), text) for name, text in texts.items()}
    structured = None
    if names and all(ok for ok, _ in parsed.values()):
        if len(names) == 1:
            value = parsed[names[0]][1]
            structured = value if isinstance(value, dict) else {"result": value}
        else:
            structured = {name: value for name, (_, value) in parsed.items()}
    if len(names) == 1:
        return texts[names[0]], structured
    return "\n\n".join(f"## {name}\n\n{text}" for name, text in texts.items()), structured


def tool_result(loop: spec.Loop, outcome: Outcome) -> mcp_types.CallToolResult:
    """Return the tool result of a run: its verified output, or an error saying why not."""
    import mcp_types

    meta = {RUN_META: {**outcome.run, "status": outcome.status}}
    if outcome.url:
        meta[RUN_META]["url"] = outcome.url
    text, structured = result_text(loop, outcome.outputs)
    if outcome.status == "succeeded":
        return mcp_types.CallToolResult(
            content=[mcp_types.TextContent(text=text)],
            structured_content=structured,
            _meta=meta,
        )
    where = f" (see {outcome.url})" if outcome.url else ""
    if outcome.status == "waiting_for_approval":
        message = f"The run of '{loop.name}' is waiting for approval{where}"
        message += f": {outcome.error}" if outcome.error else "."
        message += " It goes on once someone allowed approves or rejects it there."
        return mcp_types.CallToolResult(content=[mcp_types.TextContent(text=message)], _meta=meta)
    message = f"The run of '{loop.name}' ended {outcome.status}{where}"
    message += f": {outcome.error}" if outcome.error else "."
    content = [mcp_types.TextContent(text=message)]
    if text:
        content.append(mcp_types.TextContent(text=f"What it produced before it stopped:\n\n{text}"))
    return mcp_types.CallToolResult(content=content, is_error=True, _meta=meta)


def error_result(message: str) -> mcp_types.CallToolResult:
    """Return an error result that is not a run's (bad arguments, a refused start)."""
    import mcp_types

    return mcp_types.CallToolResult(content=[mcp_types.TextContent(text=message)], is_error=True)


# ── Progress ─────────────────────────────────────────────────────────────


def _seconds(payload: Mapping[str, Any]) -> str:
    return f"{float(payload.get('duration_ms') or 0) / 1000:.1f} s"


_GROUPS = frozenset({"parallel", "sequential", "conditional"})


def progress_message(type_: str, payload: Mapping[str, Any]) -> str | None:
    """Return the progress line of one run event (``None``: not reported).

    A group's start and end are left out unless it has a label: its members say more.
    """
    name = payload.get("label") or payload.get("key") or "step"
    if payload.get("kind") in _GROUPS and not payload.get("label"):
        return None
    again = f" (round {payload['round']})" if int(payload.get("round") or 1) > 1 else ""
    if type_ == "step_started":
        return f"{name}: started{again}"
    if type_ == "step_finished":
        return f"{name}: finished{again} in {_seconds(payload)}"
    if type_ == "step_failed":
        retry = ", retrying" if payload.get("will_retry") else ""
        return f"{name}: failed{again}{retry}: {payload.get('error') or payload.get('code')}"
    if type_ == "verification_round":
        head = f"verification round {payload.get('round')}/{payload.get('max_rounds')}"
        if payload.get("skipped"):
            return f"{head}: skipped (nothing to verify)"
        score = payload.get("score")
        scored = f" (score {score:.2f})" if isinstance(score, int | float) else ""
        if payload.get("passed"):
            return f"{head}: passed{scored}"
        issues = "; ".join(str(i) for i in payload.get("issues") or [])
        return f"{head}: failed{scored}" + (f": {issues}" if issues else "")
    if type_ == "approval_requested":
        return f"{name}: waiting for approval: {payload.get('question') or ''}".rstrip(": ")
    return None


Report = Callable[[float, float | None, str | None], Awaitable[None]]


class Progress:
    """Report a run's events to the caller as MCP progress (one notification per line)."""

    def __init__(self, report: Report) -> None:
        self._report = report
        self.sent = 0

    async def event(self, type_: str, payload: Mapping[str, Any]) -> None:
        message = progress_message(type_, payload)
        if message is not None:
            await self.say(message)

    async def say(self, message: str) -> None:
        self.sent += 1
        await self._report(self.sent, None, message)


__all__ = [
    "Arguments",
    "ArgumentsError",
    "LoopTool",
    "Outcome",
    "Progress",
    "error_result",
    "input_schema",
    "parse_arguments",
    "progress_message",
    "result_names",
    "tool_name",
    "tool_result",
    "tools_of",
    "unique_names",
]

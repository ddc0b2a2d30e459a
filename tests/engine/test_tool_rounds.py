"""``maxToolRounds``: how many tool rounds an agent step or a checker may run."""

from __future__ import annotations

import json
from typing import Any

import pytest

from loopkit import spec
from loopkit.engine import RunOptions, StaticTools, run_loop
from loopkit.engine.runner import RunResult
from loopkit.errors import SpecError
from loopkit.llm import LLMRequest, LLMResponse, ScriptedLLM, ToolCall
from loopkit.sinks import ListSink
from loopkit.tools import FunctionTool
from loopkit.yamlio import dump, load_loop

VERDICT = json.dumps({"pass": True, "score": 0.9, "issues": []})


def tool_call(request: LLMRequest) -> LLMResponse:
    return LLMResponse(
        tool_calls=[ToolCall(id=f"c{len(request.messages)}", name="lookup", arguments={})],
        model=request.model,
    )


def keeps_calling(role: str = "any") -> ScriptedLLM:
    """A model that asks for a tool every time (only when asked as ``role``, if given)."""

    def respond(request: LLMRequest) -> LLMResponse | str:
        if role == "any" or request.role == role:
            return tool_call(request)
        return VERDICT if request.role == "checker" else "done"

    return ScriptedLLM(respond)


def calls_then_answers(times: int) -> ScriptedLLM:
    """A model that asks for a tool ``times`` times, then answers."""
    return ScriptedLLM(
        [tool_call(LLMRequest(model="m", messages=[{}] * i)) for i in range(times)],
        default="found it",
    )


async def run(text: str, llm: ScriptedLLM) -> tuple[RunResult, ListSink]:
    lookups: list[str] = []

    async def lookup() -> str:
        lookups.append("x")
        return "nothing yet"

    sink = ListSink()
    result = await run_loop(
        load_loop(text, "loops/t.yaml"),
        llm,
        sinks=[sink],
        tool_provider=StaticTools([FunctionTool("lookup", "Look it up.", {}, lookup)]),
        options=RunOptions(retry_base_delay=0.01),
    )
    assert len(lookups) == len(sink.of_type("tool_called"))
    return result, sink


SEARCH = """\
name: t
model: test-model
pipeline:
  - prompt: Find it.
    label: Search
    maxToolRounds: 3
"""


async def test_a_step_stops_after_its_max_tool_rounds_and_says_how_to_raise_it() -> None:
    llm = keeps_calling()
    result, sink = await run(SEARCH, llm)

    assert (result.status, result.error_code) == ("failed", "tool_iterations")
    assert result.error == (
        "Search: the model kept calling tools after 3 tool rounds "
        "(raise maxToolRounds on the step, or narrow its tools)"
    )
    assert len(sink.of_type("tool_called")) == 3
    assert len(llm.requests) == 4  # three rounds, then the answer that asked for a fourth


async def test_a_step_may_use_all_of_its_tool_rounds() -> None:
    result, sink = await run(SEARCH, calls_then_answers(3))

    assert result.status == "succeeded", result.error
    assert result.outputs["Search"] == "found it"
    assert len(sink.of_type("tool_called")) == 3


async def test_a_step_without_a_limit_stops_after_the_engines_ten_rounds() -> None:
    result, sink = await run(SEARCH.replace("    maxToolRounds: 3\n", ""), keeps_calling())

    assert result.error == (
        "Search: the model kept calling tools after 10 tool rounds "
        "(raise maxToolRounds on the step, or narrow its tools)"
    )
    assert len(sink.of_type("tool_called")) == 10


WITH_SUBAGENT = """\
name: t
model: test-model
subagents:
  researcher:
    role: executor
    maxToolRounds: 2
pipeline:
  - prompt: Find it.
    label: Search
    subagent: researcher
"""


async def test_a_step_without_its_own_limit_takes_its_subagents() -> None:
    result, sink = await run(WITH_SUBAGENT, keeps_calling())

    assert result.error == (
        "Search: the model kept calling tools after 2 tool rounds "
        "(raise maxToolRounds on the step or on its subagent 'researcher', or narrow its tools)"
    )
    assert len(sink.of_type("tool_called")) == 2


async def test_a_steps_own_limit_wins_over_its_subagents() -> None:
    result, sink = await run(WITH_SUBAGENT + "    maxToolRounds: 4\n", keeps_calling())

    assert result.error == (
        "Search: the model kept calling tools after 4 tool rounds "
        "(raise maxToolRounds on the step, or narrow its tools)"
    )
    assert len(sink.of_type("tool_called")) == 4


CHECKED = """\
name: t
model: test-model
connectors:
  tracker:
    type: http
    baseUrl: https://tracker.example
subagents:
  judge:
    role: verifier
    prompt: Check the answer against the tracker.
    connectors: [tracker]
    maxToolRounds: 1
pipeline:
  - prompt: Find it.
    label: Search
verify:
  maker: Search
  checker: judge
  maxRounds: 1
"""


async def test_a_verifier_subagents_limit_stops_its_checker_loop() -> None:
    llm = keeps_calling(role="checker")
    result, sink = await run(CHECKED, llm)

    assert (result.status, result.error_code) == ("failed", "tool_iterations")
    assert result.error == (
        "checker 'judge' kept calling tools after 1 tool round "
        "(raise maxToolRounds on the subagent 'judge', or narrow its tools)"
    )
    assert [e.key for e in sink.of_type("tool_called")] == ["verify.judge"]
    assert [r.role for r in llm.requests] == ["maker", "checker", "checker"]


async def test_a_checker_within_its_limit_gives_its_verdict() -> None:
    replies: list[Any] = ["the answer", tool_call(LLMRequest(model="m", messages=[])), VERDICT]
    result, sink = await run(CHECKED, ScriptedLLM(replies))

    assert result.status == "succeeded", result.error
    assert result.verdicts[0].score == 0.9
    assert len(sink.of_type("tool_called")) == 1


# ── The spec ─────────────────────────────────────────────────────────────


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_loop(text, "x.yaml")
    return [str(p) for p in caught.value.problems]


PLANNED = """\
name: t
model: test-model
pipeline:
  - plan: Find the bug.
    label: Triage
    templates:
      search:
        description: Search the code
        prompt: "Search for {{ input }}"
        maxToolRounds: 2
"""


async def test_a_plan_templates_limit_stops_the_steps_planned_from_it() -> None:
    plan = json.dumps({"steps": [{"template": "search", "input": "the bug"}], "done": False})

    def respond(request: LLMRequest) -> LLMResponse | str:
        return plan if request.role == "planner" else tool_call(request)

    result, sink = await run(PLANNED, ScriptedLLM(respond))

    assert (result.status, result.error_code) == ("failed", "tool_iterations")
    assert "kept calling tools after 2 tool rounds" in (result.error or "")
    assert len(sink.of_type("tool_called")) == 2


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "input should be greater than or equal to 1, got 0"),
        ("101", "input should be less than or equal to 100, got 101"),
        ("'5'", "expected a whole number, got '5'"),
    ],
)
def test_max_tool_rounds_must_be_a_whole_number_from_1_to_100(value: str, message: str) -> None:
    text = (
        "name: x\nsubagents:\n  r:\n    role: executor\n"
        f"    maxToolRounds: {value}\npipeline:\n  - prompt: a\n    maxToolRounds: {value}\n"
    )
    assert problems(text) == [
        f"x.yaml:8:20: {message} (pipeline[0].maxToolRounds)",
        f"x.yaml:5:20: {message} (subagents.r.maxToolRounds)",
    ]


def test_max_tool_rounds_dumps_canonically_where_the_author_put_it() -> None:
    canonical = """\
name: t
model: test-model
pipeline:
  - prompt: Find it.
    label: Search
    subagent: researcher
    maxToolRounds: 4
subagents:
  researcher:
    role: executor
    maxToolRounds: 2
"""
    loop = load_loop(canonical)
    step = loop.pipeline[0]
    assert isinstance(step, spec.AgentStep)
    assert (step.max_tool_rounds, loop.subagents["researcher"].max_tool_rounds) == (4, 2)
    assert dump(loop) == canonical


def test_the_json_schema_bounds_max_tool_rounds() -> None:
    defs = spec.json_schema()["$defs"]
    for model in ("AgentStep", "SubAgent"):
        field = defs[model]["properties"]["maxToolRounds"]
        assert (field["anyOf"][0]["minimum"], field["anyOf"][0]["maximum"]) == (1, 100)

"""Truncation is never silent (issue 12, point 6): ``finish_reason: length`` is an event and
fails the step unless it allows cut answers; ``maxOutputTokens`` is the cap sent; a budget
never shrinks a call's cap to a fragment (calls wait for room, or the run stops before the
call). Against the real OpenAI-compatible test server, requests inspected."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from typing import Any

import pytest
from llm_server import LLMServer, Reply

from loopkit import spec
from loopkit.engine import RunOptions, run_loop
from loopkit.engine.budget import BudgetLimits, BudgetTracker
from loopkit.errors import BudgetExceeded
from loopkit.llm import LiteLLMProvider, import_litellm
from loopkit.sinks import ConsoleSink, ListSink
from loopkit.yamlio import loop_from_data

MODEL = "openai/test"
PRICED = "openai/loopkit-priced-cap"


@pytest.fixture(scope="module")
def server() -> Iterator[LLMServer]:
    import_litellm().register_model(
        {
            PRICED: {
                "input_cost_per_token": 1e-6,
                "output_cost_per_token": 2e-6,
                "litellm_provider": "openai",
                "mode": "chat",
            }
        }
    )
    with LLMServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh(server: LLMServer) -> None:
    server.reset()


def prose(chars: int) -> str:
    """Text of ``chars`` characters whose streamed pieces differ (LiteLLM stops a stream
    that repeats one chunk)."""
    return "".join(f"w{i:06d} " for i in range(chars // 8 + 1))[:chars]


def writer(**step: Any) -> spec.Loop:
    budget = step.pop("budget", None)
    data: dict[str, Any] = {
        "name": "essay",
        "model": step.pop("model", MODEL),
        "pipeline": [{"prompt": "Write the essay.", "label": "Writer", **step}],
    }
    if budget:
        data["budget"] = budget
    return loop_from_data(data)


def fanout(count: int, budget: dict[str, Any], **member: Any) -> spec.Loop:
    members = [{"prompt": f"Write part {i}.", "label": f"P{i}", **member} for i in range(count)]
    return loop_from_data(
        {"name": "fan", "model": MODEL, "budget": budget, "pipeline": [{"parallel": members}]}
    )


async def run(
    server: LLMServer, loop: spec.Loop, *sinks: Any, stream: bool = True
) -> tuple[Any, ListSink]:
    sink = ListSink(deltas=stream)
    result = await asyncio.wait_for(
        run_loop(
            loop,
            LiteLLMProvider(api_base=server.url),
            sinks=[sink, *sinks],
            options=RunOptions(retry_base_delay=0.01),
        ),
        60,
    )
    return result, sink


def overlap(calls: list[Any]) -> int:
    """The most calls the server was answering at one moment."""
    moments = sorted([(c.started, 1) for c in calls] + [(c.finished, -1) for c in calls])
    now = most = 0
    for _, change in moments:
        now += change
        most = max(most, now)
    return most


async def test_a_truncated_answer_fails_its_step_with_an_event_and_a_warning_line(
    server: LLMServer,
) -> None:
    server.default = Reply("The first half of the ess", finish_reason="length")
    console = io.StringIO()
    result, sink = await run(server, writer(), ConsoleSink(console))
    assert "max_tokens" not in server.requests[0].body  # no step cap, no budget: no cap sent
    assert (result.status, result.error_code) == ("failed", "output_truncated")
    assert result.error == (
        "Writer: the answer was cut at the model's own output limit (no max_tokens was sent) "
        "(finish_reason 'length'); ask for a shorter answer, or set allowTruncation: true "
        "to accept a cut answer"
    )
    (event,) = sink.of_type("output_truncated")
    assert (event.label, event.limit, event.allowed, event.output_tokens) == (
        "Writer",
        None,
        False,
        6,
    )
    assert result.outputs == {}
    assert "[!] Writer: the answer was cut at the model's own output limit\n" in (
        console.getvalue()
    )


async def test_max_output_tokens_is_the_cap_sent_and_a_cut_there_names_it(
    server: LLMServer,
) -> None:
    server.default = Reply("w" * 2000)  # 500 tokens: the server cuts it at max_tokens
    result, sink = await run(server, writer(maxOutputTokens=50), stream=False)
    assert server.requests[0].body["max_tokens"] == 50
    assert "stream" not in server.requests[0].body
    assert result.error == (
        "Writer: the answer was cut at maxOutputTokens (50 tokens) (finish_reason 'length'); "
        "raise maxOutputTokens on the step, or set allowTruncation: true to accept a cut answer"
    )
    (failed,) = sink.of_type("step_failed")
    assert (failed.code, failed.will_retry) == ("output_truncated", False)


async def test_a_streamed_answer_cut_at_its_cap_fails_too(server: LLMServer) -> None:
    server.default = Reply("s" * 2000)
    result, sink = await run(server, writer(maxOutputTokens=40))
    assert server.requests[0].body["stream"] is True
    assert sink.of_type("step_output")  # it streamed
    assert result.error_code == "output_truncated"
    assert sink.of_type("output_truncated")[0].limit == 40


async def test_a_step_that_allows_truncation_keeps_the_cut_answer(server: LLMServer) -> None:
    server.default = Reply("w" * 2000)
    result, sink = await run(server, writer(maxOutputTokens=50, allowTruncation=True))
    assert result.status == "succeeded"
    assert result.outputs == {"Writer": "w" * 200}
    (event,) = sink.of_type("output_truncated")
    assert (event.limit, event.allowed) == (50, True)
    assert sink.of_type("step_failed") == []


async def test_under_a_large_budget_a_step_without_a_cap_gets_the_default_cap(
    server: LLMServer,
) -> None:
    await run(server, writer(budget={"maxTokens": 100000}))
    assert server.requests[0].body["max_tokens"] == 4096


async def test_a_budget_that_cannot_hold_the_steps_cap_stops_before_the_call(
    server: LLMServer,
) -> None:
    result, _ = await run(server, writer(maxOutputTokens=2000, budget={"maxTokens": 1500}))
    assert server.requests == []
    assert (result.status, result.limit) == ("budget_exceeded", "maxTokens")
    assert result.error is not None and result.error.startswith(
        "Stopping before a call that would exceed the maxTokens limit of 1500 (tokens="
    )
    assert result.error.endswith(": its input and maxOutputTokens 2000)")


async def test_a_cost_budget_that_cannot_hold_the_steps_cap_stops_before_the_call(
    server: LLMServer,
) -> None:
    loop = writer(model=PRICED, maxOutputTokens=1000, budget={"maxCostUsd": 0.001})
    result, _ = await run(server, loop)
    assert server.requests == []
    assert (result.status, result.limit) == ("budget_exceeded", "maxCostUsd")


async def test_fanout_members_wait_for_room_instead_of_taking_fragments(
    server: LLMServer,
) -> None:
    # Each member holds input + 1000 tokens while it runs and spends about 130:
    # 4000 tokens let three run at once, and all twenty finish with whole answers.
    server.default = Reply(prose(400), delay=0.15)
    result, sink = await run(server, fanout(20, {"maxTokens": 4000}, maxOutputTokens=1000))
    assert result.status == "succeeded"
    calls = server.completed()
    assert len(calls) == 20
    assert {c.body["max_tokens"] for c in calls} == {1000}
    assert overlap(calls) == 3
    assert set(result.outputs.values()) == {prose(400)}
    assert sink.of_type("output_truncated") == []


async def test_a_fanout_of_long_answers_under_a_token_budget_never_passes_a_fragment_on(
    server: LLMServer,
) -> None:
    # The case: 20 long answers (2,000 tokens each) under one token budget.
    server.default = Reply(prose(8000), delay=0.05)
    result, sink = await run(server, fanout(20, {"maxTokens": 30000}), stream=False)
    assert (result.status, result.limit) == ("budget_exceeded", "maxTokens")
    assert result.tokens.total <= 30000
    assert set(result.outputs.values()) == {prose(8000)}  # every answer passed on is whole
    cut = [c for c in server.completed() if c.body["max_tokens"] < 2000]
    assert len(cut) <= 1  # at most the last call, capped by the rest: then the run stops
    assert len(result.outputs) == len(server.completed()) - len(cut)
    assert [e.allowed for e in sink.of_type("output_truncated")] == [False] * len(cut)


def test_without_a_limit_the_cap_is_the_steps_own_or_none() -> None:
    budget = BudgetTracker(BudgetLimits())
    assert budget.reserve(100).max_output is None
    assert budget.reserve(100, output_cap=300).max_output == 300


def test_a_reservation_names_the_steps_cap_when_the_rest_cannot_hold_it() -> None:
    budget = BudgetTracker(BudgetLimits(max_tokens=1000))
    with pytest.raises(BudgetExceeded) as caught:
        budget.reserve(100, output_cap=2000, step="Writer")
    assert str(caught.value) == (
        "Stopping before a call that would exceed the maxTokens limit of 1000 "
        "(tokens=2113: used 0, this call needs at least 2113: its input and "
        "maxOutputTokens 2000)"
    )
    assert caught.value.step == "Writer"


async def test_a_checker_verdict_cut_at_its_cap_fails_the_run_too(server: LLMServer) -> None:
    server.when(
        lambda body: "adversarial" in body["messages"][0]["content"],
        Reply('{"pass": true, "sc', finish_reason="length"),
    )
    loop = loop_from_data(
        {
            "name": "checked",
            "model": MODEL,
            "pipeline": [{"prompt": "Write the essay.", "label": "Writer"}],
            "verify": {"maker": "Writer", "checker": "Adversarial Verifier"},
        }
    )
    result, sink = await run(server, loop)
    assert (result.status, result.error_code) == ("failed", "output_truncated")
    assert result.error == (
        "Adversarial Verifier: the answer was cut at the model's own output limit "
        "(no max_tokens was sent) (finish_reason 'length'); ask for a shorter answer"
    )
    (event,) = sink.of_type("output_truncated")
    assert (event.kind, event.label) == ("checker", "Adversarial Verifier")

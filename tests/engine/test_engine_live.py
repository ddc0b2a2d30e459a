"""The engine against a real OpenAI-compatible HTTP server, through LiteLLM."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from llm_server import LLMServer, Reply, verdict

from loopkit import spec
from loopkit.engine import CancelToken, RunOptions, StaticApprover, StaticTools, run_loop
from loopkit.llm import LiteLLMProvider, import_litellm
from loopkit.memory import InMemoryStore
from loopkit.sinks import ListSink
from loopkit.tools import FunctionTool, ToolResult
from loopkit.yamlio import loop_from_data

MODEL = "openai/test"
PRICED = "openai/loopkit-priced"
IN_PRICE, OUT_PRICE, CACHED_PRICE, REASONING_PRICE = 1e-6, 2e-6, 1e-7, 3e-6


@pytest.fixture(scope="module")
def server() -> Iterator[LLMServer]:
    import_litellm().register_model(
        {
            PRICED: {
                "input_cost_per_token": IN_PRICE,
                "output_cost_per_token": OUT_PRICE,
                "cache_read_input_token_cost": CACHED_PRICE,
                "output_cost_per_reasoning_token": REASONING_PRICE,
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


def make_loop(**data: Any) -> spec.Loop:
    data.setdefault("name", "t")
    data.setdefault("model", MODEL)
    return loop_from_data(data)


async def run(
    server: LLMServer, loop: spec.Loop, **kwargs: Any
) -> tuple[Any, ListSink, InMemoryStore]:
    sink, store = ListSink(), kwargs.pop("store", None) or InMemoryStore()
    options = kwargs.pop("options", None) or RunOptions(retry_base_delay=0.01, retry_max_delay=1.0)
    result = await run_loop(
        loop,
        LiteLLMProvider(api_base=server.url),
        sinks=[sink],
        store=store,
        options=options,
        **kwargs,
    )
    return result, sink, store


def agents(*labels: str) -> list[dict[str, Any]]:
    return [{"prompt": f"Do the work of {label}.", "label": label} for label in labels]


async def test_parallel_agents_really_overlap(server: LLMServer) -> None:
    server.default = Reply("done", delay=1.0)  # wide margin: the machine may be busy
    loop = make_loop(pipeline=[{"parallel": agents("A", "B", "C", "D")}])
    result, sink, _ = await run(server, loop)
    assert result.status == "succeeded"
    calls = server.completed()
    assert len(calls) == 4
    assert max(c.started for c in calls) < min(c.finished for c in calls)
    members = [e.duration_ms for e in sink.of_type("step_finished") if e.kind == "agent"]
    (group,) = [e for e in sink.of_type("step_finished") if e.kind == "parallel"]
    assert group.agents == 4
    assert group.duration_ms < sum(members)  # not one after the other


async def test_a_conditional_takes_the_then_branch_when_its_expression_is_true(
    server: LLMServer,
) -> None:
    server.when("Triage", Reply("URGENT: production is down"))
    loop = make_loop(
        pipeline=[
            {"prompt": "Triage the incident.", "label": "Triage"},
            {
                "when": "'URGENT' in steps['Triage'].output",
                "then": [{"prompt": "Page the on-call engineer.", "label": "Escalate"}],
                "else": [{"prompt": "Queue the ticket.", "label": "Queue"}],
            },
        ]
    )
    result, sink, _ = await run(server, loop)
    assert result.status == "succeeded"
    assert server.count("Page the on-call") == 1
    assert server.count("Queue the ticket") == 0
    assert [e.branch for e in sink.of_type("step_finished") if e.kind == "conditional"] == ["then"]


async def test_a_conditional_takes_the_else_branch_when_its_expression_is_false(
    server: LLMServer,
) -> None:
    server.when("Triage", Reply("minor typo"))
    loop = make_loop(
        pipeline=[
            {"prompt": "Triage the incident.", "label": "Triage"},
            {
                "when": "'URGENT' in steps['Triage'].output",
                "then": [{"prompt": "Page the on-call engineer.", "label": "Escalate"}],
                "else": [{"prompt": "Queue the ticket.", "label": "Queue"}],
            },
        ]
    )
    result, _, _ = await run(server, loop)
    assert result.status == "succeeded"
    assert server.count("Page the on-call") == 0
    assert server.count("Queue the ticket") == 1
    assert result.outputs["Queue"] == "ok"


VERIFIED = {
    "pipeline": [{"prompt": "Write the release notes.", "label": "Writer"}],
    "verify": {"maker": "Writer", "checker": "Adversarial Verifier", "maxRounds": 3},
}


async def test_a_failing_verdict_feeds_its_issues_into_the_next_round(server: LLMServer) -> None:
    server.when("adversarial verifier", verdict(False, 0.4, ["cite the changelog entry"]), times=1)
    server.when("adversarial verifier", verdict(True, 0.9))
    result, sink, _ = await run(server, make_loop(**VERIFIED))
    assert result.status == "succeeded"
    assert result.rounds == 2
    makers = [
        r for r in server.completed() if "Write the release notes" in r.text and not r.is_checker
    ]
    assert len(makers) == 2
    assert "cite the changelog entry" not in makers[0].text
    assert "cite the changelog entry" in makers[1].text
    rounds = sink.of_type("verification_round")
    assert [(r.round, r.passed, r.score, r.issues, r.will_retry) for r in rounds] == [
        (1, False, 0.4, ["cite the changelog entry"], True),
        (2, True, 0.9, [], False),
    ]


async def test_verification_stops_at_max_rounds(server: LLMServer) -> None:
    server.when("adversarial verifier", verdict(False, 0.5, ["still wrong"]))
    loop = make_loop(**{**VERIFIED, "verify": {**VERIFIED["verify"], "maxRounds": 2}})
    result, sink, store = await run(server, loop)
    assert result.status == "verification_failed"
    assert result.rounds == 2
    assert server.count("Write the release notes") == 4  # 2 makers + 2 checkers (they quote it)
    assert len([r for r in server.completed() if r.is_checker]) == 2
    assert sink.events[-1].status == "verification_failed"
    assert store.get_run(result.id).status == "verification_failed"  # type: ignore[union-attr]


async def test_a_verdict_that_is_not_json_fails_the_round_with_the_reason(
    server: LLMServer,
) -> None:
    server.when("adversarial verifier", Reply("Looks fine to me!"))
    loop = make_loop(**{**VERIFIED, "verify": {**VERIFIED["verify"], "maxRounds": 1}})
    result, sink, _ = await run(server, loop)
    assert result.status == "verification_failed"
    (round_,) = sink.of_type("verification_round")
    assert round_.passed is False
    assert round_.reason == "the checker's verdict is not JSON: 'Looks fine to me!'"


async def test_the_checker_is_asked_for_json(server: LLMServer) -> None:
    server.when("adversarial verifier", verdict(True, 0.95))
    await run(server, make_loop(**VERIFIED))
    (checker,) = [r for r in server.completed() if r.is_checker]
    assert checker.body["response_format"] == {"type": "json_object"}


# ── Budgets ──────────────────────────────────────────────────────────────


async def test_max_tokens_stops_a_wide_fanout_without_overshooting(server: LLMServer) -> None:
    server.default = Reply("x" * 4000, prompt_tokens=20, completion_tokens=400)
    loop = make_loop(
        pipeline=[
            {"parallel": agents(*[f"M{i}" for i in range(8)])},
            {"parallel": agents(*[f"N{i}" for i in range(8)])},
        ],
        budget={"maxTokens": 1500},
    )
    result, sink, _ = await run(server, loop)
    assert result.status == "budget_exceeded"
    assert result.limit == "maxTokens"
    assert result.tokens.total <= 1500
    # Each call holds the whole rest of this small budget: the members run one after the
    # other, each answer whole, until the rest cuts one (never a fragment passed on).
    calls = server.completed()
    assert [r.body["max_tokens"] >= 400 for r in calls] == [True, True, True, False]
    assert all(a.finished <= b.started for a, b in itertools.pairwise(calls))
    assert len(result.outputs) == len(calls) - 1 == 3
    assert set(result.outputs.values()) == {"x" * 4000}
    served = sum(20 + min(400, r.body["max_tokens"]) for r in calls)
    assert served == result.tokens.total
    assert result.error == (
        f"{calls[-1].body['messages'][0]['content'][len('Do the work of ') : -1]}: the answer "
        f"was cut at the {calls[-1].body['max_tokens']} output tokens left within the "
        f"maxTokens limit of 1500 (tokens={result.tokens.total})"
    )
    assert any(e.limit == "maxTokens" for e in sink.of_type("budget_warning"))
    (cut,) = sink.of_type("output_truncated")
    assert (cut.limit, cut.allowed) == (calls[-1].body["max_tokens"], False)
    finished = sink.events[-1]
    assert finished.type == "run_finished" and finished.limit == "maxTokens"


async def test_max_cost_stops_a_run_before_it_spends_more(server: LLMServer) -> None:
    server.default = Reply("y" * 1200, prompt_tokens=10, completion_tokens=300)
    loop = make_loop(
        model=PRICED,
        pipeline=agents("S1", "S2", "S3", "S4", "S5", "S6"),
        budget={"maxCostUsd": 0.001},
    )
    result, _, _ = await run(server, loop)
    assert result.status == "budget_exceeded"
    assert result.limit == "maxCostUsd"
    assert result.cost is not None and 0 < result.cost <= 0.001
    # a whole answer costs 10 * 1e-6 + 300 * 2e-6: the second call gets a smaller cap
    calls = server.completed()
    assert len(calls) == 2
    assert calls[1].body["max_tokens"] < 300


async def test_max_model_calls_stops_a_run_at_the_limit(server: LLMServer) -> None:
    loop = make_loop(pipeline=agents("S1", "S2", "S3", "S4", "S5"), budget={"maxModelCalls": 3})
    result, _, _ = await run(server, loop)
    assert result.status == "budget_exceeded"
    assert result.limit == "maxModelCalls"
    assert len(server.requests) == 3
    assert result.error == (
        "Stopping before call 4: it would exceed the maxModelCalls limit of 3 (calls=4)"
    )


async def test_max_duration_stops_a_run_in_flight(server: LLMServer) -> None:
    server.when("Do the work of S2", Reply("slow", delay=10))
    loop = make_loop(pipeline=agents("S1", "S2", "S3"), budget={"maxDurationMinutes": 0.02})
    result, _, store = await run(server, loop)
    assert result.status == "budget_exceeded"
    assert result.limit == "maxDurationMinutes"
    assert 1200 <= result.duration_ms < 1200 + 500  # stopped in flight, not after the call
    assert result.outputs == {"S1": "ok"}
    assert store.checkpoints(result.id).keys() == {"r1:pipeline[0]"}
    assert server.count("Do the work of S3", status=None) == 0


# ── Tokens and prices ────────────────────────────────────────────────────


async def test_tokens_are_recorded_by_kind_and_priced_as_litellm_does(server: LLMServer) -> None:
    server.default = Reply(
        "answer", prompt_tokens=1000, cached_tokens=600, completion_tokens=300, reasoning_tokens=200
    )
    result, sink, _ = await run(server, make_loop(model=PRICED, pipeline=agents("Only")))
    (step,) = [e for e in sink.of_type("step_finished") if e.kind == "agent"]
    assert step.tokens.as_dict() == {
        "input": 400,
        "output": 100,
        "cached_read": 600,
        "cache_write": 0,
        "reasoning": 200,
        "total": 1300,
    }
    expected = 400 * IN_PRICE + 600 * CACHED_PRICE + 100 * OUT_PRICE + 200 * REASONING_PRICE
    assert step.cost == pytest.approx(expected)
    assert result.cost == pytest.approx(expected)


async def test_an_unknown_price_is_reported_as_unknown_not_zero(server: LLMServer) -> None:
    result, sink, store = await run(server, make_loop(pipeline=agents("Only")))
    assert result.status == "succeeded"
    assert result.cost is None
    finished = sink.events[-1]
    assert finished.cost_known is False
    assert store.get_run(result.id).cost is None  # type: ignore[union-attr]


# ── Retries and timeouts ─────────────────────────────────────────────────


async def test_a_429_is_retried_after_the_retry_after_delay(server: LLMServer) -> None:
    server.script(Reply(status=429, headers={"Retry-After": "0.2"}), Reply("fine"))
    result, sink, _ = await run(server, make_loop(pipeline=agents("Only")))
    assert result.status == "succeeded"
    first, second = server.requests
    assert (first.status, second.status) == (429, 200)
    assert second.started - first.finished >= 0.2
    (failed,) = sink.of_type("step_failed")
    assert (failed.attempt, failed.will_retry) == (1, True)


async def test_a_500_is_retried_with_backoff(server: LLMServer) -> None:
    server.script(Reply(status=500), Reply(status=500), Reply("fine"))
    options = RunOptions(retry_base_delay=0.1, retry_max_delay=1.0)
    result, _, _ = await run(server, make_loop(pipeline=agents("Only")), options=options)
    assert result.status == "succeeded"
    assert [r.status for r in server.requests] == [500, 500, 200]
    a, b, c = server.requests
    assert b.started - a.finished >= 0.1
    assert c.started - b.finished >= 0.2  # the delay doubled


async def test_a_400_is_not_retried(server: LLMServer) -> None:
    server.script(Reply(status=400, error="bad request: unknown parameter"))
    result, _, _ = await run(server, make_loop(pipeline=agents("Only")))
    assert result.status == "failed"
    assert len(server.requests) == 1
    assert "bad request: unknown parameter" in (result.error or "")


async def test_retries_give_up_after_the_steps_retries(server: LLMServer) -> None:
    server.default = Reply(status=503)
    loop = make_loop(pipeline=[{"prompt": "Work.", "label": "Only", "retries": 1}])
    result, _, _ = await run(server, loop)
    assert result.status == "failed"
    assert len(server.requests) == 2


async def test_a_step_timeout_stops_a_slow_reply_and_retries(server: LLMServer) -> None:
    server.script(Reply("too late", delay=3.0), Reply("in time"))
    loop = make_loop(pipeline=[{"prompt": "Work.", "label": "Only", "timeout": 0.5, "retries": 1}])
    started = time.perf_counter()
    result, sink, _ = await run(server, loop)
    assert time.perf_counter() - started < 2.5
    assert result.status == "succeeded"
    assert result.outputs["Only"] == "in time"
    (failed,) = sink.of_type("step_failed")
    assert "did not answer within" in failed.error


# ── Tools, cancellation, approval ────────────────────────────────────────


async def test_an_agent_step_runs_a_tool_use_loop(server: LLMServer) -> None:
    seen: list[dict[str, Any]] = []

    async def lookup(ticket: str) -> ToolResult:
        seen.append({"ticket": ticket})
        return ToolResult(content=f"{ticket}: printer on fire")

    tool = FunctionTool(
        "lookup",
        "Find a ticket",
        {"type": "object", "properties": {"ticket": {"type": "string"}}},
        lookup,
    )
    server.tool_call("lookup", {"ticket": "T-7"})
    server.script(Reply("The printer is on fire."))
    result, sink, _ = await run(
        server, make_loop(pipeline=agents("Support")), tool_provider=StaticTools([tool])
    )
    assert result.status == "succeeded"
    assert seen == [{"ticket": "T-7"}]
    first, second = server.completed()
    assert first.body["tools"][0]["function"]["name"] == "lookup"
    assert second.body["messages"][-1] == {
        "role": "tool",
        "tool_call_id": second.body["messages"][-2]["tool_calls"][0]["id"],
        "content": "T-7: printer on fire",
    }
    (called,) = sink.of_type("tool_called")
    assert (called.name, called.arguments, called.result) == (
        "lookup",
        {"ticket": "T-7"},
        "T-7: printer on fire",
    )
    (step,) = [e for e in sink.of_type("step_finished") if e.kind == "agent"]
    assert step.output == "The printer is on fire."


async def test_a_cancelled_run_stops_in_flight_and_keeps_finished_steps(server: LLMServer) -> None:
    server.when("Step two", Reply("never", delay=5))
    cancel = CancelToken()
    loop = make_loop(
        pipeline=[{"prompt": "Step one.", "label": "One"}, {"prompt": "Step two.", "label": "Two"}]
    )

    async def fire() -> None:
        while server.count("Step two", status=None) == 0:
            await asyncio.sleep(0.01)
        cancel.cancel("stopped by the test")

    started = time.perf_counter()
    (result, _sink, store), _ = await asyncio.gather(run(server, loop, cancel=cancel), fire())
    assert time.perf_counter() - started < 2
    assert result.status == "cancelled"
    assert result.error == "stopped by the test"
    assert store.checkpoints(result.id).keys() == {"r1:pipeline[0]"}
    assert store.get_run(result.id).status == "cancelled"  # type: ignore[union-attr]


async def test_a_rejected_approval_stops_the_run(server: LLMServer) -> None:
    loop = make_loop(
        pipeline=[
            {"prompt": "Draft.", "label": "Draft"},
            {"approve": "Publish the draft?", "label": "Gate"},
            {"prompt": "Publish.", "label": "Publish"},
        ]
    )
    approver = StaticApprover(False, by="alice", reason="not today")
    result, sink, _ = await run(server, loop, approver=approver)
    assert result.status == "cancelled"
    assert result.error_code == "approval_rejected"
    assert server.count("Publish.") == 0
    (asked,) = sink.of_type("approval_requested")
    (resolved,) = sink.of_type("approval_resolved")
    assert asked.question == "Publish the draft?"
    assert (resolved.approved, resolved.by, resolved.reason) == (False, "alice", "not today")
    assert approver.requests[0].outputs == {"Draft": "ok"}


async def test_events_are_numbered_and_json_serialisable(server: LLMServer) -> None:
    server.when("adversarial verifier", verdict(True, 0.9))
    _, sink, _ = await run(server, make_loop(**VERIFIED))
    assert [e.seq for e in sink.events] == list(range(1, len(sink.events) + 1))
    types = [json.loads(json.dumps(e.as_dict()))["type"] for e in sink.events]
    assert types == [
        "run_started",
        "step_started",
        "step_finished",
        "verification_round",
        "run_finished",
    ]


async def test_a_verifier_subagent_checks_with_its_own_model_and_prompt(server: LLMServer) -> None:
    server.when(lambda body: body["model"] == "strict-checker", verdict(True, 0.99))
    loop = make_loop(
        pipeline=agents("Writer"),
        subagents={
            "Critic": {
                "role": "verifier",
                "model": "openai/strict-checker",
                "prompt": "You are harsh.",
            }
        },
        verify={"maker": "Writer", "checker": "Critic"},
    )
    result, sink, _ = await run(server, loop)
    assert result.status == "succeeded"
    maker, checker = server.completed()
    assert (maker.body["model"], checker.body["model"]) == ("test", "strict-checker")
    assert checker.body["messages"][0] == {"role": "system", "content": "You are harsh."}
    assert "Writer" in checker.body["messages"][1]["content"]
    (round_,) = sink.of_type("verification_round")
    assert (round_.checker, round_.score) == ("Critic", 0.99)

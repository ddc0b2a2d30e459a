"""Streamed agent output: ``step_output`` events from a real SSE stream, through LiteLLM."""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_server import LLMServer, Reply

from loopkit import secrets, spec
from loopkit.engine import RunOptions, StaticTools, run_loop
from loopkit.llm import DryRunProvider, LiteLLMProvider, import_litellm
from loopkit.sinks import ConsoleSink, JsonlSink, ListSink
from loopkit.tools import FunctionTool, ToolResult
from loopkit.yamlio import loop_from_data

MODEL = "openai/test"
PRICED = "openai/loopkit-stream-priced"
IN_PRICE, OUT_PRICE, CACHED_PRICE, WRITE_PRICE, REASONING_PRICE = 1e-6, 2e-6, 1e-7, 1.5e-6, 3e-6


@pytest.fixture(scope="module")
def server() -> Iterator[LLMServer]:
    import_litellm().register_model(
        {
            PRICED: {
                "input_cost_per_token": IN_PRICE,
                "output_cost_per_token": OUT_PRICE,
                "cache_read_input_token_cost": CACHED_PRICE,
                "cache_creation_input_token_cost": WRITE_PRICE,
                "output_cost_per_reasoning_token": REASONING_PRICE,
                "litellm_provider": "openai",
                "mode": "chat",
            }
        }
    )
    with LLMServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh(server: LLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server.reset()
    # Secrets resolved by other tests in this process would make the stream hold text
    # back (see the secret test): each test starts with none.
    monkeypatch.setattr(secrets, "REGISTRY", secrets.Registry())


def one_agent(model: str = MODEL) -> spec.Loop:
    return loop_from_data(
        {"name": "s", "model": model, "pipeline": [{"prompt": "Write it.", "label": "Writer"}]}
    )


async def run(
    server: LLMServer, loop: spec.Loop, sink: Any, **kwargs: Any
) -> tuple[Any, list[Any]]:
    options = kwargs.pop("options", None) or RunOptions(retry_base_delay=0.01)
    result = await run_loop(
        loop, LiteLLMProvider(api_base=server.url), sinks=[sink], options=options, **kwargs
    )
    return result, sink.events


def finished_agent(events: list[Any]) -> Any:
    (step,) = [e for e in events if e.type == "step_finished" and e.kind == "agent"]
    return step


async def test_a_streamed_step_emits_its_text_in_order_and_the_whole_output_at_the_end(
    server: LLMServer,
) -> None:
    pieces = [f"part {i} of the answer; " for i in range(6)]
    server.default = Reply("".join(pieces), chunks=pieces, chunk_delay=0.15)
    result, events = await run(server, one_agent(), ListSink(deltas=True))
    assert result.status == "succeeded"
    assert server.requests[0].body["stream"] is True
    assert server.requests[0].body["stream_options"] == {"include_usage": True}
    deltas = [e for e in events if e.type == "step_output"]
    step = finished_agent(events)
    # Chunks 150 ms apart are each worth an event (the coalescing window is 100 ms).
    assert len(deltas) >= 4
    assert "".join(d.text for d in deltas) == step.output == "".join(pieces)
    running = 0
    for delta in deltas:
        running += len(delta.text)
        assert (delta.key, delta.label, delta.round, delta.call) == ("pipeline[0]", "Writer", 1, 1)
        assert delta.chars == running
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs)
    started = next(e for e in events if e.type == "step_started" and e.kind == "agent")
    assert started.seq < deltas[0].seq and deltas[-1].seq < step.seq
    # The first text was seen while the model was still answering.
    assert deltas[0].at < step.at - 0.3


async def test_a_fast_stream_is_coalesced_into_few_events(server: LLMServer) -> None:
    # 600 characters, no pause between chunks (distinct: LiteLLM fails a stream that
    # repeats one chunk 100 times, as a model stuck in a loop).
    pieces = [f"{i:04d}," for i in range(120)]
    server.default = Reply("".join(pieces), chunks=pieces)
    _, events = await run(server, one_agent(), ListSink(deltas=True))
    deltas = [e for e in events if e.type == "step_output"]
    assert len(deltas) < len(pieces) / 4
    assert {d.call for d in deltas} == {1}
    # Each event but the last waited ~100 ms after the one before or carries 200 characters.
    for before, after in itertools.pairwise(deltas[:-1]):
        assert after.at - before.at >= 0.09 or len(after.text) >= 200
    assert "".join(d.text for d in deltas) == finished_agent(events).output


async def test_streamed_tokens_and_cost_equal_the_non_streamed_figures(server: LLMServer) -> None:
    server.default = Reply(
        "a priced answer, streamed or not",
        prompt_tokens=1000,
        cached_tokens=500,
        cache_creation_tokens=100,
        completion_tokens=300,
        reasoning_tokens=200,
    )
    streamed, s_events = await run(server, one_agent(PRICED), ListSink(deltas=True))
    plain, p_events = await run(server, one_agent(PRICED), ListSink())
    assert server.requests[0].body.get("stream") is True
    assert "stream" not in server.requests[1].body
    assert [e for e in s_events if e.type == "step_output"]
    assert not [e for e in p_events if e.type == "step_output"]
    expected_tokens = {
        "input": 400,
        "output": 100,
        "cached_read": 500,
        "cache_write": 100,
        "reasoning": 200,
        "total": 1300,
    }
    assert finished_agent(s_events).tokens.as_dict() == expected_tokens
    assert finished_agent(p_events).tokens.as_dict() == expected_tokens
    assert streamed.tokens.as_dict() == plain.tokens.as_dict() == expected_tokens
    assert streamed.cost is not None and plain.cost is not None
    assert streamed.cost == pytest.approx(plain.cost)
    assert finished_agent(s_events).cost == pytest.approx(finished_agent(p_events).cost)


async def test_a_stream_without_usage_is_counted_by_litellm(server: LLMServer) -> None:
    server.default = Reply("a provider that sends no usage when it streams", stream_usage=False)
    result, events = await run(server, one_agent(PRICED), ListSink(deltas=True))
    tokens = finished_agent(events).tokens
    assert tokens.input > 0 and tokens.output > 0
    assert result.cost == pytest.approx(tokens.input * IN_PRICE + tokens.output * OUT_PRICE)


async def test_nothing_streams_when_no_sink_wants_deltas_or_streaming_is_off(
    server: LLMServer,
) -> None:
    _, events = await run(server, one_agent(), ListSink())
    off, off_events = await run(
        server, one_agent(), ListSink(deltas=True), options=RunOptions(stream_output=False)
    )
    assert off.status == "succeeded"
    assert all("stream" not in r.body for r in server.requests)
    assert not [e for e in events + off_events if e.type == "step_output"]


async def test_a_tool_round_streams_only_text_and_its_tool_calls_arrive_as_usual(
    server: LLMServer,
) -> None:
    async def lookup(ticket: str) -> ToolResult:
        return ToolResult(content=f"{ticket}: printer on fire")

    tool = FunctionTool(
        "lookup",
        "Find a ticket",
        {"type": "object", "properties": {"ticket": {"type": "string"}}},
        lookup,
    )
    server.tool_call("lookup", {"ticket": "T-7"})
    server.script(Reply("The printer is on fire.", chunks=["The printer ", "is on fire."]))
    result, events = await run(
        server, one_agent(), ListSink(deltas=True), tool_provider=StaticTools([tool])
    )
    assert result.status == "succeeded"
    (called,) = [e for e in events if e.type == "tool_called"]
    assert called.arguments == {"ticket": "T-7"}
    deltas = [e for e in events if e.type == "step_output"]
    assert {d.call for d in deltas} == {2}  # the tool round had no text
    assert all(d.seq > called.seq for d in deltas)
    assert "".join(d.text for d in deltas) == finished_agent(events).output


async def test_a_retried_call_starts_its_text_again(server: LLMServer) -> None:
    server.script(Reply(status=500), Reply("second try"))
    result, events = await run(server, one_agent(), ListSink(deltas=True))
    assert result.status == "succeeded"
    deltas = [e for e in events if e.type == "step_output"]
    assert {d.call for d in deltas} == {2}
    assert "".join(d.text for d in deltas) == "second try"


async def test_the_dry_run_streams_its_text_only_when_it_has_a_latency() -> None:
    loop = one_agent()
    slow = ListSink(deltas=True)
    # 600 ms in 4 pieces: 150 ms apart, more than the 100 ms coalescing window.
    await run_loop(loop, DryRunProvider(latency_ms=600), sinks=[slow])
    deltas = [e for e in slow.events if e.type == "step_output"]
    assert len(deltas) == DryRunProvider.STREAM_PIECES
    assert "".join(d.text for d in deltas) == finished_agent(slow.events).output
    fast = ListSink(deltas=True)
    await run_loop(loop, DryRunProvider(), sinks=[fast])
    assert not [e for e in fast.events if e.type == "step_output"]


async def test_the_jsonl_sink_writes_deltas_and_the_verbose_console_prints_them() -> None:
    loop = one_agent()
    out, console = io.StringIO(), io.StringIO()
    await run_loop(
        loop,
        DryRunProvider(latency_ms=80),
        sinks=[JsonlSink(out), ConsoleSink(console, stream_text=True)],
    )
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    deltas = [line for line in lines if line["type"] == "step_output"]
    final = next(line for line in lines if line["type"] == "step_finished")
    assert "".join(d["text"] for d in deltas) == final["output"]
    assert [d["chars"] for d in deltas] == sorted(d["chars"] for d in deltas)
    text = console.getvalue()
    assert f"    Writer | {final['output']}\n    + Completed" in text
    quiet = io.StringIO()
    await run_loop(loop, DryRunProvider(latency_ms=80), sinks=[ConsoleSink(quiet)])
    assert "Writer |" not in quiet.getvalue()


# ── loopkit run (a real process against the real server) ────────────────


def cli(server: LLMServer, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LOOPKIT_")}
    environ.update(LOOPKIT_API_BASE=server.url, LOOPKIT_MODEL=MODEL)
    return subprocess.run(
        [str(Path(sys.executable).parent / "loopkit"), "run", "stream", *args],
        cwd=project,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "loops").mkdir()
    (tmp_path / "loops" / "stream.yaml").write_text(
        "name: stream\npipeline:\n  - prompt: Write it.\n    label: Writer\n"
    )
    return tmp_path


def test_loopkit_run_verbose_prints_the_streamed_text_and_json_writes_it(
    server: LLMServer, project: Path
) -> None:
    pieces = ["First line of the answer.\n", "Second ", "line."]
    server.default = Reply("".join(pieces), chunks=pieces, chunk_delay=0.12)
    verbose = cli(server, project, "--verbose")
    assert verbose.returncode == 0, verbose.stderr
    assert (
        "  -> Agent: Writer...\n    Writer | First line of the answer.\n"
        "    Writer | Second line.\n    + Completed"
    ) in verbose.stdout
    lines = [json.loads(line) for line in cli(server, project, "--json").stdout.splitlines()]
    deltas = [line for line in lines if line["type"] == "step_output"]
    assert len(deltas) >= 2
    assert "".join(d["text"] for d in deltas) == "".join(pieces)
    assert [r.body.get("stream") for r in server.requests] == [True, True]
    quiet = cli(server, project, "--json", "--no-stream").stdout.splitlines()
    assert not [line for line in quiet if '"step_output"' in line]
    assert "stream" not in server.requests[-1].body


async def test_a_secret_split_across_pieces_is_never_streamed_unmasked(server: LLMServer) -> None:
    secret = "sk-live-0123456789abcdef"
    pieces = ["The key is sk-live-0123", "456789abcdef, keep it safe."]
    server.default = Reply("".join(pieces), chunks=pieces, chunk_delay=0.15)
    secrets.REGISTRY.add("LOOPKIT_STREAM_TEST_KEY", secret)
    _, events = await run(server, one_agent(), ListSink(deltas=True))
    deltas = [e for e in events if e.type == "step_output"]
    streamed = "".join(d.text for d in deltas)
    output = finished_agent(events).output
    assert secret not in output and "LOOPKIT_STREAM_TEST_KEY" in output
    assert streamed == output
    assert not any("sk-live-0123" in d.text for d in deltas)
    assert deltas[-1].chars == len(output)

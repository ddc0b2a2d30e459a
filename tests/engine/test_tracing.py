"""Runs exported as OpenTelemetry GenAI traces, received by a real OTLP/HTTP receiver.

``loopkit run`` runs as a real process with ``OTEL_EXPORTER_OTLP_ENDPOINT``
pointing at ``OTLPReceiver``; the model is the OpenAI-compatible test server,
the tool an HTTP API (a careless one: it echoes its bearer token back).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from llm_server import LLMServer, Reply, verdict
from otlp_receiver import OTLPReceiver, Span
from tracing_support import TOOL_TOKEN, Tickets, traced_loop

from loopkit import tracing
from loopkit.engine.runner import run_loop
from loopkit.errors import ProviderError
from loopkit.genai import SCHEMA_URL
from loopkit.llm import ScriptedLLM
from loopkit.yamlio import loop_from_data

PROVIDER_KEY = "sk-provider-otel-7Hq2Zr9"
CONTENT_KEYS = {
    "gen_ai.system_instructions",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.evaluation.explanation",
}


@pytest.fixture
def tickets() -> Iterator[Tickets]:
    server = Tickets()
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as r:
        yield r


def project(tmp_path: Path, server: LLMServer, tickets: Tickets) -> Path:
    (tmp_path / "loopkit.yaml").write_text(
        "version: 1\nproviders:\n  local:\n    model: openai/fake-model\n"
        f"    apiBase: {server.url}\n    apiKey: ${{OTEL_TEST_PROVIDER_KEY}}\n    default: true\n"
    )
    (tmp_path / "loops").mkdir()
    (tmp_path / "loops" / "traced.yaml").write_text(traced_loop(tickets.url))
    return tmp_path


def script(server: LLMServer) -> None:
    """Round 1: a tool call, an answer, a failing verdict; round 2: an answer that passes."""
    server.when("adversarial verifier", verdict(False, 0.4, ["name the ticket's title"]), times=1)
    server.when("adversarial verifier", verdict(True, 0.9))
    server.tool_call("tickets__lookup", {"id": "T-7"})
    server.script(Reply("T-7 is about a login problem."))
    server.default = Reply("T-7 (login fails) is about a login problem.")


def otel_env(receiver: OTLPReceiver, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPKIT_", "OTEL_"))}
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_SERVICE_NAME="loopkit-tests",
        OTEL_EXPORTER_OTLP_HEADERS="x-tenant=acme",
        OTEL_TEST_PROVIDER_KEY=PROVIDER_KEY,
        OTEL_TEST_TOOL_TOKEN=TOOL_TOKEN,
        **extra,
    )
    return env


def run_cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopkit.cli", "run", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def root_of(receiver: OTLPReceiver) -> Span:
    (root,) = [s for s in receiver.spans if not s.parent_id]
    return root


def test_a_cli_run_is_one_trace_of_genai_spans(
    tmp_path: Path, receiver: OTLPReceiver, tickets: Tickets
) -> None:
    with LLMServer() as server:
        script(server)
        done = run_cli(
            project(tmp_path, server, tickets),
            otel_env(receiver, OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="true"),
            "traced",
        )
        tool_call_id = server.requests[1].body["messages"][-1]["tool_call_id"]

    assert done.returncode == 0, done.stderr
    root = root_of(receiver)
    assert receiver.tree(root) == [
        "invoke_workflow traced",
        "  invoke_agent Writer",
        "    chat openai/fake-model",
        "    execute_tool tickets__lookup",
        "    chat openai/fake-model",
        "  verification round 1",
        "    invoke_agent Adversarial Verifier",
        "      chat openai/fake-model",
        "  invoke_agent Writer",
        "    chat openai/fake-model",
        "  verification round 2",
        "    invoke_agent Adversarial Verifier",
        "      chat openai/fake-model",
    ]
    assert {s.trace_id for s in receiver.spans} == {root.trace_id}
    assert root.resource["service.name"] == "loopkit-tests"
    assert {s.schema_url for s in receiver.spans} == {SCHEMA_URL}
    assert all(h.get("x-tenant") == "acme" for h in receiver.headers)

    run_id = root.attributes["loopkit.run.id"]
    assert root.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert root.attributes["gen_ai.workflow.name"] == "traced"
    assert root.attributes["gen_ai.conversation.id"] == run_id
    assert root.attributes["loopkit.run.status"] == "succeeded"
    assert root.attributes["loopkit.run.requests"] == 5
    assert root.attributes["loopkit.run.rounds"] == 2
    assert root.attributes["loopkit.verification.outcome"] == "passed"
    chats = receiver.named("chat ")
    assert root.attributes["gen_ai.usage.input_tokens"] == sum(
        c.attributes["gen_ai.usage.input_tokens"] for c in chats
    )
    assert root.attributes["gen_ai.usage.output_tokens"] > 0
    assert not root.error

    writer = receiver.children(root)[0]
    assert writer.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert writer.attributes["gen_ai.agent.name"] == "Writer"
    assert writer.attributes["gen_ai.request.model"] == "team:local"
    first, tool, second = receiver.children(writer)
    assert first.kind == 3  # SPAN_KIND_CLIENT
    described = {
        k: v
        for k, v in first.attributes.items()
        if not k.startswith(("gen_ai.usage.", "gen_ai.in", "gen_ai.out"))
    }
    assert described == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "openai/fake-model",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.response.model": "fake-model",
        "gen_ai.response.finish_reasons": ["tool_calls"],
    }
    assert first.attributes["gen_ai.usage.input_tokens"] > 0
    assert second.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert tool.attributes["gen_ai.tool.name"] == "tickets__lookup"
    assert tool.attributes["gen_ai.tool.call.id"] == tool_call_id
    assert first.end <= tool.start and tool.end <= second.start

    rounds = receiver.named("verification round")
    assert [
        (
            r.attributes["gen_ai.evaluation.score.value"],
            r.attributes["gen_ai.evaluation.score.label"],
            r.attributes["loopkit.verification.passed"],
            r.attributes["loopkit.verification.will_retry"],
        )
        for r in rounds
    ] == [(0.4, "fail", False, True), (0.9, "pass", True, False)]
    assert rounds[0].events[0][0] == "gen_ai.evaluation.result"

    # Content is captured (asked for), with every secret masked.
    assert json.loads(first.attributes["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Summarise ticket T-7."}]}
    ]
    assert json.loads(first.attributes["gen_ai.output.messages"])[0]["parts"] == [
        {
            "type": "tool_call",
            "id": tool_call_id,
            "name": "tickets__lookup",
            "arguments": {"id": "T-7"},
        }
    ]
    assert "[redacted:OTEL_TEST_TOOL_TOKEN]" in tool.attributes["gen_ai.tool.call.result"]
    assert "[redacted:OTEL_TEST_TOOL_TOKEN]" in second.attributes["gen_ai.input.messages"]
    received = b"".join(receiver.bodies)
    assert TOOL_TOKEN.encode() not in received
    assert PROVIDER_KEY.encode() not in received


def test_without_content_capture_no_prompt_or_answer_is_exported(
    tmp_path: Path, receiver: OTLPReceiver, tickets: Tickets
) -> None:
    with LLMServer() as server:  # a dry run: no model is called, prompts are rendered all the same
        done = run_cli(
            project(tmp_path, server, tickets), otel_env(receiver), "--dry-run", "traced"
        )

    assert done.returncode == 0, done.stderr
    assert [s.name for s in receiver.named("chat ")] == ["chat dry-run"] * 2
    assert not [(s.name, k) for s in receiver.spans for k in s.attributes if k in CONTENT_KEYS]
    received = b"".join(receiver.bodies)
    for text in ("Summarise ticket", "no model was called", TOOL_TOKEN, PROVIDER_KEY):
        assert text.encode() not in received


MODULES = (
    "import sys, json\n"
    "from loopkit.cli import main\n"
    "code = main(['run', '--dry-run', 'loops/pr-review.yaml'])\n"
    "print(json.dumps([code, sorted(m for m in sys.modules if m.startswith("
    "('opentelemetry', 'loopkit.otel', 'google.protobuf')))]))\n"
)


def _modules(env: dict[str, str]) -> tuple[int, list[str]]:
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", MODULES], cwd=repo, env=env, capture_output=True, text=True
    )
    code, modules = json.loads(done.stdout.strip().splitlines()[-1])
    return code, modules


def test_without_an_endpoint_nothing_of_opentelemetry_is_imported(receiver: OTLPReceiver) -> None:
    untraced = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}

    assert _modules(untraced) == (0, [])
    # The same run with an endpoint loads the SDK (and exports the dry run's trace).
    code, modules = _modules({**untraced, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
    assert code == 0
    assert {"loopkit.otel", "opentelemetry.sdk.trace"} <= set(modules)
    assert receiver.named("invoke_workflow pr-review")


def test_a_protocol_other_than_http_protobuf_is_refused_with_how_to_fix_it(
    receiver: OTLPReceiver,
) -> None:
    repo = Path(__file__).resolve().parents[2]
    done = run_cli(
        repo,
        otel_env(receiver, OTEL_EXPORTER_OTLP_PROTOCOL="grpc"),
        "--dry-run",
        "loops/pr-review.yaml",
    )

    assert done.returncode == 2
    assert done.stderr.strip() == (
        "loopkit run: OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported: LoopKit exports "
        "traces over OTLP/HTTP with protobuf; set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf "
        "(or unset it) and point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's HTTP port "
        "(usually 4318)"
    )


def test_an_endpoint_without_a_scheme_is_refused_with_how_to_fix_it(
    receiver: OTLPReceiver,
) -> None:
    repo = Path(__file__).resolve().parents[2]
    done = run_cli(
        repo,
        {**otel_env(receiver), "OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318"},
        "--dry-run",
        "loops/pr-review.yaml",
    )

    assert done.returncode == 2
    assert done.stderr.strip() == (
        "loopkit run: OTEL_EXPORTER_OTLP_ENDPOINT=localhost:4318 is not a URL: give the "
        "collector's OTLP/HTTP address with its scheme, e.g. "
        "OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318"
    )


@pytest.fixture
def traced_here(receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Trace this process's runs to ``receiver`` (a provider of its own, shut down after)."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    tracing.shutdown()
    yield
    tracing.shutdown()


async def test_a_failed_model_call_marks_its_spans_and_the_run_as_errors(
    receiver: OTLPReceiver, traced_here: None
) -> None:
    loop = loop_from_data(
        {"name": "failing", "model": "openai/x", "pipeline": [{"prompt": "Hi", "label": "Ask"}]}
    )
    llm, sinks = tracing.instrument(
        ScriptedLLM([ProviderError("bad request", status_code=400, retryable=False)]), []
    )

    result = await run_loop(loop, llm, sinks=sinks)
    tracing.flush()

    assert result.status == "failed"
    root = root_of(receiver)
    (agent,) = receiver.children(root)
    (chat,) = receiver.children(agent)
    assert [(s.name, s.error, s.attributes.get("error.type")) for s in (root, agent, chat)] == [
        ("invoke_workflow failing", True, "provider_error"),
        ("invoke_agent Ask", True, "provider_error"),
        ("chat openai/x", True, "400"),
    ]

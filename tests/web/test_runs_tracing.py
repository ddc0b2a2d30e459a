"""The web worker's runs exported as OpenTelemetry GenAI traces (runs.host, runs.engine_adapter).

Runs execute on this process's run host as in a worker, with
``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at a real OTLP/HTTP receiver.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from loopkit import tracing
from runs import lifecycle
from runs.host import host
from runs.lifecycle import start_run
from runs.models import ApprovalRequest, Run, Status
from tests.engine.llm_server import LLMServer, Reply, verdict
from tests.engine.otlp_receiver import OTLPReceiver, Span
from tests.engine.tracing_support import TOOL_TOKEN, Tickets, traced_loop

from .runs_support import CollectingQueue, make_loop

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OTLPReceiver]:
    """Trace this worker's runs to a receiver (a tracer provider of its own, shut down after)."""
    with OTLPReceiver() as r:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", r.url)
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
        tracing.shutdown()
        yield r
        tracing.shutdown()


@pytest.fixture
def tickets() -> Iterator[Tickets]:
    import threading

    server = Tickets()
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def script(server: LLMServer) -> None:
    """Round 1: a tool call, an answer, a failing verdict; round 2: an answer that passes."""
    server.when("adversarial verifier", verdict(False, 0.4, ["name the ticket's title"]), times=1)
    server.when("adversarial verifier", verdict(True, 0.9))
    server.tool_call("tickets__lookup", {"id": "T-7"})
    server.script(Reply("T-7 is about a login problem."))
    server.default = Reply("T-7 (login fails) is about a login problem.")


def roots(receiver: OTLPReceiver) -> list[Span]:
    return sorted((s for s in receiver.spans if not s.parent_id), key=lambda s: s.start)


def test_a_workers_live_run_is_one_trace_with_its_tool_call_and_rounds(
    make_team: Any,
    client_for: Any,
    receiver: OTLPReceiver,
    tickets: Tickets,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    acme, users = make_team("Acme", roles=["editor"])
    loop = make_loop(
        acme,
        yaml=traced_loop(tickets.url).replace(
            "name: traced\n", "name: traced\nmodel: openai/fake-model\n"
        ),
    )
    monkeypatch.setenv("OTEL_TEST_TOOL_TOKEN", TOOL_TOKEN)
    with LLMServer() as server:
        script(server)
        monkeypatch.setenv("LOOPKIT_API_BASE", server.url)
        monkeypatch.setenv("LOOPKIT_API_KEY", "sk-web-otel-key-5Tz")

        response = client_for(users["editor"]).post(
            "/api/runs", {"loop_id": loop.pk}, content_type="application/json"
        )

    assert response.status_code == 201, response.content
    assert response.json()["status"] == "succeeded", response.json()["error"]
    tracing.flush()
    (root,) = roots(receiver)
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
    assert root.attributes["loopkit.run.id"] == str(response.json()["id"])
    assert root.attributes["loopkit.run.status"] == "succeeded"
    assert root.attributes["loopkit.loop.config"] == "traced v1"
    received = b"".join(receiver.bodies)
    assert b"[redacted:OTEL_TEST_TOOL_TOKEN]" in received
    assert TOOL_TOKEN.encode() not in received
    assert b"sk-web-otel-key-5Tz" not in received


def test_concurrent_runs_on_one_host_each_get_their_own_correctly_parented_trace(
    make_team: Any, receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme, users = make_team("Acme", roles=["editor"])
    loop = make_loop(acme, latency_ms=40)
    queue = CollectingQueue()
    monkeypatch.setattr(lifecycle, "_queue", queue)
    runs = [
        start_run(loop, trigger_type="manual", dry_run=True, actor=users["editor"])
        for _ in range(4)
    ]

    futures = [host().execute(run.pk) for run in runs]
    assert [f if isinstance(f, str) else f.result(timeout=60) for f in futures] == ["succeeded"] * 4
    tracing.flush()

    traces = roots(receiver)
    assert sorted(r.attributes["loopkit.run.id"] for r in traces) == sorted(str(r.pk) for r in runs)
    assert len({r.trace_id for r in traces}) == 4
    # The runs overlapped on the host's one event loop...
    first, last = min(r.end for r in traces), max(r.start for r in traces)
    assert last < first
    for root in traces:
        # ...and each trace holds its own run's spans only, each under the right parent.
        spans = [s for s in receiver.spans if s.trace_id == root.trace_id]
        assert len(spans) == 10
        agents = [s.name for s in receiver.children(root)]
        assert sorted(agents) == [
            "invoke_agent Bug Review",
            "invoke_agent Security Review",
            "invoke_agent Summary",
            "verification round 1",
        ]
        for agent in receiver.children(root)[:3]:
            if agent.name.startswith("invoke_agent"):
                (chat,) = receiver.children(agent)
                assert chat.name == "chat dry-run"
                assert agent.start <= chat.start and chat.end <= agent.end
                prompt = json.loads(chat.attributes["gen_ai.input.messages"])
                assert (
                    prompt[0]["parts"][0]["content"].startswith("Review for")
                    or "Summarise" in prompt[0]["parts"][0]["content"]
                )


def test_a_suspended_run_is_two_traces_linked_by_its_run_id(
    make_team: Any, client_for: Any, receiver: OTLPReceiver
) -> None:
    acme, users = make_team("Acme", roles=["editor", "admin"])
    loop = make_loop(acme, approval=True)
    run = start_run(loop, trigger_type="manual", dry_run=True, actor=users["editor"])
    approval = ApprovalRequest.objects.get(run=run)

    response = client_for(users["admin"]).post(
        f"/api/runs/{run.pk}/approvals/{approval.pk}/approve",
        {"comment": "ship it"},
        content_type="application/json",
    )

    assert response.status_code == 200, response.content
    assert Run.objects.get(pk=run.pk).status == Status.SUCCEEDED
    tracing.flush()
    parked, resumed = roots(receiver)
    assert parked.trace_id != resumed.trace_id
    assert [
        (
            r.attributes["loopkit.run.id"],
            r.attributes["loopkit.run.resumed"],
            r.attributes["loopkit.run.status"],
        )
        for r in (parked, resumed)
    ] == [(str(run.pk), False, "suspended"), (str(run.pk), True, "succeeded")]
    assert ("loopkit.approval_requested", {"loopkit.step.key": "pipeline[1]"}) in parked.events
    # The resume did not redo the reviews (answered from checkpoints): no spans for them.
    assert [s.name for s in receiver.children(resumed)] == [
        "invoke_agent Summary",
        "verification round 1",
    ]
    assert sorted(s.name for s in receiver.children(parked)) == [
        "invoke_agent Bug Review",
        "invoke_agent Security Review",
    ]


def test_a_run_is_untraced_when_the_otlp_settings_ask_for_another_protocol(
    make_team: Any, receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    tracing.shutdown()
    acme, users = make_team("Acme", roles=["editor"])
    run = start_run(make_loop(acme), trigger_type="manual", dry_run=True, actor=users["editor"])

    assert Run.objects.get(pk=run.pk).status == Status.SUCCEEDED
    tracing.flush()
    assert receiver.spans == []
    assert "runs are not traced: OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported" in caplog.text

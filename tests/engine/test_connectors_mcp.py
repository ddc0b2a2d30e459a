"""MCP connectors: a real MCP server (tests/engine/mcp_server.py) over stdio and streamable HTTP,
called by a loop run against the local OpenAI-compatible test server that scripts tool calls."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from llm_server import LLMServer, Reply

from loopkit import spec
from loopkit.connectors import ConnectorError, build
from loopkit.connectors.mcp import McpConnector
from loopkit.connectors.provider import ConnectorTools
from loopkit.engine import RunOptions, run_loop
from loopkit.llm import LiteLLMProvider
from loopkit.sinks import ListSink
from loopkit.yamlio import loop_from_data

SERVER = str(Path(__file__).with_name("mcp_server.py"))
MODEL = "openai/test"


@pytest.fixture(scope="module")
def llm() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh(llm: LLMServer) -> None:
    llm.reset()


def stdio_config() -> dict[str, Any]:
    return {"type": "mcp", "command": sys.executable, "args": [SERVER]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def http_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, SERVER, "--http", str(port)], stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:  # wait for the server to say it listens
        lines.append(line)
        if line.strip() == "READY":
            break
    else:
        proc.kill()
        pytest.fail("the MCP HTTP server did not start:\n" + "".join(lines))
    # Keep reading its log so that a full pipe never blocks the server.
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    yield f"http://127.0.0.1:{port}/mcp"
    proc.terminate()
    proc.wait(timeout=10)


def loop_with(connector: dict[str, Any], **step: Any) -> spec.Loop:
    return loop_from_data(
        {
            "name": "mcp-loop",
            "model": MODEL,
            "connectors": {"shop": connector},
            "pipeline": [
                {
                    "prompt": "Check order A-1 and add 2 and 3.",
                    "label": "Work",
                    "connectors": ["shop"],
                    **step,
                }
            ],
        }
    )


async def run(llm: LLMServer, loop: spec.Loop) -> tuple[Any, ListSink]:
    sink = ListSink()
    result = await run_loop(
        loop,
        LiteLLMProvider(api_base=llm.url),
        sinks=[sink],
        options=RunOptions(retry_base_delay=0.01),
        tool_provider=ConnectorTools(loop, root=Path.cwd()),
    )
    return result, sink


def script_tool_round(llm: LLMServer) -> None:
    llm.tool_call("shop__add", {"a": 2, "b": 3})
    llm.script(
        Reply("", tool_calls=[{"name": "shop__lookup_order", "arguments": {"order_id": "Z-9"}}]),
        Reply("", tool_calls=[{"name": "shop__pid", "arguments": {}}]),
        Reply("Order A-1 is fine; 2 + 3 = 5."),
    )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_loop_calls_an_mcp_server_over_stdio_and_shuts_it_down(llm: LLMServer) -> None:
    script_tool_round(llm)

    result, sink = await run(llm, loop_with(stdio_config()))

    assert result.status == "succeeded", result.error
    assert result.outputs["Work"] == "Order A-1 is fine; 2 + 3 = 5."
    offered = sorted(t["function"]["name"] for t in llm.requests[0].body["tools"])
    assert offered == ["shop__add", "shop__api_key", "shop__lookup_order", "shop__pid"]
    calls = [e.as_dict() for e in sink.of_type("tool_called")]
    assert [(c["name"], c["arguments"], c["is_error"]) for c in calls] == [
        ("shop__add", {"a": 2, "b": 3}, False),
        ("shop__lookup_order", {"order_id": "Z-9"}, True),
        ("shop__pid", {}, False),
    ]
    assert calls[0]["result"] == "5"
    assert calls[1]["result"] == "Error executing tool lookup_order"
    assert all(c["duration_ms"] > 0 and c["label"] == "Work" for c in calls)
    # The model saw each result, the error marked as such by the server's text.
    tool_messages = [m for m in llm.requests[-1].body["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in tool_messages][:2] == ["5", "Error executing tool lookup_order"]
    server_pid = int(calls[2]["result"])
    assert server_pid != os.getpid()
    assert not pid_alive(server_pid), "the MCP server outlived its run"


async def test_a_loop_calls_an_mcp_server_over_streamable_http(
    llm: LLMServer, http_server: str
) -> None:
    script_tool_round(llm)

    result, sink = await run(
        llm, loop_with({"type": "mcp", "transport": "http", "url": http_server})
    )

    assert result.status == "succeeded", result.error
    calls = [e.as_dict() for e in sink.of_type("tool_called")]
    assert [(c["name"], c["result"], c["is_error"]) for c in calls[:2]] == [
        ("shop__add", "5", False),
        ("shop__lookup_order", "Error executing tool lookup_order", True),
    ]


async def test_the_step_allow_list_narrows_the_tools_offered(llm: LLMServer) -> None:
    llm.script(Reply("", tool_calls=[{"name": "shop__pid", "arguments": {}}]), Reply("done"))

    result, sink = await run(llm, loop_with(stdio_config(), tools=["shop.add", "*.lookup_order"]))

    assert result.status == "succeeded"
    offered = sorted(t["function"]["name"] for t in llm.requests[0].body["tools"])
    assert offered == ["shop__add", "shop__lookup_order"]
    (call,) = [e.as_dict() for e in sink.of_type("tool_called")]
    assert (call["name"], call["is_error"], call["result"]) == (
        "shop__pid",
        True,
        "unknown tool 'shop__pid'",
    )


async def test_a_server_that_cannot_start_fails_the_run_with_its_stderr(
    llm: LLMServer, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text(
        "import sys\nprint('cannot open the widget database', file=sys.stderr)\nsys.exit(3)\n"
    )

    result, _sink = await run(
        llm, loop_with({"type": "mcp", "command": sys.executable, "args": [str(broken)]})
    )

    assert result.status == "failed"
    assert result.error_code == "connector_error"
    assert result.error is not None
    assert result.error.startswith("connector 'shop': could not start the MCP server: ")
    assert "cannot open the widget database" in result.error
    assert llm.requests == []


async def started() -> McpConnector:
    conn = build("shop", spec.McpConnector.model_validate(stdio_config()))
    assert isinstance(conn, McpConnector)
    await conn.start()
    return conn


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_connector() -> AsyncIterator[McpConnector]:
    """One server for the read-only tests below (each launch costs a second or more)."""
    conn = await started()
    yield conn
    await conn.stop()


@pytest.fixture
async def stdio_connector() -> AsyncIterator[McpConnector]:
    conn = await started()
    yield conn
    await conn.stop()


@pytest.mark.asyncio(loop_scope="module")
async def test_tools_keep_the_server_schema_and_description(shared_connector: McpConnector) -> None:
    tools = {t.tool: t for t in shared_connector.tools()}

    assert tools["add"].description == "Add two integers."
    assert tools["add"].parameters["properties"] == {
        "a": {"title": "A", "type": "integer"},
        "b": {"title": "B", "type": "integer"},
    }
    assert tools["add"].parameters["required"] == ["a", "b"]


@pytest.mark.asyncio(loop_scope="module")
async def test_bad_arguments_come_back_as_an_error_result(shared_connector: McpConnector) -> None:
    tools = {t.tool: t for t in shared_connector.tools()}

    result = await tools["add"].call({"a": "two"})

    assert result.is_error
    assert "validation error" in result.content


@pytest.mark.asyncio(loop_scope="module")
async def test_structured_results_reach_the_model_as_json(shared_connector: McpConnector) -> None:
    tools = {t.tool: t for t in shared_connector.tools()}

    result = await tools["lookup_order"].call({"order_id": "A-1"})

    assert not result.is_error
    assert json.loads(result.content) == {"id": "A-1", "status": "shipped"}
    assert result.data == {"structured": {"id": "A-1", "status": "shipped"}}


async def test_stop_can_run_from_another_task_and_twice(stdio_connector: McpConnector) -> None:
    pid = int((await {t.tool: t for t in stdio_connector.tools()}["pid"].call({})).content)

    await asyncio.create_task(stdio_connector.stop())
    await stdio_connector.stop()

    assert not pid_alive(pid)
    assert stdio_connector.tools() == []


async def test_an_unreachable_http_server_is_a_connector_error() -> None:
    config = spec.McpConnector.model_validate(
        {"type": "mcp", "transport": "http", "url": f"http://127.0.0.1:{free_port()}/mcp"}
    )
    conn = McpConnector("remote", config, start_timeout=5)

    with pytest.raises(ConnectorError) as caught:
        await conn.start()

    assert str(caught.value).startswith("connector 'remote': could not start the MCP server: ")


async def test_a_cancelled_run_shuts_its_mcp_server_down(llm: LLMServer) -> None:
    from loopkit.engine import CancelToken

    cancel = CancelToken()
    seen: list[int] = []

    class CancelAfterPid(ListSink):
        def emit(self, event: Any) -> None:
            super().emit(event)
            if event.type == "tool_called":
                seen.append(int(event.result))
                cancel.cancel("stopped by the test")

    llm.tool_call("shop__pid", {})
    llm.script(Reply("never read", delay=5))
    loop = loop_with(stdio_config())

    result = await run_loop(
        loop,
        LiteLLMProvider(api_base=llm.url),
        sinks=[CancelAfterPid()],
        cancel=cancel,
        options=RunOptions(retry_base_delay=0.01),
        tool_provider=ConnectorTools(loop, root=Path.cwd()),
    )

    assert result.status == "cancelled"
    assert len(seen) == 1
    assert not pid_alive(seen[0]), "the MCP server outlived its cancelled run"


async def test_loopkit_run_gives_a_step_its_connector_tools_and_skills(
    llm: LLMServer, tmp_path: Path
) -> None:
    (tmp_path / "loops").mkdir()
    (tmp_path / "skills/orders").mkdir(parents=True)
    (tmp_path / "skills/orders/SKILL.md").write_text(
        "---\nname: orders\ndescription: How to check an order.\n---\nLook it up first.\n"
    )
    (tmp_path / "loopkit.yaml").write_text(
        f"name: shop\nconnectors:\n  shop:\n    type: mcp\n    command: {sys.executable}\n"
        f"    args: [{SERVER}]\n"
    )
    (tmp_path / "loops/check.yaml").write_text(
        "name: check\nmodel: openai/test\npipeline:\n"
        "  - prompt: Check order A-1.\n    label: Check\n    connectors: [shop]\n"
        "    tools: [shop.lookup_order]\n    skills: [orders]\n"
    )
    llm.tool_call("shop__lookup_order", {"order_id": "A-1"})
    llm.script(Reply("A-1 shipped."))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LOOPKIT_")}
    environ["LOOPKIT_API_BASE"] = llm.url

    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "loopkit"),
        "run",
        "check",
        "--json",
        cwd=tmp_path,
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()

    assert proc.returncode == 0, err.decode()
    events = [json.loads(line) for line in out.decode().splitlines()]
    (call,) = [e for e in events if e["type"] == "tool_called"]
    assert (call["name"], call["result"], call["is_error"]) == (
        "shop__lookup_order",
        '{ "id": "A-1", "status": "shipped" }',  # the event keeps a one-line summary
        False,
    )
    first = llm.requests[0].body
    assert sorted(t["function"]["name"] for t in first["tools"]) == [
        "load_skill",
        "shop__lookup_order",
    ]
    assert "- orders: How to check an order." in first["messages"][0]["content"]
    assert events[-1]["status"] == "succeeded"

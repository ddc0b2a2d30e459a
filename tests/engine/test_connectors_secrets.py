"""Secrets: ``${ENV}`` references resolved at run time and never stored in clear.

A whole run with an HTTP connector (a bearer token in a header, echoed back by
a careless service) and an MCP server (an API key in its environment, leaked
by one of its tools); then every place the run wrote to is grepped for the
secret values: the JSON-lines event log, the console transcript, Python's
log records, the run's files on disk (record, checkpoints, memory), the
requests the model received, and the loop exported as YAML.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from llm_server import LLMServer, Reply

from loopkit import secrets
from loopkit.connectors.provider import ConnectorTools
from loopkit.engine import RunOptions, run_loop
from loopkit.llm import LiteLLMProvider
from loopkit.memory import FileStore
from loopkit.sinks import ConsoleSink, JsonlSink, ListSink
from loopkit.yamlio import dump, load_loop

HTTP_TOKEN = "ghp_SecretHttpToken_0123456789"
MCP_KEY = "sk-mcp-SecretKey-9876543210"
MCP_SERVER = str(Path(__file__).with_name("mcp_server.py"))


class Echo(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        data = json.dumps({"you_sent": dict(self.headers)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def echo_service() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


LOOP = """\
name: secret-loop
model: openai/test
connectors:
  api:
    type: http
    baseUrl: {base}
    headers:
      Authorization: Bearer ${{LK_TEST_HTTP_TOKEN}}
    operations:
      whoami:
        path: /whoami
  keys:
    type: mcp
    command: {python}
    args: [{server}]
    env:
      API_KEY: ${{LK_TEST_MCP_KEY}}
pipeline:
  - prompt: Find out who we are.
    label: Work
    connectors: [api, keys]
memory:
  store: filesystem
"""


async def test_secrets_never_reach_events_logs_stored_runs_the_model_or_exports(
    echo_service: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("LK_TEST_HTTP_TOKEN", HTTP_TOKEN)
    monkeypatch.setenv("LK_TEST_MCP_KEY", MCP_KEY)
    caplog.set_level(logging.DEBUG)
    text = LOOP.format(base=echo_service, python=sys.executable, server=MCP_SERVER)
    loop = load_loop(text)
    jsonl, console = io.StringIO(), io.StringIO()
    store = FileStore(tmp_path / "state")
    listed = ListSink()
    with LLMServer() as llm:
        llm.tool_call("api__whoami", {})
        llm.tool_call("keys__api_key", {})
        # The model "repeats" both secrets (as if they had reached it another way).
        llm.script(Reply(f"We are {HTTP_TOKEN} with key {MCP_KEY}."))
        result = await run_loop(
            loop,
            LiteLLMProvider(api_base=llm.url),
            sinks=[listed, JsonlSink(jsonl), ConsoleSink(console, verbose=True)],
            store=store,
            options=RunOptions(retry_base_delay=0.01),
            tool_provider=ConnectorTools(loop, root=tmp_path),
        )
        model_saw = json.dumps([r.body for r in llm.requests])

    assert result.status == "succeeded", result.error
    # The secrets were really used: the service got the token, the server its key.
    calls = {e.name: e for e in listed.of_type("tool_called")}
    assert "[redacted:LK_TEST_HTTP_TOKEN]" in calls["api__whoami"].result
    assert calls["keys__api_key"].result == "key=[redacted:LK_TEST_MCP_KEY]"
    assert result.outputs["Work"] == (
        "We are [redacted:LK_TEST_HTTP_TOKEN] with key [redacted:LK_TEST_MCP_KEY]."
    )
    stored = "\n".join(p.read_text() for p in (tmp_path / "state").rglob("*") if p.is_file())
    # The run really wrote its output to disk (record, checkpoint, memory), masked.
    assert stored.count("with key [redacted:LK_TEST_MCP_KEY]") >= 2
    places = {
        "events (JSON lines)": jsonl.getvalue(),
        "console": console.getvalue(),
        "logs": caplog.text,
        "stored run files": stored,
        "requests to the model": model_saw,
        "exported YAML": dump(loop),
        "result": json.dumps(result.outputs),
    }
    for where, data in places.items():
        for secret in (HTTP_TOKEN, MCP_KEY):
            assert secret not in data, f"a secret leaked into the {where}"
    assert "${LK_TEST_HTTP_TOKEN}" in places["exported YAML"]


def test_resolve_replaces_references_and_registers_the_values() -> None:
    registry = secrets.Registry()

    value = secrets.resolve(
        "Bearer ${TOKEN} for ${USER_NAME}",
        "connector 'x' header 'Authorization'",
        {"TOKEN": "t0k3n-value", "USER_NAME": "bob"},
        registry,
    )

    assert value == "Bearer t0k3n-value for bob"
    # "bob" is shorter than MIN_SECRET_LENGTH: masking every "bob" would protect nothing.
    assert registry.redact_text("t0k3n-value, bob") == "[redacted:TOKEN], bob"


def test_a_missing_variable_names_the_setting_and_the_variable() -> None:
    with pytest.raises(secrets.MissingSecret) as caught:
        secrets.resolve("${NOPE_NOT_SET}", "connector 'db' url", {})

    assert str(caught.value) == (
        "connector 'db' url refers to ${NOPE_NOT_SET}, but the environment variable "
        "NOPE_NOT_SET is not set (set it in the environment of the process that runs the loop)"
    )
    assert caught.value.code == "missing_secret"


def test_redact_walks_nested_data_and_masks_url_passwords() -> None:
    registry = secrets.Registry()
    registry.add("DB_PASSWORD", "hunter2hunter2")

    data = secrets.redact(
        {
            "args": ["x", {"q": "pw=hunter2hunter2"}],
            "url": "postgresql://app:literal-pw@db:5432/x",
            "n": 3,
        },
        registry,
    )

    assert data == {
        "args": ["x", {"q": "pw=[redacted:DB_PASSWORD]"}],
        "url": "postgresql://app:***@db:5432/x",
        "n": 3,
    }


def test_a_longer_secret_is_masked_whole_when_it_contains_a_shorter_one() -> None:
    registry = secrets.Registry()
    registry.add("SHORT", "abcd")
    registry.add("LONG", "abcd-efgh")

    assert registry.redact_text("abcd-efgh abcd") == "[redacted:LONG] [redacted:SHORT]"

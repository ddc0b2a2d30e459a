"""The HTTP connector against a small HTTP service started by the test."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from loopkit import spec
from loopkit.connectors import ConnectorError, build
from loopkit.connectors.http import HttpConnector


class Service(ThreadingHTTPServer):
    """Records every request; answers by path."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Service

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        self.server.requests.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        )
        if self.path.startswith("/slow"):
            time.sleep(1.0)
        if self.path.startswith("/huge"):
            big = b"x" * 3_000_000
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(big)))
            self.end_headers()
            # The client stops reading at its cap and hangs up.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(big)
            return
        if self.path.startswith("/missing"):
            status, payload = 404, {"message": "Not Found"}
        else:
            status, payload = 200, {"method": self.command, "path": self.path, "body": body}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _answer


@pytest.fixture
def service() -> Iterator[Service]:
    server = Service()
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def make(base_url: str, **kwargs: Any) -> HttpConnector:
    config = spec.HttpConnector.model_validate(
        {
            "type": "http",
            "baseUrl": base_url,
            "headers": {"Authorization": "Bearer ${TEST_API_TOKEN}"},
            "operations": {
                "get_issue": {
                    "path": "/repos/{owner}/{repo}/issues/{number}",
                    "description": "Get one issue",
                    "parameters": {
                        "type": "object",
                        "properties": {"number": {"type": "integer"}, "state": {"type": "string"}},
                    },
                },
                "comment": {
                    "method": "POST",
                    "path": "/issues/{number}/comments",
                    "parameters": {"body": {"type": "string"}, "number": {"type": "integer"}},
                    "headers": {"X-Request-Source": "loopkit"},
                },
                "missing": {"path": "/missing"},
                "huge": {"path": "/huge"},
                "slow": {"path": "/slow"},
            },
        }
    )
    made = build("api", config, env={"TEST_API_TOKEN": "tok-http-123456"}, **kwargs)
    assert isinstance(made, HttpConnector)
    return made


@pytest.fixture
async def api(service: Service) -> AsyncIterator[HttpConnector]:
    conn = make(service.url)
    await conn.start()
    yield conn
    await conn.stop()


def tool(conn: HttpConnector, name: str) -> Any:
    return {t.tool: t for t in conn.tools()}[name]


async def test_each_operation_becomes_a_tool_with_its_schema(api: HttpConnector) -> None:
    tools = {t.name: t for t in api.tools()}

    assert sorted(tools) == [
        "api__comment",
        "api__get_issue",
        "api__huge",
        "api__missing",
        "api__slow",
    ]
    assert tools["api__get_issue"].description == "Get one issue"
    assert tools["api__get_issue"].parameters == {
        "type": "object",
        "properties": {
            "number": {"type": "integer"},
            "state": {"type": "string"},
            "owner": {"type": "string", "description": "path parameter owner"},
            "repo": {"type": "string", "description": "path parameter repo"},
        },
        "required": ["owner", "repo", "number"],
    }
    assert tools["api__comment"].description == "POST /issues/{number}/comments"


async def test_a_get_fills_the_path_and_sends_the_rest_as_query(
    api: HttpConnector, service: Service
) -> None:
    result = await tool(api, "get_issue").call(
        {"owner": "acme", "repo": "web app", "number": 7, "state": "open"}
    )

    assert not result.is_error
    assert json.loads(result.content)["path"] == "/repos/acme/web%20app/issues/7?state=open"
    assert result.data == {"status": 200}
    sent = service.requests[-1]
    assert sent["headers"]["Authorization"] == "Bearer tok-http-123456"


async def test_a_path_argument_cannot_add_segments_or_a_query(
    api: HttpConnector, service: Service
) -> None:
    await tool(api, "get_issue").call({"owner": "../../admin?x=1", "repo": "r", "number": 1})

    assert service.requests[-1]["path"] == "/repos/..%2F..%2Fadmin%3Fx%3D1/r/issues/1"


async def test_a_post_sends_json_and_the_operation_headers(
    api: HttpConnector, service: Service
) -> None:
    result = await tool(api, "comment").call({"number": 3, "body": "LGTM"})

    assert not result.is_error
    sent = service.requests[-1]
    assert (sent["method"], sent["path"], json.loads(sent["body"])) == (
        "POST",
        "/issues/3/comments",
        {"body": "LGTM"},
    )
    assert sent["headers"]["X-Request-Source"] == "loopkit"
    assert sent["headers"]["Content-Type"] == "application/json"


async def test_arguments_that_break_the_schema_are_an_error_and_send_nothing(
    api: HttpConnector, service: Service
) -> None:
    result = await tool(api, "get_issue").call({"owner": "a", "repo": "b", "number": "seven"})

    assert result.is_error
    assert result.content == "invalid arguments (number): 'seven' is not of type 'integer'"
    assert service.requests == []


async def test_an_error_status_is_an_error_result_that_names_it(api: HttpConnector) -> None:
    result = await tool(api, "missing").call({})

    assert result.is_error
    assert result.content == 'HTTP 404 Not Found from GET /missing: {"message": "Not Found"}'
    assert result.data == {"status": 404}


async def test_a_huge_body_is_read_only_up_to_its_cap(api: HttpConnector) -> None:
    result = await tool(api, "huge").call({})

    assert not result.is_error
    assert len(result.content) < 20_100
    assert result.content.endswith(
        "\n… [980,000 more characters cut]\n… [the body is over 1,000,000 bytes: only that much was read]"
    )


async def test_a_slow_answer_times_out_as_an_error_result(service: Service) -> None:
    config = spec.HttpConnector.model_validate(
        {"type": "http", "baseUrl": service.url, "operations": {"slow": {"path": "/slow"}}}
    )
    conn = HttpConnector("api", config, timeout=0.2)
    await conn.start()
    try:
        result = await tool(conn, "slow").call({})
    finally:
        await conn.stop()

    assert result.is_error
    assert result.content == "GET /slow timed out after 0.2 s"


async def test_a_missing_secret_fails_at_start_naming_the_variable(service: Service) -> None:
    config = spec.HttpConnector.model_validate(
        {"type": "http", "baseUrl": service.url, "headers": {"X-Key": "${NOT_SET_ANYWHERE}"}}
    )
    conn = HttpConnector("api", config, env={})

    with pytest.raises(Exception) as caught:
        await conn.start()

    assert str(caught.value) == (
        "connector 'api' header 'X-Key' refers to ${NOT_SET_ANYWHERE}, but the environment "
        "variable NOT_SET_ANYWHERE is not set (set it in the environment of the process that "
        "runs the loop)"
    )


async def test_a_base_url_that_is_not_http_is_refused() -> None:
    config = spec.HttpConnector.model_validate({"type": "http", "baseUrl": "file:///etc"})

    with pytest.raises(ConnectorError, match="baseUrl must start with http:// or https://"):
        await HttpConnector("api", config).start()


# ── Allow-lists are checked against the tools connectors declare ─────────


def test_an_allow_list_typo_is_reported_with_the_closest_tool() -> None:
    from loopkit.errors import SpecError
    from loopkit.yamlio import load_loop

    with pytest.raises(SpecError) as caught:
        load_loop(
            """\
name: t
connectors:
  tracker: {type: http, baseUrl: "https://x.example", operations: {get_issue: {path: /i}}}
  db: {type: sql, url: "sqlite:///x.db"}
  gh: {type: mcp, command: gh-mcp}
pipeline:
  - prompt: go
    connectors: [tracker, db]
    tools: [tracker.get_isue, db.query, githb.search, get_issue, nope, "tracker.*", db__tables]
  - prompt: go
    connectors: [gh]
    tools: [gh.anything, search]
""",
            "t.yaml",
        )

    assert [(p.path, p.line, p.column, p.message, p.hint) for p in caught.value.problems] == [
        (
            "pipeline[0].tools[0]",
            9,
            13,
            "connector 'tracker' has no tool 'get_isue'",
            "did you mean 'get_issue'?",
        ),
        (
            "pipeline[0].tools[2]",
            9,
            41,
            "tool 'githb.search' names connector 'githb', which this step does not use",
            "add 'githb' to the step's connectors",
        ),
        (
            "pipeline[0].tools[4]",
            9,
            66,
            "no connector of this step has a tool 'nope'",
            "the tools here are: get_issue, query, tables",
        ),
    ]


# ── The run's toolbox: started on first use, stopped together ────────────


async def test_the_toolbox_starts_connectors_on_first_use_and_stops_them_all(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    from loopkit.connectors import Connector, ConnectorTool, Toolbox

    class Stubborn(Connector):
        name = "stubborn"
        started = 0

        async def start(self) -> None:
            Stubborn.started += 1

        async def stop(self) -> None:
            raise RuntimeError("socket already gone")

        def tools(self) -> list[ConnectorTool]:
            return []

    api_config = spec.HttpConnector.model_validate(
        {"type": "http", "baseUrl": service.url, "operations": {"ping": {"path": "/ping"}}}
    )
    box = Toolbox({"api": api_config}, extra={"stubborn": Stubborn()})

    assert box.names() == ["api", "stubborn"]
    tools = await box.tools(["api", "stubborn", "api"], allow=["api.ping"])
    await box.tools(["stubborn"])
    with pytest.raises(ConnectorError, match="connector 'nope': is not defined"):
        await box.tools(["nope"])
    await box.aclose()  # a failing stop is logged, not raised

    assert [t.name for t in tools] == ["api__ping"]
    assert Stubborn.started == 1
    assert "connector 'stubborn' did not stop cleanly: socket already gone" in caplog.text
    with pytest.raises(ConnectorError, match="already stopped"):
        await box.tools(["api"])

"""``/mcp/``: a team's loops as MCP tools over streamable HTTP, with an API token.

LoopKit runs as deployed (``manage.py loopkit_start``: Daphne and a Huey
worker, the embedded default), and the mcp SDK's streamable HTTP client
talks to it, in the protocol's current version and in the handshake version
(what Claude Desktop and Cursor speak). Each call is a real run of the team.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from .procs import child_env, manage, running_loopkit, shell
from .runs_support import loop_yaml

SCRIPTS = Path(__file__).parent / "scripts"


@dataclass
class Served:
    url: str
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("mcp")
    env = child_env(LOOPKIT_HOME=str(tmp / "var"), LOOPKIT_HUEY_IMMEDIATE="false")
    manage("migrate", "--no-input", env=env)
    acme = [
        loop_yaml("review", inputs={"repo": {"type": "string", "required": True}}, latency_ms=50),
        loop_yaml("gated", approval=True),
        loop_yaml("strict", scores=[0.2, 0.3, 0.4]),
    ]
    setup = {**env, "MCP_ACME_LOOPS": json.dumps(acme), "MCP_BRAVO_LOOP": loop_yaml("secret")}
    proc = shell(SCRIPTS / "mcp_setup.py", env=setup)
    facts = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))[7:])
    with running_loopkit(env, tmp / "server.log") as url:
        yield Served(url, facts["tokens"])


@asynccontextmanager
async def connected(served: Served, who: str, mode: str = "auto") -> AsyncIterator[Client]:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {served.tokens[who]}"})
    async with Client(
        streamable_http_client(f"{served.url}/mcp/", http_client=http), mode=mode
    ) as c:
        yield c


class Progress(list[str]):
    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.append(message or "")


def _texts(result: Any) -> list[str]:
    return [c.text for c in result.content]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_client_lists_the_teams_loops_and_a_call_runs_one_on_the_server(
    served: Served, mode: str
) -> None:
    progress = Progress()
    async with connected(served, "editor", mode) as client:
        listed = await client.list_tools()
        result = await client.call_tool(
            "review", {"repo": "acme/api", "dry_run": True}, progress_callback=progress
        )

    tools = {tool.name: tool for tool in listed.tools}
    assert sorted(tools) == ["gated", "review", "strict"]  # not Bravo's 'secret'
    assert tools["review"].input_schema["required"] == ["repo"]
    assert tools["review"].input_schema["properties"]["repo"] == {"type": "string"}
    assert not result.is_error, _texts(result)
    assert _texts(result) == [
        "## Bug Review\n\n[dry run] Bug Review: no model was called (round 1).\n\n"
        "## Security Review\n\n[dry run] Security Review: no model was called (round 1)."
    ]
    run = result.meta["loopkit/run"]  # type: ignore[index]
    assert run["status"] == "succeeded" and run["dry_run"] is True
    assert run["url"] == f"{served.url}/runs/{run['id']}/"
    assert progress[0] == f"run #{run['id']} of 'review' started: {run['url']}"
    assert progress[-1] == "verification round 1/3: passed (score 0.95)"
    assert "Bug Review: started" in progress and "Summary: started" in progress

    # A real run of the team: its row and the audit log say so.
    with _api(served, "owner") as api:
        row = api.get(f"/api/runs/{run['id']}").json()
        audit = api.get(
            "/api/audit", params={"target_type": "runs.run", "target_id": run["id"]}
        ).json()
    assert (row["loop"], row["inputs"], row["started_by"]) == (
        "review",
        {"repo": "acme/api"},
        "acme-editor",
    )
    assert [(e["action"], e["actor_label"]) for e in audit] == [
        ("run.triggered.manual", "acme-editor")
    ]


def _api(served: Served, who: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {served.tokens[who]}"}
    return httpx.Client(base_url=served.url, headers=headers, timeout=30)


async def test_a_run_that_stops_for_approval_answers_that_it_waits_with_its_url(
    served: Served,
) -> None:
    async with connected(served, "editor") as client:
        result = await client.call_tool("gated", {"dry_run": True})

    run = result.meta["loopkit/run"]  # type: ignore[index]
    assert not result.is_error
    assert run["status"] == "waiting_for_approval"
    assert _texts(result) == [
        f"The run of 'gated' is waiting for approval (see {served.url}/runs/{run['id']}/): "
        "Ship it? It goes on once someone allowed approves or rejects it there."
    ]


async def test_a_run_that_fails_verification_is_an_error_result_with_its_status(
    served: Served,
) -> None:
    async with connected(served, "editor") as client:
        result = await client.call_tool("strict", {"dry_run": True})

    run = result.meta["loopkit/run"]  # type: ignore[index]
    assert result.is_error
    assert (run["status"], run["rounds"]) == ("verification_failed", 3)
    assert _texts(result)[0] == (
        f"The run of 'strict' ended verification_failed (see {served.url}/runs/{run['id']}/): "
        "dry run: the checker scored round 3 at 0.4"
    )


async def test_a_viewer_sees_the_tools_but_cannot_start_a_run(served: Served) -> None:
    async with connected(served, "viewer") as client:
        listed = await client.list_tools()
        result = await client.call_tool("review", {"repo": "acme/api", "dry_run": True})

    assert sorted(t.name for t in listed.tools) == ["gated", "review", "strict"]
    assert result.is_error
    assert _texts(result) == ["This needs the editor role in team Acme; you are viewer."]


async def test_another_teams_token_sees_only_its_own_loops(served: Served) -> None:
    async with connected(served, "outsider") as client:
        listed = await client.list_tools()
        with pytest.raises(MCPError) as error:
            await client.call_tool("review", {"repo": "acme/api", "dry_run": True})

    assert [t.name for t in listed.tools] == ["secret"]
    assert error.value.message == "no tool named 'review' (tools: secret)"


@pytest.mark.parametrize(
    ("authorization", "code", "message"),
    [
        (None, "unauthenticated", "an API token is required: send Authorization: Bearer <token> "
         "(create one on the API tokens page of your account)"),
        ("Bearer lk_not-a-token", "invalid_token", "invalid or revoked API token"),
        ("Basic YWRtaW46YWRtaW4=", "unauthenticated", "an API token is required: send "
         "Authorization: Bearer <token> (create one on the API tokens page of your account)"),
    ],
    ids=["no token", "a wrong token", "not a bearer token"],
)  # fmt: skip
def test_a_request_without_a_valid_token_is_refused_with_401_json(
    served: Served, authorization: str | None, code: str, message: str
) -> None:
    headers = {"Accept": "application/json, text/event-stream"}
    if authorization:
        headers["Authorization"] = authorization
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}

    response = httpx.post(f"{served.url}/mcp/", json=body, headers=headers, timeout=30)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"code": code, "message": message, "details": []}


async def test_the_sdk_client_with_a_bad_token_is_refused(served: Served) -> None:
    http = create_mcp_http_client(headers={"Authorization": "Bearer lk_wrong"})
    with pytest.raises(ExceptionGroup) as error:  # the SDK's task groups wrap its error
        async with Client(streamable_http_client(f"{served.url}/mcp/", http_client=http)) as c:
            await c.list_tools()

    assert error.group_contains(MCPError, match="Server returned an error response", depth=2)

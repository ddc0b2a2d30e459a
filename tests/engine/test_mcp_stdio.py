"""``loopkit mcp``: a project's loops as MCP tools, called with the mcp SDK's client.

The first test starts the command over stdio in a project made by ``loopkit
init``, as Claude Desktop or Cursor would; the others connect the same
client to the same server in-process (the SDK's direct transport), which
runs the same handlers faster.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from llm_server import LLMServer, Reply, verdict
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp_types import ElicitResult

from loopkit.cli import main
from loopkit.looptools import input_schema, result_names, tool_name, unique_names
from loopkit.project import find_project
from loopkit.toolserver import ProjectBackend, build_server
from loopkit.yamlio import load_loop_file, loop_from_data

REPO = Path(__file__).resolve().parents[2]

EXAMPLE_SCHEMA = {
    "type": "object",
    "properties": {
        "text": {
            "type": "string",
            "description": "The text to summarise.",
            "default": "LoopKit is the open standard for autonomous AI agent loops.",
        },
        "dry_run": {
            "type": "boolean",
            "default": False,
            "description": "Run without calling any model: deterministic answers, no cost.",
        },
    },
    "additionalProperties": False,
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    assert main(["init", str(tmp_path / "acme")]) == 0
    return tmp_path / "acme"


class Progress(list[tuple[float, float | None, str | None]]):
    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.append((progress, total, message))


async def test_a_client_over_stdio_lists_the_loops_and_runs_one_with_progress(
    project: Path,
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = StdioServerParameters(
        command=sys.executable, args=["-m", "loopkit.cli", "mcp"], cwd=str(project), env=env
    )
    progress = Progress()
    async with Client(command, mode="legacy") as client:
        listed = await client.list_tools()
        result = await client.call_tool(
            "example", {"text": "Loops are YAML.", "dry_run": True}, progress_callback=progress
        )

    tools = {tool.name: tool for tool in listed.tools}
    assert sorted(tools) == ["daily-triage", "example", "pr-review"]
    example = tools["example"]
    assert example.title == "example"
    assert example.description == (
        "Summarise a text, checked by the built-in adversarial verifier. Run it for free with "
        "'loopkit-runtime --dry-run run example'."
    )
    assert example.input_schema == EXAMPLE_SCHEMA
    # A webhook loop also takes the trigger's payload.
    assert tools["pr-review"].input_schema["properties"]["payload"]["type"] == "object"

    assert not result.is_error
    assert [c.text for c in result.content] == [  # type: ignore[union-attr]
        "[dry run] Summary: no model was called (round 1)."
    ]
    assert result.meta is not None
    assert result.meta["loopkit/run"]["status"] == "succeeded"
    assert result.meta["loopkit/run"]["dry_run"] is True
    assert progress == [
        (1.0, None, "Summary: started"),
        (2.0, None, "Summary: finished in 0.0 s"),
        (3.0, None, "verification round 1/3: passed (score 0.95)"),
    ]


def _client(project: Path, **options: Any) -> Client:
    return Client(build_server(ProjectBackend(find_project(project), **options)))


def _write(project: Path, name: str, text: str) -> None:
    (project / "loops" / f"{name}.yaml").write_text(text)


async def test_a_run_that_fails_verification_is_an_error_result_with_its_status(
    project: Path,
) -> None:
    _write(
        project,
        "strict",
        "name: strict\npipeline:\n  - prompt: Write it.\n    label: Draft\n"
        "verify:\n  maker: [Draft]\n  checker: Adversarial Verifier\n  maxRounds: 2\n"
        "dryRun:\n  checkerScores: [0.2, 0.3]\n",
    )
    progress = Progress()
    async with _client(project) as client:
        result = await client.call_tool("strict", {"dry_run": True}, progress_callback=progress)

    assert result.is_error
    texts = [c.text for c in result.content]  # type: ignore[union-attr]
    assert texts[0] == (
        "The run of 'strict' ended verification_failed: dry run: the checker scored round 2 at 0.3"
    )
    assert texts[1] == (
        "What it produced before it stopped:\n\n[dry run] Draft: no model was called (round 2)."
    )
    assert result.meta is not None and result.meta["loopkit/run"]["rounds"] == 2
    assert [m for _, _, m in progress if m and m.startswith("verification")] == [
        "verification round 1/2: failed (score 0.20): dry run: the checker scored round 1 at 0.2",
        "verification round 2/2: failed (score 0.30): dry run: the checker scored round 2 at 0.3",
    ]


async def test_arguments_that_do_not_fit_the_inputs_are_an_error_result(project: Path) -> None:
    async with _client(project) as client:
        wrong_type = await client.call_tool("example", {"text": 5, "dry_run": True})
        unknown = await client.call_tool("example", {"txet": "a"})

    assert wrong_type.is_error and unknown.is_error
    assert wrong_type.content[0].text == (  # type: ignore[union-attr]
        "invalid arguments: text: 5 is not of type 'string'"
    )
    assert unknown.content[0].text == (  # type: ignore[union-attr]
        "invalid arguments: Additional properties are not allowed ('txet' was unexpected)"
    )


async def test_an_unknown_tool_is_a_protocol_error_naming_the_tools(project: Path) -> None:
    async with _client(project) as client:
        with pytest.raises(MCPError) as error:
            await client.call_tool("nope", {})

    assert error.value.message == "no tool named 'nope' (tools: daily-triage, example, pr-review)"


async def test_a_live_call_returns_the_structured_output_of_the_verified_step(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LLMServer() as server:
        (project / "loopkit.yaml").write_text(
            "version: 2\nproviders:\n  local:\n    model: openai/test-model\n"
            f"    apiBase: {server.url}\n    apiKey: sk-test\n    default: true\n"
        )
        _write(
            project,
            "triage",
            "name: triage\ninputs:\n  title:\n    type: string\n    required: true\n"
            "pipeline:\n  - prompt: 'Classify {{ inputs.title }}'\n    label: Classify\n"
            "    output:\n      schema:\n        type: object\n"
            "        properties: {kind: {type: string}}\n        required: [kind]\n"
            "verify:\n  maker: [Classify]\n  checker: Adversarial Verifier\n",
        )
        server.when("adversarial verifier", verdict(True, 0.9))
        server.default = Reply('{"kind": "bug"}')
        async with _client(project) as client:
            listed = await client.list_tools()
            result = await client.call_tool("triage", {"title": "Crash on save"})

    schema = next(t for t in listed.tools if t.name == "triage").input_schema
    assert schema["required"] == ["title"]
    assert not result.is_error, [c.text for c in result.content]  # type: ignore[union-attr]
    assert result.structured_content == {"kind": "bug"}
    assert json.loads(result.content[0].text) == {"kind": "bug"}  # type: ignore[union-attr]
    assert "Crash on save" in server.requests[0].body["messages"][-1]["content"]
    assert result.meta is not None and result.meta["loopkit/run"]["dry_run"] is False


async def test_with_dry_run_every_call_is_a_dry_run(project: Path) -> None:
    async with _client(project, dry_run_only=True) as client:
        result = await client.call_tool("example", {})

    assert not result.is_error
    assert result.meta is not None and result.meta["loopkit/run"]["dry_run"] is True


async def test_a_loop_that_does_not_load_is_not_served_and_is_named_on_stderr(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(project, "broken", "name: broken\npipeline: []\n")
    async with _client(project) as client:
        listed = await client.list_tools()

    assert sorted(t.name for t in listed.tools) == ["daily-triage", "example", "pr-review"]
    assert "loopkit mcp: not serving 'broken': " in capsys.readouterr().err


def test_the_command_refuses_a_folder_without_loops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["mcp", "--project", str(tmp_path)])

    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"loopkit mcp: no loops to serve in {tmp_path.resolve() / 'loops'}\n"


def test_loop_names_become_valid_unique_tool_names() -> None:
    assert tool_name("PR review: v2!") == "PR_review_v2"
    assert tool_name("***") == "loop"
    assert tool_name("x" * 200) == "x" * 128
    assert unique_names(["a b", "a-b", "a?b", "a_b"]) == ["a_b", "a-b", "a_b_2", "a_b_3"]


def test_a_required_input_without_default_is_required_and_typed(project: Path) -> None:
    _write(
        project,
        "typed",
        "name: typed\ninputs:\n  count:\n    type: integer\n    required: true\n"
        "    description: How many.\n  dry_run:\n    type: string\n"
        "pipeline:\n  - prompt: \"Go {{ inputs.count }} {{ inputs.dry_run | default('') }}\"\n",
    )
    loop = load_loop_file(project / "loops" / "typed.yaml")

    assert input_schema(loop) == {
        "type": "object",
        "properties": {
            "count": {"type": "integer", "description": "How many."},
            # An input named like a control keeps its name and type.
            "dry_run": {"type": "string"},
        },
        "additionalProperties": False,
        "required": ["count"],
    }


def test_without_verify_the_result_is_the_last_step_that_gave_an_output() -> None:
    loop = loop_from_data(
        {
            "name": "fan-out",
            "pipeline": [
                {"prompt": "Plan", "label": "Plan"},
                {
                    "parallel": [
                        {"prompt": "A", "label": "A"},
                        {"sequential": [{"prompt": "B1", "label": "B1"}, {"prompt": "B2"}]},
                    ]
                },
                {"when": "false", "then": [{"prompt": "Never", "label": "Never"}]},
            ],
        }
    )
    outputs = {"Plan": "p", "A": "a", "B1": "b1", "pipeline[1].parallel[1].sequential[1]": "b2"}

    # The branch not taken gave nothing: the parallel group before it is the result,
    # each member's last output (an unlabelled step by its path).
    assert result_names(loop, outputs) == ["A", "pipeline[1].parallel[1].sequential[1]"]
    assert result_names(loop, {"Plan": "p"}) == ["Plan"]
    assert result_names(loop, {}) == []


class Answers:
    """An elicitation callback giving scripted answers, keeping what it was asked."""

    def __init__(self, *answers: ElicitResult) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    async def __call__(self, context: Any, params: Any) -> ElicitResult:
        self.asked.append(params.message)
        return self.answers.pop(0)


async def test_a_live_runs_approval_gate_asks_the_clients_user(
    project: Path,
) -> None:
    with LLMServer() as server:
        (project / "loopkit.yaml").write_text(
            "version: 2\nproviders:\n  local:\n    model: openai/test-model\n"
            f"    apiBase: {server.url}\n    apiKey: sk-test\n    default: true\n"
        )
        _write(
            project,
            "ship",
            "name: ship\npipeline:\n  - prompt: Write the notes.\n    label: Notes\n"
            "  - approve: Publish the notes?\n    label: Publish\n",
        )
        server.default = Reply("v2 notes")
        answers = Answers(
            ElicitResult(action="accept", content={"approve": True}),
            ElicitResult(action="decline"),
        )
        server_side = build_server(ProjectBackend(find_project(project)))
        async with Client(server_side, mode="legacy", elicitation_callback=answers) as client:
            approved = await client.call_tool("ship", {})
            declined = await client.call_tool("ship", {})

    assert (
        answers.asked
        == ["The loop 'ship' waits for your approval (Publish): Publish the notes?"] * 2
    )
    assert not approved.is_error and _text(approved) == "v2 notes"
    assert declined.is_error
    assert _text(declined) == (
        "The run of 'ship' ended cancelled: Approval 'Publish' was rejected: "
        "declined in the MCP client"
    )


async def test_a_client_that_cannot_ask_gets_the_gate_rejected_with_the_reason(
    project: Path,
) -> None:
    with LLMServer() as server:
        (project / "loopkit.yaml").write_text(
            "version: 2\nproviders:\n  local:\n    model: openai/test-model\n"
            f"    apiBase: {server.url}\n    apiKey: sk-test\n    default: true\n"
        )
        _write(project, "ship", "name: ship\npipeline:\n  - approve: Publish?\n")
        async with _client(project) as client:
            result = await client.call_tool("ship", {})

    assert result.is_error
    assert _text(result) == (
        "The run of 'ship' ended cancelled: Approval 'pipeline[0]' was rejected: the MCP "
        "client cannot ask its user (no form elicitation): approve it with "
        "`loopkit run --approve`, or run the loop on the web app"
    )


def _text(result: Any) -> str:
    return str(result.content[0].text)

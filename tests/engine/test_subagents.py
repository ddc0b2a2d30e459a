"""SubAgents: named roles with their own model, system prompt, tools and skills, and the
LRS rules that understand them (maker/checker separation, least privilege)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from llm_server import LLMServer, Reply

from loopkit import lrs
from loopkit.connectors.provider import ConnectorTools
from loopkit.engine import RunOptions, run_loop
from loopkit.llm import LiteLLMProvider
from loopkit.sinks import ListSink
from loopkit.yamlio import loop_from_data


class Api(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        data = json.dumps({"path": self.path, "method": self.command}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def llm() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


def tracker(base: str) -> dict[str, Any]:
    return {
        "type": "http",
        "baseUrl": base,
        "operations": {
            "get_issue": {"path": "/issues/{id}"},
            "list_issues": {"path": "/issues"},
            "close_issue": {"method": "POST", "path": "/issues/{id}/close"},
        },
    }


async def test_a_step_runs_with_its_subagents_model_prompt_tools_and_skills(
    llm: LLMServer, api: str, tmp_path: Path
) -> None:
    skill = tmp_path / "skills/triage/SKILL.md"
    skill.parent.mkdir(parents=True)
    skill.write_text("---\nname: triage\ndescription: Sort issues by severity.\n---\nP0 first.\n")
    loop = loop_from_data(
        {
            "name": "sub",
            "model": "openai/loop-model",
            "connectors": {"tracker": tracker(api)},
            "subagents": {
                "triager": {
                    "role": "executor",
                    "model": "openai/triage-model",
                    "prompt": "You triage issues for {{ loop.name }}.",
                    "connectors": ["tracker"],
                    "tools": ["tracker.get_issue", "tracker.list_issues"],
                    "skills": ["triage"],
                }
            },
            "pipeline": [
                {"prompt": "Triage issue 7.", "label": "Triage", "subagent": "triager"},
                {
                    "prompt": "Only read one issue.",
                    "label": "Narrow",
                    "subagent": "triager",
                    "tools": ["tracker.get_issue", "tracker.close_issue"],
                },
            ],
        },
        check=False,
    )
    llm.reset()
    llm.tool_call("tracker__get_issue", {"id": "7"})
    llm.script(Reply("P2: cosmetic."), Reply("read it"))
    sink = ListSink()

    result = await run_loop(
        loop,
        LiteLLMProvider(api_base=llm.url),
        sinks=[sink],
        options=RunOptions(retry_base_delay=0.01),
        tool_provider=ConnectorTools(loop, root=tmp_path),
    )

    assert result.status == "succeeded", result.error
    first, _, narrow = (r.body for r in llm.requests)
    assert first["model"] == "triage-model"
    system = first["messages"][0]["content"]
    assert system.startswith("You triage issues for sub.\n\nYou have skills:")
    assert "- triage: Sort issues by severity." in system
    assert sorted(t["function"]["name"] for t in first["tools"]) == [
        "load_skill",
        "tracker__get_issue",
        "tracker__list_issues",
    ]
    # The step's allow-list narrows the subagent's: a tool must pass both.
    assert sorted(t["function"]["name"] for t in narrow["tools"]) == [
        "load_skill",
        "tracker__get_issue",
    ]
    (call,) = sink.of_type("tool_called")
    assert (call.name, call.result) == (
        "tracker__get_issue",
        '{"path": "/issues/7", "method": "GET"}',
    )


# ── The LRS understands subagents ────────────────────────────────────────


def report(**data: Any) -> dict[str, Any]:
    data.setdefault("name", "l")
    data.setdefault("model", "gpt-4o-mini")
    return lrs.score(loop_from_data(data)).as_dict()


def findings(rep: dict[str, Any], dimension: str) -> list[tuple[str, str]]:
    return [(f["level"], f["message"]) for f in rep["findings"] if f["dimension"] == dimension]


def points(rep: dict[str, Any], key: str) -> int:
    return next(d["points"] for d in rep["dimensions"] if d["key"] == key)


WRITER = {"role": "executor", "model": "gpt-4o-mini", "prompt": "Write the fix."}
PLAN = {
    "plan": "Fix the bug",
    "label": "Fixer",
    "planner": "lead",
    "executor": "writer",
    "maxSteps": 3,
    "maxIterations": 2,
    "templates": {"edit": {"description": "Edit code", "prompt": "Edit: {{ input }}"}},
}


def test_a_checker_with_the_makers_model_and_prompt_is_weak_separation() -> None:
    rep = report(
        subagents={"writer": WRITER, "judge": {**WRITER, "role": "verifier"}},
        pipeline=[{"prompt": "Fix it", "label": "Fix", "subagent": "writer"}],
        verify={"maker": "Fix", "checker": "judge"},
    )

    assert (
        "warn",
        "Weak Maker/Checker separation: checker 'judge' has the same model and prompt as maker 'Fix'",
    ) in findings(rep, "verification")
    assert points(rep, "verification") == 12


def test_a_checker_with_its_own_prompt_and_model_is_full_separation() -> None:
    rep = report(
        subagents={
            "writer": WRITER,
            "judge": {
                "role": "verifier",
                "model": "claude-sonnet-4-5",
                "prompt": "Find every flaw.",
            },
        },
        pipeline=[{"prompt": "Fix it", "label": "Fix", "subagent": "writer"}],
        verify={"maker": "Fix", "checker": "judge"},
    )

    assert findings(rep, "verification") == [("ok", "Maker/Checker separation enforced")]
    assert points(rep, "verification") == 25


def test_a_plan_maker_is_judged_by_its_executor_and_planner() -> None:
    subagents = {
        "writer": WRITER,
        "lead": {"role": "planner", "model": "gpt-4o"},
        "judge": {**WRITER, "role": "verifier"},
    }

    twin = report(
        subagents=subagents, pipeline=[PLAN], verify={"maker": "Fixer", "checker": "judge"}
    )
    own = report(subagents=subagents, pipeline=[PLAN], verify={"maker": "Fixer", "checker": "lead"})

    assert (
        "warn",
        "Weak Maker/Checker separation: checker 'judge' has the same model and prompt as maker "
        "'Fixer (edit)'",
    ) in findings(twin, "verification")
    assert findings(own, "verification")[-1] == (
        "block",
        "Checker 'lead' is also the planner of maker 'Fixer': it would judge the plan it made",
    )
    assert own["score"] <= 49


def test_a_maker_running_as_a_verifier_is_flagged() -> None:
    rep = report(
        subagents={"judge": {"role": "verifier", "prompt": "Judge."}},
        pipeline=[{"prompt": "Fix it", "label": "Fix", "subagent": "judge"}],
        verify={"maker": "Fix", "checker": "Adversarial Verifier"},
    )

    assert (
        "warn",
        "Maker 'Fix' runs as subagent 'judge', whose role is 'verifier'",
    ) in findings(rep, "verification")


def test_a_checker_that_can_write_is_flagged() -> None:
    rep = report(
        connectors={"tracker": tracker("https://tracker.example")},
        subagents={
            "writer": WRITER,
            "judge": {"role": "verifier", "prompt": "Judge.", "connectors": ["tracker"]},
        },
        pipeline=[{"prompt": "Fix it", "label": "Fix", "subagent": "writer"}],
        verify={"maker": "Fix", "checker": "judge"},
    )
    narrowed = report(
        connectors={"tracker": tracker("https://tracker.example")},
        subagents={
            "writer": WRITER,
            "judge": {
                "role": "verifier",
                "prompt": "Judge.",
                "connectors": ["tracker"],
                "tools": ["get_issue"],
            },
        },
        pipeline=[{"prompt": "Fix it", "label": "Fix", "subagent": "writer"}],
        verify={"maker": "Fix", "checker": "judge"},
    )

    assert ("warn", "Checker 'judge' can call write tools (connector 'tracker')") in findings(
        rep, "verification"
    )
    assert not any("write tools" in m for _, m in findings(narrowed, "verification"))


def test_least_privilege_counts_subagent_and_template_connectors() -> None:
    open_sub = report(
        connectors={"tracker": tracker("https://tracker.example")},
        subagents={"worker": {"role": "executor", "connectors": ["tracker"]}},
        pipeline=[{"prompt": "Go", "label": "Go", "subagent": "worker"}],
    )
    closed_sub = report(
        connectors={"tracker": tracker("https://tracker.example")},
        subagents={
            "worker": {"role": "executor", "connectors": ["tracker"], "tools": ["get_issue"]}
        },
        pipeline=[{"prompt": "Go", "label": "Go", "subagent": "worker"}],
    )
    open_template = report(
        connectors={"tracker": tracker("https://tracker.example")},
        subagents={"writer": WRITER, "lead": {"role": "planner"}},
        pipeline=[
            {
                **PLAN,
                "templates": {"edit": {**PLAN["templates"]["edit"], "connectors": ["tracker"]}},
            }
        ],  # type: ignore[index]
    )

    assert (
        "warn",
        "1 step may call every tool of its connectors (pipeline[0])",
    ) in findings(open_sub, "observability")
    assert ("ok", "Steps with connectors allow only the tools they need") in findings(
        closed_sub, "observability"
    )
    assert points(open_sub, "observability") + 3 == points(closed_sub, "observability")
    assert (
        "warn",
        "1 step may call every tool of its connectors (pipeline[0].templates['edit'])",
    ) in findings(open_template, "observability")


def test_plan_limits_count_for_termination() -> None:
    bounded = report(subagents={"writer": WRITER, "lead": {"role": "planner"}}, pipeline=[PLAN])
    unbounded = report(
        subagents={"writer": WRITER, "lead": {"role": "planner"}},
        pipeline=[{k: v for k, v in PLAN.items() if k != "maxIterations"}],
    )

    assert ("ok", "Plan step 'Fixer' is bounded (at most 6 planned steps)") in findings(
        bounded, "termination"
    )
    assert (
        "warn",
        "Plan step 'Fixer' relies on default limits (maxIterations 3, maxSteps 3)",
    ) in findings(unbounded, "termination")


def test_validation_reports_unknown_connectors_of_a_subagent() -> None:
    from loopkit.errors import SpecError

    with pytest.raises(SpecError) as caught:
        loop_from_data(
            {
                "name": "l",
                "subagents": {"worker": {"role": "executor", "connectors": ["githb"]}},
                "connectors": {"github": tracker("https://api.github.com")},
                "pipeline": [{"prompt": "Go"}],
            }
        )

    (problem,) = caught.value.problems
    assert (problem.path, problem.message, problem.hint) == (
        "subagents['worker'].connectors[0]",
        "connector 'githb' is not defined",
        "did you mean 'github'?",
    )


async def test_a_verifier_subagent_checks_claims_with_its_own_tools(
    llm: LLMServer, tmp_path: Path
) -> None:
    import sqlite3

    from llm_server import verdict

    with sqlite3.connect(tmp_path / "shop.db") as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY)")
        db.executemany("INSERT INTO items VALUES (?)", [(1,), (2,), (3,)])
    loop = loop_from_data(
        {
            "name": "audited",
            "model": "openai/test",
            "connectors": {"db": {"type": "sql", "url": "sqlite:///shop.db"}},
            "subagents": {
                "auditor": {
                    "role": "verifier",
                    "prompt": "Check every number against the database.",
                    "connectors": ["db"],
                    "tools": ["db.query"],
                }
            },
            "pipeline": [{"prompt": "How many items are there?", "label": "Count"}],
            "verify": {"maker": "Count", "checker": "auditor", "maxRounds": 1},
        }
    )
    llm.reset()
    llm.script(
        Reply("There are 3 items."),
        Reply(
            "",
            tool_calls=[
                {"name": "db__query", "arguments": {"sql": "SELECT count(*) AS n FROM items"}}
            ],
        ),
        verdict(True, 0.95),
    )
    sink = ListSink()

    result = await run_loop(
        loop,
        LiteLLMProvider(api_base=llm.url),
        sinks=[sink],
        options=RunOptions(retry_base_delay=0.01),
        tool_provider=ConnectorTools(loop, root=tmp_path),
    )

    assert result.status == "succeeded", result.error
    maker, checker, verdict_request = (r.body for r in llm.requests)
    assert "tools" not in maker or not maker["tools"]
    assert [t["function"]["name"] for t in checker["tools"]] == ["db__query"]
    assert checker["messages"][0]["content"] == "Check every number against the database."
    (call,) = [e.as_dict() for e in sink.of_type("tool_called")]
    assert (call["key"], call["label"], call["name"], call["is_error"]) == (
        "verify.auditor",
        "auditor",
        "db__query",
        False,
    )
    assert verdict_request["messages"][-1] == {
        "role": "tool",
        "tool_call_id": verdict_request["messages"][-2]["tool_calls"][0]["id"],
        "content": '{"columns": ["n"], "rows": [[3]], "row_count": 1}',
    }
    assert [e.passed for e in sink.of_type("verification_round")] == [True]

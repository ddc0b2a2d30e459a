"""Budget semantics: project defaults merged key by key, iterations as passes, maxModelCalls.

Runs go through LiteLLM to the real OpenAI-compatible test server; the CLI
runs as a real process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_server import LLMServer, Reply, verdict

from loopkit import lrs, spec
from loopkit.engine import RunOptions, StaticTools, run_loop
from loopkit.llm import LiteLLMProvider
from loopkit.memory import InMemoryStore
from loopkit.sinks import ListSink
from loopkit.tools import FunctionTool, ToolResult
from loopkit.yamlio import load_loop, load_project, loop_from_data

REPO = Path(__file__).resolve().parents[2]
MODEL = "openai/test"
CHECKER = "adversarial verifier"


@pytest.fixture(scope="module")
def server() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh(server: LLMServer) -> None:
    server.reset()


def make_loop(**data: Any) -> spec.Loop:
    data.setdefault("name", "t")
    data.setdefault("model", MODEL)
    return loop_from_data(data)


def agents(*labels: str) -> list[dict[str, Any]]:
    return [{"prompt": f"Do the work of {label}.", "label": label} for label in labels]


def verified(budget: dict[str, Any], max_rounds: int = 2) -> spec.Loop:
    return make_loop(
        pipeline=[{"prompt": "Triage the new issues.", "label": "Triage", "retries": 0}],
        verify={"maker": "Triage", "checker": "Adversarial Verifier", "maxRounds": max_rounds},
        budget=budget,
    )


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


def roles(server: LLMServer) -> list[str]:
    return ["checker" if r.is_checker else "maker" for r in server.completed()]


# ── Point 7: the project's defaults and the loop's budget merge key by key ──

PROJECT = load_project(
    "version: 2\nname: acme\ndefaults:\n  budget:\n    maxTokens: 200000\n    maxCostUsd: 5\n",
    "loopkit.yaml",
)


def test_a_loops_budget_overrides_the_projects_defaults_one_key_at_a_time() -> None:
    loop = make_loop(pipeline=agents("A"), budget={"maxDurationMinutes": 30, "maxCostUsd": 1})
    assert spec.effective_budget(loop, PROJECT) == spec.Budget(
        max_tokens=200000, max_cost_usd=1, max_duration_minutes=30
    )
    assert spec.effective_budget(make_loop(pipeline=agents("A")), PROJECT) == spec.Budget(
        max_tokens=200000, max_cost_usd=5
    )
    assert spec.effective_budget(loop) == loop.budget
    assert spec.effective_budget(make_loop(pipeline=agents("A"))) == spec.Budget()


async def test_a_project_token_limit_stops_a_loop_whose_budget_only_sets_a_duration(
    server: LLMServer,
) -> None:
    server.default = Reply("ok", prompt_tokens=150000)
    project = load_project(
        "version: 2\ndefaults:\n  budget:\n    maxTokens: 200000\n", "loopkit.yaml"
    )
    loop = make_loop(pipeline=agents("S1", "S2", "S3"), budget={"maxDurationMinutes": 30})

    result, sink, _ = await run(server, loop, project=project)

    assert result.status == "budget_exceeded"
    assert result.limit == "maxTokens"
    assert result.error == "Exceeded the maxTokens limit of 200000 (tokens=300002)"
    assert server.count("Do the work of S3", status=None) == 0
    (started,) = sink.of_type("run_started")
    assert started.budget == {"maxTokens": 200000, "maxDurationMinutes": 30.0}
    # The LRS counts the limits the run obeyed, no more, no fewer.
    report = lrs.score(loop, project)
    assert "[ok] Budget controls configured (2 dimensions)" in [
        f"{f.mark} {f.message}" for f in report.findings
    ]
    assert spec.effective_budget(loop, project).dimensions() == list(started.budget)


# ── Point 8: an iteration is a pass of the loop ──


async def test_one_iteration_runs_the_pipeline_and_its_checker_then_stops_before_a_retry(
    server: LLMServer,
) -> None:
    server.when(CHECKER, verdict(False, 0.4, ["two issues have no priority"]))

    result, sink, _ = await run(server, verified({"maxIterations": 1}))

    assert roles(server) == ["maker", "checker"]
    assert result.status == "budget_exceeded"
    assert result.limit == "maxIterations"
    assert result.error == (
        "Stopping before iteration 2: it would exceed the maxIterations limit of 1 (iterations=2)"
    )
    assert (result.iterations, result.rounds, result.requests) == (1, 1, 2)
    (round_,) = sink.of_type("verification_round")
    assert (round_.passed, round_.will_retry) == (False, False)
    finished = sink.events[-1]
    assert (finished.type, finished.iterations, finished.requests) == ("run_finished", 1, 2)
    assert sink.of_type("budget_warning") == []


async def test_one_iteration_succeeds_when_its_checker_passes(server: LLMServer) -> None:
    server.when(CHECKER, verdict(True, 0.9))

    result, _, _ = await run(server, verified({"maxIterations": 1}))

    assert result.status == "succeeded"
    assert roles(server) == ["maker", "checker"]
    assert (result.iterations, result.requests) == (1, 2)


async def test_a_failed_round_without_rounds_left_is_a_verification_failure_not_a_budget_one(
    server: LLMServer,
) -> None:
    server.when(CHECKER, verdict(False, 0.4, ["wrong"]))

    result, _, _ = await run(server, verified({"maxIterations": 2}, max_rounds=2))

    assert result.status == "verification_failed"
    assert roles(server) == ["maker", "checker", "maker", "checker"]
    assert result.iterations == 2


async def test_each_retry_round_is_the_next_iteration(server: LLMServer) -> None:
    # A new issue each round: a repeated one would stall the rounds (issue 18).
    server.when(CHECKER, verdict(False, 0.4, ["wrong"]), times=1)
    server.when(CHECKER, verdict(False, 0.5, ["still incomplete"]))

    result, sink, _ = await run(server, verified({"maxIterations": 2}, max_rounds=3))

    assert roles(server) == ["maker", "checker", "maker", "checker"]
    assert result.status == "budget_exceeded"
    assert result.error == (
        "Stopping before iteration 3: it would exceed the maxIterations limit of 2 (iterations=3)"
    )
    assert [r.will_retry for r in sink.of_type("verification_round")] == [True, False]
    (warning,) = sink.of_type("budget_warning")
    assert (warning.limit, warning.allowed, warning.observed) == ("maxIterations", 2, 2)
    assert warning.message == "maxIterations is at 100% of its limit (2 of 2)"


async def test_a_loop_without_verify_is_one_iteration_whatever_its_steps(
    server: LLMServer,
) -> None:
    loop = make_loop(pipeline=agents("A", "B", "C"), budget={"maxIterations": 1})

    result, _, _ = await run(server, loop)

    assert result.status == "succeeded"
    assert (result.iterations, result.requests) == (1, 3)


async def test_max_model_calls_counts_tool_turns_and_checker_calls(server: LLMServer) -> None:
    async def lookup(ticket: str) -> ToolResult:
        return ToolResult(content=f"{ticket}: printer on fire")

    tool = FunctionTool(
        "lookup",
        "Find a ticket",
        {"type": "object", "properties": {"ticket": {"type": "string"}}},
        lookup,
    )
    server.tool_call("lookup", {"ticket": "T-7"})
    server.script(Reply("The printer is on fire."))
    server.when(CHECKER, verdict(True, 0.9))

    result, sink, _ = await run(
        server, verified({"maxModelCalls": 2}), tool_provider=StaticTools([tool])
    )

    assert roles(server) == ["maker", "maker"]  # the tool turn and the answer; no checker
    assert result.status == "budget_exceeded"
    assert result.limit == "maxModelCalls"
    assert result.error == (
        "Stopping before call 3: it would exceed the maxModelCalls limit of 2 (calls=3)"
    )
    assert (result.requests, result.iterations) == (2, 1)
    (warning,) = sink.of_type("budget_warning")
    assert warning.message == "maxModelCalls is at 100% of its limit (2 of 2)"


async def test_a_resumed_run_counts_its_earlier_calls_and_passes_once(server: LLMServer) -> None:
    # Round 1 fails its check; round 2's maker fails for good; the resume finishes round 2.
    server.when(CHECKER, verdict(False, 0.4, ["wrong"]), times=1)
    server.when(CHECKER, verdict(True, 0.9))
    server.when("wrong", Reply(status=400, error="bad request"), times=1)
    loop = verified({"maxIterations": 2, "maxModelCalls": 4}, max_rounds=2)
    store = InMemoryStore()

    first, _, _ = await run(server, loop, store=store)
    assert first.status == "failed"
    assert (first.requests, first.iterations) == (2, 2)

    options = RunOptions(run_id=first.id, resume=True, retry_base_delay=0.01)
    result, sink, _ = await run(server, loop, store=store, options=options)

    assert result.status == "succeeded"
    assert (result.requests, result.iterations, result.rounds) == (4, 2, 2)
    record = store.get_run(first.id)
    assert record is not None and (record.requests, record.iterations) == (4, 2)
    assert [e.resumed for e in sink.of_type("step_finished")] == [True, False]
    assert roles(server) == ["maker", "checker", "maker", "checker"]


async def test_calls_a_dead_worker_lost_count_toward_max_model_calls(server: LLMServer) -> None:
    loop = make_loop(pipeline=agents("One", "Two", "Three"), budget={"maxModelCalls": 3})
    # A resumed web run whose earlier worker died with one call in flight (paid, unseen).
    options = RunOptions(retry_base_delay=0.01, lost_calls=1)
    result, sink, _ = await run(server, loop, options=options)

    assert len(server.completed()) == 2  # the lost call left room for two
    assert (result.status, result.limit) == ("budget_exceeded", "maxModelCalls")
    assert result.error == (
        "Stopping before call 4: it would exceed the maxModelCalls limit of 3 (calls=4)"
    )
    (finished,) = sink.of_type("run_finished")
    assert (finished.requests, finished.lost_calls) == (3, 1)
    assert finished.as_dict()["lost_calls"] == 1

    server.reset()
    result, sink, _ = await run(server, loop)
    assert (result.status, result.requests) == ("succeeded", 3)
    (finished,) = sink.of_type("run_finished")
    assert "lost_calls" not in finished.as_dict()  # only a run that lost calls says so


# ── The first release's daily-triage: maxIterations 1, maxRounds 2 ──

FIRST_RELEASE_TRIAGE = """\
# Daily Issue Triage Loop (the first release's file, with the built-in checker)
name: daily-triage
description: Automatically categorizes and prioritizes new GitHub issues.

trigger:
  type: cron
  cron: "0 9 * * 1-5"

pipeline:
  - prompt: >
      Scan all open issues without labels.
    label: Issue Triage

verify:
  maker: Issue Triage
  checker: Adversarial Verifier
  maxRounds: 2
  autoRetry: true

budget:
  maxTokens: 200000
  maxDurationMinutes: 15
  maxIterations: 1

memory:
  store: filesystem
  path: .loopkit/state
"""


def cli(cwd: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPKIT_")}
    env.update(PYTHONPATH=str(REPO), **env_extra)
    return subprocess.run(
        [sys.executable, "-m", "loopkit.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_first_releases_daily_triage_dry_runs_its_checker(tmp_path: Path) -> None:
    (tmp_path / "daily-triage.yaml").write_text(FIRST_RELEASE_TRIAGE)

    done = cli(tmp_path, "run", "daily-triage.yaml", "--dry-run", "--json")

    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    (round_,) = [e for e in events if e["type"] == "verification_round"]
    assert (round_["round"], round_["passed"]) == (1, True)
    assert events[-1]["status"] == "succeeded"
    assert (events[-1]["requests"], events[-1]["iterations"]) == (2, 1)


def test_the_first_releases_daily_triage_scores_its_iteration_limit_honestly() -> None:
    report = lrs.score(load_loop(FIRST_RELEASE_TRIAGE, "daily-triage.yaml"))
    termination = [f for f in report.findings if f.dimension == "termination"]
    assert [f"{f.mark} {f.message}" for f in termination] == [
        "[!] maxIterations 1 is below maxRounds 2: the run stops before a retry round",
        "[!] Model calls not capped (only wall time bounds the run)",
        "[ok] Verification rounds capped (maxRounds: 2)",
    ]
    assert termination[0].fix is not None
    assert termination[0].fix.as_dict() == {
        "label": "Allow every round",
        "patch": {"budget": {"maxIterations": 2}},
    }
    points = {d.key: d.points for d in report.dimensions}
    assert points["termination"] == 3 + 4 - 2


def test_the_cli_runs_with_the_projects_budget_under_the_loops(
    tmp_path: Path, server: LLMServer
) -> None:
    server.default = Reply("ok", prompt_tokens=150000)
    (tmp_path / "loopkit.yaml").write_text(
        "version: 2\nname: acme\ndefaults:\n  budget:\n    maxTokens: 200000\n"
    )
    (tmp_path / "loops").mkdir()
    (tmp_path / "loops" / "three.yaml").write_text(
        "name: three\nmodel: openai/test\npipeline:\n"
        "  - prompt: Step A.\n    label: A\n"
        "  - prompt: Step B.\n    label: B\n"
        "  - prompt: Step C.\n    label: C\n"
        "budget:\n  maxDurationMinutes: 30\n"
    )

    done = cli(tmp_path, "run", "three", "--json", LOOPKIT_API_BASE=server.url)

    assert done.returncode == 1, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events[0]["budget"] == {"maxTokens": 200000, "maxDurationMinutes": 30.0}
    assert (events[-1]["status"], events[-1]["limit"]) == ("budget_exceeded", "maxTokens")
    assert server.count("Step C", status=None) == 0


# ── The LRS: limits below what one pass needs ──


def findings(loop: spec.Loop) -> list[str]:
    return [
        f"{f.mark} {f.message}" for f in lrs.score(loop).findings if f.dimension == "termination"
    ]


def test_the_lrs_blocks_a_model_call_limit_below_one_pass() -> None:
    loop = make_loop(
        pipeline=[
            {"parallel": agents("Bugs", "Security")},
            {
                "when": "'x' in steps['Bugs'].output",
                "then": agents("Fix", "Test"),
                "else": agents("Note"),
            },
            {"approve": "Ship it?"},
        ],
        verify={"maker": ["Bugs", "Security"], "checker": "Adversarial Verifier", "maxRounds": 2},
        budget={"maxModelCalls": 3},
    )
    report = lrs.score(loop)
    (blocking,) = [f for f in report.findings if f.level == "block"]
    assert blocking.message == (
        "maxModelCalls 3 is below the 4 model calls one pass needs (3 agent steps, 1 checker)"
    )
    assert blocking.fix is not None
    assert blocking.fix.patch == {"budget": {"maxModelCalls": 50}}
    assert report.score <= lrs.BLOCKED_CAP
    fixed = loop.model_copy(update={"budget": spec.Budget(max_model_calls=4)})
    assert "[ok] Model calls capped (maxModelCalls: 4)" in findings(fixed)


def test_a_checker_whose_makers_may_all_be_skipped_is_not_counted_in_one_pass() -> None:
    loop = make_loop(
        pipeline=[
            {"prompt": "Classify.", "label": "Classify"},
            {"when": "'bug' in steps['Classify'].output", "then": agents("Fix")},
        ],
        verify={"maker": "Fix", "checker": "Adversarial Verifier", "maxRounds": 1},
        budget={"maxModelCalls": 1, "maxIterations": 1},
    )
    assert findings(loop) == [
        "[ok] Max iterations set",
        "[ok] Model calls capped (maxModelCalls: 1)",
        "[ok] Verification rounds capped (maxRounds: 1)",
    ]


def test_max_iterations_below_max_rounds_is_fine_when_failed_rounds_do_not_retry() -> None:
    loop = make_loop(
        pipeline=agents("A"),
        verify={
            "maker": "A",
            "checker": "Adversarial Verifier",
            "maxRounds": 3,
            "autoRetry": False,
        },
        budget={"maxIterations": 1, "maxModelCalls": 10},
    )
    assert "[ok] Max iterations set" in findings(loop)


def test_the_examples_that_ship_are_consistent_with_the_new_limits() -> None:
    for path in sorted((REPO / "loops").glob("*.yaml")):
        loop = load_loop(path.read_text(), str(path), check=False)
        marks = findings(loop)
        assert not any("is below" in m for m in marks), (path.name, marks)


def test_the_schema_documents_both_limits() -> None:
    budget = spec.json_schema()["$defs"]["Budget"]["properties"]
    assert budget["maxIterations"]["description"] == (
        "Passes of the loop: the pipeline and one verification round are one iteration; "
        "each retry round is the next."
    )
    assert budget["maxModelCalls"]["description"] == (
        "Model calls of the run (tool-use turns and checker calls included)."
    )


def test_the_lrs_blocks_a_token_limit_too_small_for_one_pass() -> None:
    loop = make_loop(
        pipeline=agents("A", "B"),
        verify={"maker": "B", "checker": "Adversarial Verifier", "maxRounds": 1},
        budget={"maxTokens": 150, "maxCostUsd": 1, "maxDurationMinutes": 5},
    )
    report = lrs.score(loop)
    (blocking,) = [f for f in report.findings if f.level == "block"]
    assert (blocking.dimension, blocking.message) == (
        "budget",
        "maxTokens 150 is below the 192 tokens one pass needs at the least "
        "(3 model calls x 64 answer tokens)",
    )
    assert {d.key: d.points for d in report.dimensions}["budget"] == 20 - 7
    enough = loop.model_copy(update={"budget": spec.Budget(max_tokens=192)})
    assert not lrs.score(enough).blocked


def test_the_lrs_knows_the_engines_smallest_answer() -> None:
    from loopkit.engine.budget import MIN_OUTPUT

    assert lrs.MIN_OUTPUT == MIN_OUTPUT

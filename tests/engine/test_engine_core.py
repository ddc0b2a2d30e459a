"""The engine's parts in process: stores, verdicts, budgets, sinks, resume, threads."""

from __future__ import annotations

import asyncio
import io
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from loopkit import spec
from loopkit.engine import (
    ApprovalDecision,
    ApprovalRequest,
    Approver,
    BudgetLimits,
    BudgetTracker,
    CancelToken,
    RunOptions,
    parse_verdict,
    run_loop,
    run_loop_sync,
)
from loopkit.engine.events import Tokens
from loopkit.errors import BudgetExceeded, ProviderError, WaitForRoom
from loopkit.llm import DryRunProvider, LLMRequest, LLMResponse, ScriptedLLM
from loopkit.memory import (
    Checkpoint,
    FileStore,
    InMemoryStore,
    RunRecord,
    SqliteStore,
    Store,
    atomic_write,
    open_store,
)
from loopkit.sinks import BackgroundSink, CallbackSink, ConsoleSink, JsonlSink, ListSink, Sink
from loopkit.yamlio import loop_from_data


def make_loop(**data: Any) -> spec.Loop:
    data.setdefault("name", "t")
    data.setdefault("model", "test-model")
    return loop_from_data(data)


def agents(*labels: str) -> list[dict[str, Any]]:
    return [{"prompt": f"Do {label}.", "label": label} for label in labels]


# ── Stores ───────────────────────────────────────────────────────────────


@pytest.fixture(params=["memory", "filesystem", "database"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        return InMemoryStore()
    if request.param == "filesystem":
        return FileStore(tmp_path / "state")
    return SqliteStore(tmp_path / "state.sqlite3")


def test_every_store_keeps_runs_newest_first(store: Store) -> None:
    store.save_run(RunRecord(id="a", loop="x", started_at=1.0))
    store.save_run(RunRecord(id="b", loop="y", started_at=3.0))
    store.save_run(RunRecord(id="c", loop="x", started_at=2.0, status="failed"))
    store.save_run(RunRecord(id="a", loop="x", started_at=1.0, status="succeeded"))
    assert [r.id for r in store.list_runs()] == ["b", "c", "a"]
    assert [r.id for r in store.list_runs("x")] == ["c", "a"]
    assert [r.id for r in store.list_runs(limit=1)] == ["b"]
    assert store.get_run("a") == RunRecord(id="a", loop="x", started_at=1.0, status="succeeded")
    assert store.get_run("zzz") is None


def test_every_store_keeps_checkpoints_and_memory(store: Store) -> None:
    checkpoint = Checkpoint(
        key="r1:pipeline[0]", label="A", output="out", tokens={"input": 3}, cost=None
    )
    store.save_checkpoint("run-1", checkpoint)
    store.save_checkpoint("run-1", Checkpoint(key="r1:verify", data={"passed": True}))
    assert store.checkpoints("run-1") == {
        "r1:pipeline[0]": checkpoint,
        "r1:verify": Checkpoint(key="r1:verify", data={"passed": True}),
    }
    assert store.checkpoints("other") == {}
    store.set_memory("loop", "k", {"nested": [1, 2]})
    store.set_memory("loop", "j", "text")
    assert store.get_memory("loop") == {"k": {"nested": [1, 2]}, "j": "text"}
    assert store.get_memory("elsewhere") == {}
    store.update_memory("loop", {"j": "new", "n": 3})
    assert store.get_memory("loop") == {"k": {"nested": [1, 2]}, "j": "new", "n": 3}


def test_a_run_writes_its_outputs_to_memory_in_one_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[Path] = []
    real_write = atomic_write

    def counted(path: Path, data: bytes) -> None:
        writes.append(path)
        real_write(path, data)

    monkeypatch.setattr("loopkit.memory.atomic_write", counted)
    store = FileStore(tmp_path / "state")
    loop = make_loop(pipeline=[{"parallel": agents(*"ABCDEFGH")}])
    result = run_loop_sync(loop, ScriptedLLM(), store=store)
    assert result.status == "succeeded"
    memory = store.get_memory("t")
    assert {k: memory[k] for k in "ABCDEFGH"} == {k: "ok" for k in "ABCDEFGH"}
    assert memory["last_run"]["id"] == result.id
    assert len([w for w in writes if w.parent.name == "memory"]) == 1


def test_a_crash_mid_write_leaves_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "run.json"
    atomic_write(target, b'{"v": 1}')

    def crash(src: str, dst: str) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        atomic_write(target, b'{"v": 2, "half')
    assert json.loads(target.read_bytes()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_open_store_follows_the_loops_memory_settings(tmp_path: Path) -> None:
    assert isinstance(open_store(None, tmp_path), FileStore)
    fs = open_store(spec.Memory(store="filesystem"), tmp_path)
    assert isinstance(fs, FileStore) and fs.root == tmp_path / ".loopkit/state"
    assert isinstance(open_store(spec.Memory(store="memory"), tmp_path), InMemoryStore)
    db = open_store(spec.Memory(store="database", url="sqlite:///runs.sqlite3"), tmp_path)
    assert isinstance(db, SqliteStore) and db.path == str(tmp_path / "runs.sqlite3")


# ── Verdicts ─────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("text", "passed", "score", "issues", "reason", "minor"),
    [
        ('{"pass": true, "score": 0.9, "issues": []}', True, 0.9, [], None, []),
        ('```json\n{"pass": true, "score": 0.85}\n```', True, 0.85, [], None, []),
        # A plain-string issue in a passing verdict: the checker did not let it block.
        (
            'Here you go: {"passed": "yes", "score": 92, "issues": "typo"} thanks',
            True,
            0.92,
            [],
            None,
            ["typo"],
        ),
        # ... and in a failing one it is major: it blocks.
        ('{"pass": false, "score": 0.9, "issues": ["typo"]}', False, 0.9, ["typo"], None, []),
        ('{"pass": true, "score": 0.5}', False, 0.5, [], "score 0.50 is below passScore 0.8", []),
        ('{"pass": false, "score": 0.9}', False, 0.9, [], "the checker did not pass the work", []),
        ('{"pass": true}', False, None, [], "the checker's verdict has no numeric 'score'", []),
        ("LGTM", False, None, [], "the checker's verdict is not JSON: 'LGTM'", []),
    ],
)
def test_verdicts_are_parsed_defensively(
    text: str,
    passed: bool,
    score: float | None,
    issues: list[str],
    reason: str | None,
    minor: list[str],
) -> None:
    verdict = parse_verdict(text, 0.8)
    assert (verdict.passed, verdict.score, verdict.issues, verdict.reason, verdict.minor) == (
        passed,
        score,
        issues,
        reason,
        minor,
    )


# ── Budgets ──────────────────────────────────────────────────────────────


def test_a_reservation_waits_for_calls_in_flight_and_stops_when_the_rest_cannot_hold_it() -> None:
    budget = BudgetTracker(BudgetLimits(max_tokens=1000))
    first = budget.reserve(100)
    assert first.max_output == 1000 - 113
    with pytest.raises(WaitForRoom):  # the first call holds the room: no fragment for this one
        budget.reserve(100)
    budget.commit(first, Tokens(input=100, output=50), 0.0)
    second = budget.reserve(100)
    assert second.max_output == 1000 - 150 - 113
    budget.commit(second, Tokens(input=100, output=700), 0.0)
    with pytest.raises(BudgetExceeded) as caught:
        budget.reserve(100)
    error = caught.value
    assert (error.limit, error.allowed, error.observed) == ("maxTokens", 1000, 1127)
    assert str(error) == (
        "Stopping before a call that would exceed the maxTokens limit of 1000 "
        "(tokens=1127: used 950, this call needs at least 177)"
    )


def test_a_budget_warns_once_at_80_percent() -> None:
    budget = BudgetTracker(BudgetLimits(max_model_calls=5))
    for _ in range(4):
        budget.commit(budget.reserve(0), Tokens(), 0.0)
    (warning,) = budget.warnings()
    assert (warning.limit, warning.observed) == ("maxModelCalls", 4)
    assert warning.message == "maxModelCalls is at 80% of its limit (4 of 5)"
    budget.commit(budget.reserve(0), Tokens(), 0.0)
    assert budget.warnings() == []


def test_iterations_warn_at_80_percent_on_a_retry_pass_and_never_on_the_first() -> None:
    budget = BudgetTracker(BudgetLimits(max_iterations=5))
    budget.begin_iteration(1)
    assert budget.warnings() == []
    budget.begin_iteration(2)
    budget.begin_iteration(3)
    assert budget.warnings() == []
    budget.begin_iteration(4)
    (warning,) = budget.warnings()
    assert (warning.limit, warning.observed) == ("maxIterations", 4)
    assert warning.message == "maxIterations is at 80% of its limit (4 of 5)"
    budget.begin_iteration(5)
    assert budget.warnings() == []
    with pytest.raises(BudgetExceeded) as caught:
        budget.begin_iteration(6)
    assert (caught.value.limit, caught.value.allowed, caught.value.observed) == (
        "maxIterations",
        5,
        6,
    )
    assert str(caught.value) == (
        "Stopping before iteration 6: it would exceed the maxIterations limit of 5 (iterations=6)"
    )
    assert budget.iterations == 5


def test_a_one_pass_limit_never_warns() -> None:
    budget = BudgetTracker(BudgetLimits(max_iterations=1))
    budget.begin_iteration(1)
    assert budget.warnings() == []


def test_time_is_checked_with_an_injected_clock() -> None:
    now = [100.0]
    budget = BudgetTracker(BudgetLimits(max_duration_s=60), clock=lambda: now[0])
    budget.reserve(0)
    now[0] += 61
    with pytest.raises(
        BudgetExceeded, match=r"maxDurationMinutes limit of 1 \(duration=1\.0167 minutes\)"
    ):
        budget.reserve(0)


# ── Runs in process ──────────────────────────────────────────────────────


async def test_memory_from_an_earlier_run_is_readable_from_templates() -> None:
    store = InMemoryStore()
    first = make_loop(name="notes", pipeline=agents("Writer"))
    await run_loop(first, ScriptedLLM(["v1 of the notes"]), store=store)
    second = make_loop(
        name="notes", pipeline=[{"prompt": "Improve: {{ memory['Writer'] }}", "label": "Writer"}]
    )
    llm = ScriptedLLM(["v2"])
    result = await run_loop(second, llm, store=store)
    assert result.status == "succeeded"
    assert llm.requests[0].messages == [{"role": "user", "content": "Improve: v1 of the notes"}]
    assert store.get_memory("notes")["last_run"]["id"] == result.id


async def test_a_failed_run_resumes_from_its_checkpoints() -> None:
    store = InMemoryStore()
    loop = make_loop(pipeline=agents("A", "B", "C"))
    broken = ScriptedLLM(["a", ProviderError("boom: invalid key", status_code=401)])
    first = await run_loop(loop, broken, store=store)
    assert (first.status, first.error) == ("failed", "boom: invalid key")
    fixed = ScriptedLLM(["b", "c"])
    sink = ListSink()
    again = await run_loop(
        loop, fixed, store=store, sinks=[sink], options=RunOptions(run_id=first.id, resume=True)
    )
    assert again.status == "succeeded"
    assert [r.step for r in fixed.requests] == ["B", "C"]
    assert again.outputs == {"A": "a", "B": "b", "C": "c"}
    assert sink.events[0].seq > 1  # numbering continues after the first attempt's events


async def test_a_missing_required_input_fails_with_a_clear_message() -> None:
    loop = make_loop(
        inputs={"repo": {"required": True}}, pipeline=[{"prompt": "Look at {{ inputs.repo }}"}]
    )
    result = await run_loop(loop, ScriptedLLM(), store=InMemoryStore())
    assert result.status == "failed"
    assert result.error == "missing required input(s): repo (pass them as --input repo=VALUE)"


async def test_a_prompt_that_reads_a_missing_value_fails_the_run_not_the_process() -> None:
    # A manual run's payload is whatever its starter passed (not checked): here, none.
    loop = make_loop(
        pipeline=[{"prompt": "Look at {{ trigger.payload.pull_request.title }}", "label": "L"}]
    )
    result = await run_loop(loop, ScriptedLLM(), store=InMemoryStore())
    assert result.status == "failed"
    assert result.error_code == "template_error"
    assert result.error.startswith("pipeline[0]: the prompt template failed:")  # type: ignore[union-attr]


async def test_a_raising_sink_does_not_break_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    class Broken(Sink):
        def emit(self, event: Any) -> None:
            raise RuntimeError("disk full")

    kept = ListSink()
    result = await run_loop(make_loop(pipeline=agents("A")), ScriptedLLM(), sinks=[Broken(), kept])
    assert result.status == "succeeded"
    assert len(kept.events) == 4
    assert "sink Broken failed: disk full" in capsys.readouterr().err


def branch_loop(when: str) -> spec.Loop:
    return make_loop(
        inputs={"deep": {"default": False}},
        pipeline=[
            *agents("Triage"),
            {"when": when, "then": agents("Fix"), "label": "Maybe"},
        ],
        verify={"maker": ["Fix"], "checker": "Adversarial Verifier", "maxRounds": 2},
    )


async def test_verification_is_skipped_when_no_maker_ran_this_round() -> None:
    console, events = io.StringIO(), ListSink()
    llm = ScriptedLLM()
    result = await run_loop(branch_loop("inputs.deep"), llm, sinks=[events, ConsoleSink(console)])
    assert result.status == "succeeded"
    assert [r.role for r in llm.requests] == ["agent"]  # Triage only: no checker call
    (round_,) = [e for e in events.events if e.type == "verification_round"]
    assert (round_.skipped, round_.passed, round_.score) == (True, True, None)
    assert "Round 1: [-] SKIPPED (no maker ran this round" in console.getvalue()


async def test_a_later_round_whose_makers_were_skipped_is_still_judged() -> None:
    # Round 1's Fix fails the checker; in round 2 the branch is not taken (there is
    # feedback now), so the checker judges round 1's output again: no silent success.
    failing = json.dumps({"pass": False, "score": 0.2, "issues": ["wrong file"]})
    llm = ScriptedLLM(["triaged", "fixed", failing, failing])
    result = await run_loop(branch_loop("not feedback"), llm)
    assert result.status == "verification_failed"
    assert [r.role for r in llm.requests] == ["agent", "maker", "checker", "checker"]
    assert "fixed" in llm.requests[-1].messages[-1]["content"]


async def test_the_checker_judges_when_a_maker_ran() -> None:
    verdict = json.dumps({"pass": True, "score": 0.9, "issues": []})
    llm = ScriptedLLM(["triaged", "fixed", verdict])
    result = await run_loop(branch_loop("not inputs.deep"), llm)
    assert result.status == "succeeded"
    assert [r.role for r in llm.requests] == ["agent", "maker", "checker"]
    assert result.verdicts[0].score == 0.9


# ── Wide parallel groups (members prepared in batches: pipeline.PREPARE_BATCH) ──


@pytest.mark.parametrize("concurrency", [100, 8], ids=["prepared-in-batches", "gated"])
async def test_a_group_wider_than_a_preparation_batch_runs_every_member_once(
    concurrency: int,
) -> None:
    labels = [f"M{i}" for i in range(70)]
    events, llm = ListSink(), ScriptedLLM(latency=0.01)
    result = await run_loop(
        make_loop(pipeline=[{"parallel": agents(*labels)}]),
        llm,
        sinks=[events],
        options=RunOptions(concurrency=concurrency),  # 100: no gate, so prepared in batches
    )
    assert result.status == "succeeded"
    assert sorted(r.step for r in llm.requests) == sorted(labels)  # type: ignore[type-var]
    assert set(result.outputs) == set(labels)
    assert [e.seq for e in events.events] == list(range(1, len(events.events) + 1))
    started = {e.label: e.seq for e in events.events if e.type == "step_started"}
    finished = {e.label: e.seq for e in events.events if e.type == "step_finished"}
    assert all(started[label] < finished[label] for label in labels)


async def test_a_wide_group_under_a_token_budget_gets_whole_answers_then_stops() -> None:
    def answer(request: LLMRequest) -> LLMResponse:
        # 400 output tokens, cut (as a provider cuts) when the cap is smaller.
        cap = request.max_output_tokens or 400
        return LLMResponse(
            content="x",
            tokens=Tokens(input=14, output=min(400, cap)),
            model=request.model,
            finish_reason="length" if cap < 400 else "stop",
        )

    labels = [f"M{i}" for i in range(48)]
    loop = make_loop(
        pipeline=[{"parallel": agents(*labels)}, {"parallel": agents("After")}],
        budget={"maxTokens": 6000},
    )
    llm = ScriptedLLM(answer, latency=0.01)
    result = await asyncio.wait_for(run_loop(loop, llm, options=RunOptions(concurrency=64)), 30)
    assert result.status == "budget_exceeded"
    assert result.limit == "maxTokens"
    assert result.tokens.total <= 6000
    # Members wait for the room the calls in flight hold: none gets a fragment of a share.
    caps = [r.max_output_tokens or 0 for r in llm.requests]
    assert caps[:4] == [4096] * 4
    assert all(cap >= 400 for cap in caps[:-1])
    assert len(result.outputs) == len(caps) - 1  # every answer but the one the budget cut
    assert "After" not in result.outputs


async def test_a_failing_member_of_a_wide_group_fails_the_run_after_the_others_finish() -> None:
    members = agents(*[f"M{i}" for i in range(40)])
    members[35] = {"prompt": "Use {{ trigger.payload.pull_request.title }}", "label": "M35"}
    events = ListSink()
    result = await run_loop(
        make_loop(pipeline=[{"parallel": members}]),
        ScriptedLLM(latency=0.01),
        sinks=[events],
        store=InMemoryStore(),
        options=RunOptions(concurrency=64),
    )
    assert result.status == "failed"
    assert result.error_code == "template_error"
    done = {e.label for e in events.events if e.type == "step_finished" and e.kind == "agent"}
    assert done == {f"M{i}" for i in range(40)} - {"M35"}


async def test_the_jsonl_sink_writes_every_event_in_order_by_the_end_of_the_run() -> None:
    out = io.StringIO()
    loop = make_loop(pipeline=[{"parallel": agents(*"ABCDEFGH")}, *agents("Z")])
    result = await run_loop(loop, ScriptedLLM(), sinks=[JsonlSink(out)])
    assert result.status == "succeeded"
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
    assert lines[-1]["type"] == "run_finished"


async def test_the_jsonl_sink_writes_pending_events_while_the_run_waits() -> None:
    out = io.StringIO()
    llm = ScriptedLLM(latency=0.3)
    run = asyncio.ensure_future(
        run_loop(make_loop(pipeline=agents("A")), llm, sinks=[JsonlSink(out)])
    )
    while not llm.requests:
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.1)  # the model is thinking: the run emits nothing now
    written = [json.loads(line)["type"] for line in out.getvalue().splitlines()]
    assert written == ["run_started", "step_started"]
    assert (await run).status == "succeeded"


def test_a_background_sink_delivers_in_order_from_one_thread() -> None:
    seen: list[tuple[int, str]] = []
    sink = BackgroundSink(
        CallbackSink(lambda e: seen.append((e.seq, threading.current_thread().name)))
    )
    result = run_loop_sync(
        make_loop(pipeline=[{"parallel": agents("A", "B", "C")}]), ScriptedLLM(), sinks=[sink]
    )
    sink.close()
    assert result.status == "succeeded"
    assert [s for s, _ in seen] == list(range(1, 11))
    assert {name for _, name in seen} == {"loopkit-sink"}


def test_a_run_in_a_worker_thread_can_be_cancelled_from_another_thread() -> None:
    cancel = CancelToken()
    llm = ScriptedLLM(latency=10)
    results: list[Any] = []
    worker = threading.Thread(
        target=lambda: results.append(
            run_loop_sync(make_loop(pipeline=agents("A")), llm, cancel=cancel)
        )
    )
    worker.start()
    while not llm.requests:
        threading.Event().wait(0.005)
    cancel.cancel("cancelled by alice")
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert (results[0].status, results[0].error) == ("cancelled", "cancelled by alice")


async def test_an_approval_gate_applies_its_timeout_rule() -> None:
    class Never(Approver):
        async def decide(self, request: ApprovalRequest) -> ApprovalDecision:
            await asyncio.sleep(3600)
            raise AssertionError("unreachable")

    loop = make_loop(
        pipeline=[
            {
                "approve": "Ship it?",
                "label": "Gate",
                "timeoutMinutes": 0.001,
                "onTimeout": "approve",
            },
            {"prompt": "Ship.", "label": "Ship"},
        ]
    )
    sink, store = ListSink(), InMemoryStore()
    result = await run_loop(loop, ScriptedLLM(), approver=Never(), sinks=[sink], store=store)
    assert result.status == "succeeded"
    (resolved,) = sink.of_type("approval_resolved")
    assert (resolved.approved, resolved.timed_out, resolved.reason) == (
        True,
        True,
        "no decision within 0.001 minute(s)",
    )


async def test_an_approval_gate_marks_the_run_waiting_while_it_waits() -> None:
    store = InMemoryStore()
    seen: list[str] = []

    class Peek(Approver):
        async def decide(self, request: ApprovalRequest) -> ApprovalDecision:
            seen.append(store.get_run(request.run_id).status)  # type: ignore[union-attr]
            return ApprovalDecision(approved=True, by="bob")

    loop = make_loop(
        pipeline=[{"approve": "Go?", "label": "Gate"}, {"prompt": "Go.", "label": "Go"}]
    )
    result = await run_loop(loop, ScriptedLLM(), approver=Peek(), store=store)
    assert seen == ["waiting_for_approval"]
    assert result.status == "succeeded"


async def test_a_dry_run_emits_the_same_event_types_as_a_live_run() -> None:
    loop = make_loop(
        pipeline=[{"parallel": agents("A", "B")}],
        verify={"maker": ["A", "B"], "checker": "Adversarial Verifier"},
    )
    dry, live = ListSink(), ListSink()
    await run_loop(loop, DryRunProvider(), sinks=[dry])

    def answer(request: LLMRequest) -> LLMResponse:
        text = '{"pass": true, "score": 0.95}' if request.role == "checker" else "done"
        return LLMResponse(content=text, tokens=Tokens(input=5, output=3), cost=0.001)

    await run_loop(loop, ScriptedLLM(answer), sinks=[live])
    assert [e.type for e in dry.events] == [e.type for e in live.events]
    assert live.events[-1].cost == pytest.approx(0.003)
    assert dry.events[-1].cost == 0.0


async def test_later_rounds_rerun_only_the_makers() -> None:
    loop = make_loop(
        pipeline=[
            {"prompt": "Gather facts.", "label": "Facts"},
            {"prompt": "Write.", "label": "Writer"},
        ],
        verify={"maker": "Writer", "checker": "Adversarial Verifier", "maxRounds": 2},
    )
    verdicts = iter(
        ['{"pass": false, "score": 0.2, "issues": ["too short"]}', '{"pass": true, "score": 0.9}']
    )

    def answer(request: LLMRequest) -> str:
        return next(verdicts) if request.role == "checker" else f"{request.step} r{request.round}"

    llm = ScriptedLLM(answer)
    result = await run_loop(loop, llm)
    assert result.status == "succeeded"
    assert [(r.step, r.round) for r in llm.requests] == [
        ("Facts", 1),
        ("Writer", 1),
        ("Adversarial Verifier", 1),
        ("Writer", 2),
        ("Adversarial Verifier", 2),
    ]
    assert "- too short" in llm.requests[3].messages[-1]["content"]
    assert "Your previous answer:\nWriter r1" in llm.requests[3].messages[-1]["content"]


async def test_the_terminal_approver_reads_the_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from loopkit.commands.run import TerminalApprover

    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))
    monkeypatch.setattr("sys.stderr", io.StringIO())
    request = ApprovalRequest(
        run_id="r", loop="t", key="pipeline[1]", label="Gate", question="Ship?"
    )
    decision = await TerminalApprover().decide(request)
    assert decision == ApprovalDecision(approved=True, by="terminal", reason=None)


async def test_a_cancelled_terminal_question_does_not_wait_for_enter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from loopkit.commands.run import TerminalApprover

    read, write = os.pipe()  # nobody ever answers
    monkeypatch.setattr("sys.stdin", os.fdopen(read))
    request = ApprovalRequest(
        run_id="r", loop="t", key="pipeline[1]", label="Gate", question="Ship?"
    )
    task = asyncio.ensure_future(TerminalApprover().decide(request))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    os.close(write)

"""Runs that suspend at an approval gate and are resumed later (the web app's waits).

An approver that ``suspends`` raises ``Suspended`` while nobody has decided:
the run checkpoints, ends as ``suspended`` without ``run_finished`` and holds
nothing; a resume (``RunOptions.resume``) asks the approver again, without
asking the question twice or paying finished steps again.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from loopkit import spec
from loopkit.engine import ApprovalDecision, ApprovalRequest, Approver, RunOptions, run_loop
from loopkit.errors import ProviderError, Suspended
from loopkit.llm import LLMRequest, ScriptedLLM
from loopkit.memory import InMemoryStore, Store
from loopkit.sinks import ListSink
from loopkit.yamlio import loop_from_data


def make_loop(pipeline: list[dict[str, Any]]) -> spec.Loop:
    return loop_from_data({"name": "gated", "model": "test-model", "pipeline": pipeline})


class Desk(Approver):
    """A decision desk: suspends until ``decision`` is set, like the web's rows."""

    suspends = True

    def __init__(self) -> None:
        self.decision: ApprovalDecision | None = None
        self.requests: list[ApprovalRequest] = []

    async def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        self.requests.append(request)
        if self.decision is not None:
            return self.decision
        if request.deadline is not None and time.time() >= request.deadline:
            return ApprovalDecision(approved=False, by="timeout", reason="late", timed_out=True)
        raise Suspended("waiting for Gate", key=request.key, resume_at=request.deadline)


async def run_once(
    loop: spec.Loop, llm: ScriptedLLM, desk: Desk, store: Store, *, resume: bool
) -> tuple[Any, ListSink]:
    sink = ListSink()
    result = await run_loop(
        loop,
        llm,
        approver=desk,
        store=store,
        sinks=[sink],
        options=RunOptions(run_id="r1", resume=resume),
    )
    return result, sink


GATED = [
    {"prompt": "Draft.", "label": "Draft"},
    {"approve": "Ship {{ steps.Draft.output }}?", "label": "Gate", "timeoutMinutes": 60},
    {"prompt": "Ship.", "label": "Ship"},
]


async def test_a_run_suspends_at_an_undecided_gate_and_finishes_nothing() -> None:
    llm, desk, store = ScriptedLLM(), Desk(), InMemoryStore()
    before = time.time()
    result, sink = await run_once(make_loop(GATED), llm, desk, store, resume=False)
    assert (result.status, result.error_code) == ("suspended", "suspended")
    assert result.resume_at == pytest.approx(before + 3600, abs=5)
    types = [e.type for e in sink.events]
    assert types[-3:] == ["step_started", "approval_requested", "run_suspended"]
    assert "run_finished" not in types
    record = store.get_run("r1")
    assert record is not None and record.status == "waiting_for_approval"
    assert [r.step for r in llm.requests] == ["Draft"]


async def test_a_resumed_run_takes_the_decision_without_asking_again_or_repaying() -> None:
    llm, desk, store = ScriptedLLM(), Desk(), InMemoryStore()
    loop = make_loop(GATED)
    await run_once(loop, llm, desk, store, resume=False)
    first_question = desk.requests[0].question
    desk.decision = ApprovalDecision(approved=True, by="alice")
    result, sink = await run_once(loop, llm, desk, store, resume=True)
    assert result.status == "succeeded"
    types = [e.type for e in sink.events]
    assert "approval_requested" not in types  # asked once, in the first part
    (resolved,) = [e for e in sink.events if e.type == "approval_resolved"]
    assert (resolved.approved, resolved.by, resolved.timed_out) == (True, "alice", False)
    # Draft was paid once; the question (rendered from Draft's output) kept its text.
    assert [r.step for r in llm.requests] == ["Draft", "Ship"]
    assert desk.requests[1].question == first_question
    assert desk.requests[1].asked_at == desk.requests[0].asked_at


async def test_a_gate_past_its_deadline_is_closed_by_its_timeout_rule_on_resume() -> None:
    llm, desk, store = ScriptedLLM(), Desk(), InMemoryStore()
    loop = make_loop([{"approve": "Go?", "label": "Gate", "timeoutMinutes": 0.0005}, *GATED[2:]])
    first, _ = await run_once(loop, llm, desk, store, resume=False)
    assert first.status == "suspended"
    time.sleep(max(0.0, (first.resume_at or 0) - time.time()) + 0.01)
    result, sink = await run_once(loop, llm, desk, store, resume=True)
    (resolved,) = [e for e in sink.events if e.type == "approval_resolved"]
    assert (resolved.approved, resolved.timed_out) == (False, True)
    assert (result.status, result.error_code) == ("cancelled", "approval_rejected")
    assert llm.requests == []


async def test_a_parallel_group_suspends_after_its_other_members_finish() -> None:
    llm, desk, store = ScriptedLLM(), Desk(), InMemoryStore()
    loop = make_loop(
        [
            {
                "parallel": [
                    {"prompt": "Research.", "label": "Research"},
                    {"approve": "Allowed?", "label": "Gate"},
                ]
            },
            {"prompt": "Write.", "label": "Write"},
        ]
    )
    first, _ = await run_once(loop, llm, desk, store, resume=False)
    assert first.status == "suspended"
    desk.decision = ApprovalDecision(approved=True, by="bob")
    result, _ = await run_once(loop, llm, desk, store, resume=True)
    assert result.status == "succeeded"
    assert [r.step for r in llm.requests] == ["Research", "Write"]


async def test_a_failing_member_ends_the_run_even_when_another_suspends() -> None:
    def answer(request: LLMRequest) -> Any:
        return ProviderError("down", retryable=False) if request.step == "Broken" else "ok"

    llm = ScriptedLLM(answer)
    loop = make_loop(
        [
            {
                "parallel": [
                    {"prompt": "Break.", "label": "Broken", "retries": 0},
                    {"approve": "Allowed?", "label": "Gate"},
                ]
            }
        ]
    )
    result, _ = await run_once(loop, llm, Desk(), InMemoryStore(), resume=False)
    assert result.status == "failed"


async def test_the_time_budget_does_not_count_the_wait() -> None:
    llm, desk, store = ScriptedLLM(), Desk(), InMemoryStore()
    loop = loop_from_data(
        {
            "name": "gated",
            "model": "test-model",
            "pipeline": GATED,
            "budget": {"maxDurationMinutes": 0.01},
        }
    )
    await run_once(loop, llm, desk, store, resume=False)
    time.sleep(0.7)  # longer than the whole budget (0.6 s): waiting is not working
    desk.decision = ApprovalDecision(approved=True, by="alice")
    result, _ = await run_once(loop, llm, desk, store, resume=True)
    assert result.status == "succeeded"

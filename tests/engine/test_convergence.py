"""Verification that converges (issue 18): severities and ``blockOn``, a stalled loop,
the best round kept and ``onFail``, several checkers with ``require``, the checker's
view of the previous round, and the LRS's self-preference flag.

Against the real OpenAI-compatible test server (``llm_server.py``): each test gives it a
responder that answers the makers and the checkers round by round; requests are counted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from llm_server import LLMServer, Reply

from loopkit import lrs, spec
from loopkit.engine import (
    ApprovalDecision,
    ApprovalRequest,
    Approver,
    RunOptions,
    StaticApprover,
    run_loop,
)
from loopkit.engine.verify import normalise, parse_verdict
from loopkit.errors import SpecError, Suspended
from loopkit.llm import LiteLLMProvider
from loopkit.memory import InMemoryStore
from loopkit.sinks import ConsoleSink, ListSink
from loopkit.yamlio import load_loop, loop_from_data

MODEL = "openai/test"


@pytest.fixture(scope="module")
def server() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh(server: LLMServer) -> Iterator[None]:
    server.reset()
    yield
    server.responder = None


def is_checker(body: dict[str, Any]) -> bool:
    first = body["messages"][0]
    return first["role"] == "system" and "verifier" in str(first["content"]).lower()


def checker_text(body: dict[str, Any]) -> str:
    return str(body["messages"][1]["content"])


class Script:
    """A responder: the maker answers ``drafts[n]`` in its n-th call, the checker
    ``verdicts[n]`` (a function of its request, or a verdict dict) in its n-th call."""

    def __init__(
        self,
        drafts: list[str],
        verdicts: list[dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]],
    ) -> None:
        self.drafts, self.verdicts = drafts, verdicts
        self.makers = self.checkers = 0

    def __call__(self, body: dict[str, Any]) -> Reply:
        if is_checker(body):
            answer = self.verdicts[min(self.checkers, len(self.verdicts) - 1)]
            self.checkers += 1
            return Reply(json.dumps(answer(body) if callable(answer) else answer))
        draft = self.drafts[min(self.makers, len(self.drafts) - 1)]
        self.makers += 1
        return Reply(draft)


def fail(score: float, *issues: dict[str, Any] | str) -> dict[str, Any]:
    return {"pass": False, "score": score, "issues": list(issues)}


def major(text: str, **extra: Any) -> dict[str, Any]:
    return {"issue": text, "severity": "major", **extra}


def writer_loop(**verify: Any) -> spec.Loop:
    return loop_from_data(
        {
            "name": "notes",
            "description": "Write the release notes.",
            "model": MODEL,
            "pipeline": [{"prompt": "Write the release notes.", "label": "Writer"}],
            "verify": {"maker": "Writer", "checker": "Adversarial Verifier", **verify},
        }
    )


async def run(
    server: LLMServer,
    loop: spec.Loop,
    approver: Approver | None = None,
    store: InMemoryStore | None = None,
    **options: Any,
) -> tuple[Any, ListSink]:
    sink = ListSink()
    result = await run_loop(
        loop,
        LiteLLMProvider(api_base=server.url),
        sinks=[sink],
        approver=approver,
        store=store,
        options=RunOptions(**options),
    )
    return result, sink


# ── Convergence: a repeated blocking issue stalls the loop ───────────────


async def test_a_checker_repeating_the_same_major_issue_stalls_the_loop_after_the_second_round(
    server: LLMServer,
) -> None:
    server.responder = Script(
        ["Notes v1.", "Notes v2.", "Notes v3."],
        [
            fail(0.4, major("Missing the migration steps.")),
            # The same finding, worded with other case, spacing and punctuation.
            fail(0.45, major("missing the  migration steps")),
        ],
    )
    result, sink = await run(server, writer_loop(maxRounds=5))

    assert (result.status, result.error_code, result.rounds) == (
        "verification_failed",
        "stalled",
        2,
    )
    assert len(server.requests) == 4  # maker and checker, twice: rounds 3 to 5 are not spent
    assert result.verification == "stalled"
    assert result.error == (
        "stalled at round 2: the checker repeated its issues (missing the  migration steps)"
    )
    rounds = sink.of_type("verification_round")
    assert [(r.round, r.stalled, r.will_retry) for r in rounds] == [
        (1, False, True),
        (2, True, False),
    ]
    assert rounds[1].findings[0]["repeated"] is True
    finished = sink.of_type("run_finished")[0]
    assert finished.as_dict()["verification"] == "stalled"
    assert finished.as_dict()["best_round"] == 2  # the higher score


async def test_without_stall_on_repeat_the_same_issue_spends_every_round(
    server: LLMServer,
) -> None:
    server.responder = Script(["Notes."], [fail(0.4, major("Missing the migration steps."))])
    result, _ = await run(server, writer_loop(maxRounds=4, stallOnRepeat=False))

    assert (result.status, result.error_code, result.rounds) == (
        "verification_failed",
        "verification_failed",
        4,
    )
    assert len(server.requests) == 8


async def test_an_issue_the_checker_marks_as_not_new_stalls_the_loop(server: LLMServer) -> None:
    server.responder = Script(
        ["Notes v1.", "Notes v2."],
        [
            fail(0.4, major("The breaking change is not announced.")),
            fail(0.5, major("Breaking change still buried in the last paragraph.", new=False)),
        ],
    )
    result, _ = await run(server, writer_loop(maxRounds=5))

    assert (result.error_code, result.rounds, len(server.requests)) == ("stalled", 2, 4)


async def test_a_round_with_a_new_blocking_issue_goes_on(server: LLMServer) -> None:
    server.responder = Script(
        ["Notes v1.", "Notes v2.", "Notes v3."],
        [
            fail(0.4, major("Missing the migration steps.")),
            fail(0.6, major("Missing the migration steps."), major("The date is wrong.")),
            {"pass": True, "score": 0.9, "issues": []},
        ],
    )
    result, _ = await run(server, writer_loop(maxRounds=5))

    assert (result.status, result.rounds, len(server.requests)) == ("succeeded", 3, 6)
    assert result.verification == "passed"


# ── Severities and blockOn ───────────────────────────────────────────────


async def test_minor_only_issues_pass_and_are_reported_not_retried(server: LLMServer) -> None:
    server.responder = Script(
        ["Notes."],
        [
            {
                "pass": False,
                "score": 0.85,
                "issues": [
                    {"issue": "Title could be shorter", "severity": "minor", "location": "line 1"},
                    {"issue": "Use the Oxford comma", "severity": "nit"},
                ],
            }
        ],
    )
    result, sink = await run(server, writer_loop(maxRounds=3))

    assert (result.status, result.rounds, len(server.requests)) == ("succeeded", 1, 2)
    [round_] = sink.of_type("verification_round")
    assert (round_.passed, round_.issues) == (True, [])
    assert round_.minor == ["Title could be shorter (at line 1)", "Use the Oxford comma"]
    assert [(f["severity"], f["blocks"]) for f in round_.findings] == [
        ("minor", False),
        ("minor", False),
    ]
    assert result.verdicts[0].minor == round_.minor


async def test_block_on_blocker_lets_a_major_issue_through_but_not_a_blocker(
    server: LLMServer,
) -> None:
    server.responder = Script(
        ["Notes v1.", "Notes v2."],
        [
            fail(0.85, {"issue": "It says 2.0 where 3.0 shipped", "severity": "blocker"}),
            fail(0.85, major("The intro is long")),
        ],
    )
    result, sink = await run(server, writer_loop(maxRounds=3, blockOn=["blocker"]))

    assert (result.status, result.rounds) == ("succeeded", 2)
    rounds = sink.of_type("verification_round")
    assert rounds[0].issues == ["It says 2.0 where 3.0 shipped"]
    assert rounds[1].minor == ["The intro is long"]  # below blockOn: reported


def test_verdict_issues_read_severity_location_and_newness() -> None:
    text = json.dumps(
        {
            "pass": False,
            "score": 0.7,
            "issues": [
                {"issue": "SQL injection", "severity": "Critical", "location": "db.py:12"},
                {"text": "no docstring", "level": "low", "new": False},
                "untagged",
            ],
        }
    )
    verdict = parse_verdict(text, 0.8, ("blocker", "major"), "judge")
    assert [(i.text, i.severity, i.location, i.new, i.tagged) for i in verdict.findings] == [
        ("SQL injection", "blocker", "db.py:12", None, True),
        ("no docstring", "minor", None, False, True),
        ("untagged", "major", None, None, False),  # the checker failed the work: major
    ]
    assert verdict.issues == ["SQL injection (at db.py:12)", "untagged"]
    assert verdict.minor == ["no docstring"]
    assert normalise("  Missing: the TESTS!! ") == normalise("missing the tests")


def test_block_on_must_include_blocker() -> None:
    with pytest.raises(SpecError, match="blockOn must include 'blocker'"):
        load_loop(
            "name: x\npipeline:\n  - prompt: a\n    label: A\n"
            "verify:\n  maker: A\n  checker: Adversarial Verifier\n  blockOn: [major]\n"
        )


# ── The best round and onFail ────────────────────────────────────────────

SCORES = [
    fail(0.5, major("First problem.")),
    fail(0.7, major("Second problem.")),
    fail(0.6, major("Third problem.")),
]


async def test_accept_best_returns_the_highest_scoring_rounds_outputs(server: LLMServer) -> None:
    server.responder = Script(["Draft 1.", "Draft 2.", "Draft 3."], SCORES)
    store = InMemoryStore()
    result, sink = await run(
        server, writer_loop(maxRounds=3, onFail="accept-best"), store=store, run_id="r1"
    )

    assert (result.status, result.accepted, result.best_round) == ("succeeded", "best", 2)
    assert result.outputs["Writer"] == "Draft 2."
    assert result.verification == "failed"
    assert store.get_memory("notes")["Writer"] == "Draft 2."  # what later runs read
    finished = sink.of_type("run_finished")[0].as_dict()
    assert (finished["accepted"], finished["best_round"]) == ("best", 2)
    assert len(server.requests) == 6


async def test_on_fail_by_default_fails_and_still_returns_the_best_round(
    server: LLMServer,
) -> None:
    server.responder = Script(["Draft 1.", "Draft 2.", "Draft 3."], SCORES)
    result, _ = await run(server, writer_loop(maxRounds=3))

    assert (result.status, result.error_code) == ("verification_failed", "verification_failed")
    assert (result.best_round, result.accepted) == (2, None)
    assert result.outputs["Writer"] == "Draft 2."
    assert result.error == "Third problem."


async def test_escalate_asks_the_approver_with_the_rounds_verdicts_and_accepts_on_approval(
    server: LLMServer,
) -> None:
    server.responder = Script(["Draft 1.", "Draft 2.", "Draft 3."], SCORES)
    approver = StaticApprover(True, by="ana")
    result, sink = await run(server, writer_loop(maxRounds=3, onFail="escalate"), approver)

    assert (result.status, result.accepted, result.best_round) == ("succeeded", "approved", 2)
    assert result.outputs["Writer"] == "Draft 2."
    [request] = approver.requests
    assert request.outputs["Writer"] == "Draft 2."  # what approving accepts
    assert request.question == (
        "Verification did not pass: no round passed in 3 round(s). Accept the best round, "
        "round 2 (score 0.70), as the run's result? Approve to succeed with round 2's "
        "outputs; reject to fail the run.\n"
        "Round 1: FAIL, score 0.50\n- [major] First problem.\n"
        "Round 2: FAIL, score 0.70\n- [major] Second problem.\n"
        "Round 3: FAIL, score 0.60\n- [major] Third problem."
    )
    types = [e.type for e in sink.events]
    assert types.index("approval_requested") > types.index("verification_round")
    assert sink.of_type("approval_resolved")[0].approved is True


async def test_escalate_rejected_fails_the_run_with_the_reason(server: LLMServer) -> None:
    server.responder = Script(
        ["Draft {1}.", "Draft 2."],
        [
            fail(0.5, major("Uses {{ inputs.secret }} literally.")),
            fail(0.5, major("uses {{ inputs.secret }} literally")),
        ],
    )
    approver = StaticApprover(False, by="ana", reason="not good enough")
    result, _ = await run(server, writer_loop(maxRounds=3, onFail="escalate"), approver)

    assert (result.status, result.error_code, result.accepted) == (
        "verification_failed",
        "stalled",
        None,
    )
    assert result.error.endswith("(the best round was not accepted: not good enough)")
    # The question quotes the issues as written: they are not rendered as templates.
    assert "- [major] Uses {{ inputs.secret }} literally." in approver.requests[0].question
    assert "(stalled)" in approver.requests[0].question


class Desk(Approver):
    """Suspends until ``decision`` is set (as the web app's stored approvals do)."""

    suspends = True

    def __init__(self) -> None:
        self.decision: ApprovalDecision | None = None
        self.requests: list[ApprovalRequest] = []

    async def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        self.requests.append(request)
        if self.decision is not None:
            return self.decision
        raise Suspended("waiting for the escalation", key=request.key)


async def test_escalate_suspends_the_run_and_the_decision_resumes_it_without_new_calls(
    server: LLMServer,
) -> None:
    server.responder = Script(
        ["Draft 1.", "Draft 2."],
        [
            fail(0.6, major("Missing the migration steps.")),
            fail(0.5, major("Missing the migration steps!")),
        ],
    )
    desk, store, loop = Desk(), InMemoryStore(), writer_loop(maxRounds=4, onFail="escalate")
    first, sink = await run(server, loop, desk, store, run_id="e1")

    assert first.status == "suspended"
    assert [e.type for e in sink.events][-2:] == ["approval_requested", "run_suspended"]
    record = store.get_run("e1")
    assert record is not None and record.status == "waiting_for_approval"
    calls = len(server.requests)
    assert calls == 4

    desk.decision = ApprovalDecision(approved=True, by="ana")
    second, sink = await run(server, loop, desk, store, run_id="e1", resume=True)

    assert (second.status, second.accepted, second.best_round) == ("succeeded", "approved", 1)
    assert second.outputs["Writer"] == "Draft 1."
    assert len(server.requests) == calls  # the rounds came from their checkpoints
    assert "approval_requested" not in [e.type for e in sink.events]  # asked once
    assert len(desk.requests) == 2


# ── Several checkers ─────────────────────────────────────────────────────


def panel_loop(require: str) -> spec.Loop:
    judges = {
        name: {"role": "verifier", "prompt": f"You are verifier {name}. Judge the notes."}
        for name in ("alpha", "beta", "gamma")
    }
    return loop_from_data(
        {
            "name": "panel",
            "model": MODEL,
            "pipeline": [{"prompt": "Write the release notes.", "label": "Writer"}],
            "subagents": judges,
            "verify": {
                "maker": "Writer",
                "checker": ["alpha", "beta", "gamma"],
                "require": require,
                "maxRounds": 2,
            },
        }
    )


def panel(body: dict[str, Any]) -> Reply:
    system = body["messages"][0]["content"]
    if "verifier gamma" in system:
        return Reply(json.dumps(fail(0.3, major("Too terse."))))
    if "verifier" in system:
        return Reply(json.dumps({"pass": True, "score": 0.9 if "alpha" in system else 0.85}))
    return Reply("Notes.")


async def test_require_majority_passes_when_two_of_three_checkers_pass(server: LLMServer) -> None:
    server.responder = panel
    result, sink = await run(server, panel_loop("majority"))

    assert (result.status, result.rounds, len(server.requests)) == ("succeeded", 1, 4)
    [round_] = sink.of_type("verification_round")
    assert (round_.passed, round_.score) == (True, 0.85)  # the lower median
    assert round_.issues == ["gamma: Too terse."]  # outvoted, still reported


async def test_require_all_fails_when_one_of_three_checkers_fails(server: LLMServer) -> None:
    server.responder = panel
    result, sink = await run(server, panel_loop("all"))

    assert (result.status, result.rounds) == ("verification_failed", 2)
    assert [r.score for r in sink.of_type("verification_round")] == [0.3, 0.3]


# ── From round 2 the checker sees its previous issues and a diff ─────────


async def test_the_round_2_checker_prompt_holds_its_previous_issues_and_a_diff(
    server: LLMServer,
) -> None:
    server.responder = Script(
        [
            "## Notes\n- Added login\n- Fixed crash",
            "## Notes\n- Added login\n- Fixed the crash on save",
        ],
        [
            fail(0.4, major("Say which crash was fixed", location="line 3")),
            {"pass": True, "score": 0.9, "issues": []},
        ],
    )
    result, _ = await run(server, writer_loop(maxRounds=3))

    assert result.status == "succeeded"
    first, second = [checker_text(r.body) for r in server.requests if is_checker(r.body)]
    assert "Changes since" not in first and "Your verdict" not in first
    assert (
        "Changes since round 1 (unified diff):\n"
        "--- Writer, round 1\n+++ Writer, now\n@@ -1,3 +1,3 @@\n"
        " ## Notes\n - Added login\n-- Fixed crash\n+- Fixed the crash on save\n"
    ) in second
    assert (
        "Your verdict in round 1 (score 0.40):\n- [major] Say which crash was fixed (at line 3)\n"
    ) in second


async def test_the_diff_the_checker_sees_is_bounded(server: LLMServer) -> None:
    long_one = "\n".join(f"line {i} of the first draft" for i in range(600))
    long_two = "\n".join(f"line {i} of the second draft" for i in range(600))
    server.responder = Script(
        [long_one, long_two],
        [fail(0.4, major("Rewrite it.")), {"pass": True, "score": 0.9}],
    )
    await run(server, writer_loop(maxRounds=2))

    second = [checker_text(r.body) for r in server.requests if is_checker(r.body)][1]
    diff = second.split("Changes since round 1 (unified diff):\n", 1)[1].split("\n\n", 1)[0]
    assert len(diff) < 4200
    assert diff.endswith("more diff lines)")


# ── The console and the LRS ──────────────────────────────────────────────


async def test_the_console_shows_minor_issues_a_stall_and_an_accepted_best_round(
    server: LLMServer,
) -> None:
    import io

    server.responder = Script(
        ["Draft 1.", "Draft 2."],
        [
            fail(0.6, major("No upgrade notes."), {"issue": "Typo", "severity": "minor"}),
            fail(0.5, major("No upgrade notes")),
        ],
    )
    out = io.StringIO()
    await run_loop(
        writer_loop(maxRounds=3, onFail="accept-best"),
        LiteLLMProvider(api_base=server.url),
        sinks=[ConsoleSink(stream=out)],
    )
    text = out.getvalue()
    assert (
        "  Round 1: [x] FAIL (score: 0.60)\n    - No upgrade notes.\n    ~ Typo (minor)\n" in text
    )
    assert "  [!] Stalled: the checker repeated issues of an earlier round" in text
    assert (
        "[ok] Loop 'notes' completed with the best round, round 1 (onFail: accept-best): "
        "no round passed verification"
    ) in text


SAME_MODEL = """\
name: same
model: openai/gpt-4o
pipeline:
  - prompt: Review
    label: Review
verify:
  maker: [Review]
  checker: {checker}
subagents:
  judge:
    role: verifier
    prompt: You judge reviews.
    model: {judge_model}
"""


@pytest.mark.parametrize(
    ("checker", "judge_model", "flagged"),
    [
        ("judge", "openai/gpt-4o", "checker 'judge' runs on the same model as maker 'Review'"),
        ("Adversarial Verifier", "x/y", "checker 'Adversarial Verifier' runs on the same model"),
        ("judge", "anthropic/claude-sonnet-4", None),
    ],
)
def test_the_lrs_flags_a_checker_on_the_same_model_as_its_makers(
    checker: str, judge_model: str, flagged: str | None
) -> None:
    report = lrs.score(load_loop(SAME_MODEL.format(checker=checker, judge_model=judge_model)))
    messages = [f"{f.mark} {f.message}" for f in report.findings]
    biased = [m for m in messages if m.startswith("[!] self-preference bias")]
    if flagged is None:
        assert biased == []
        assert report.dimensions[0].points == 25
    else:
        assert len(biased) == 1 and flagged in biased[0]
        assert biased[0].endswith("(openai/gpt-4o)")
        assert report.dimensions[0].points == 22

"""The Loop Readiness Score: rubric, grades, findings, one-click fixes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loopkit import lrs, spec
from loopkit.yamlio import load_loop, load_project, loop_from_data, to_data

LOOPS = Path(__file__).resolve().parents[2] / "loops"


def load(name: str) -> spec.Loop:
    return load_loop((LOOPS / f"{name}.yaml").read_text(), check=False)


def messages(report: lrs.Report) -> list[str]:
    return [f"{f.mark} {f.message}" for f in report.findings]


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


MINIMAL = "name: bare\npipeline:\n  - prompt: Do the thing\n"


def test_the_report_follows_the_contract() -> None:
    data = lrs.score(load("pr-review")).as_dict()
    assert set(data) == {"score", "grade", "dimensions", "findings"}
    assert [d["key"] for d in data["dimensions"]] == [
        "verification",
        "budget",
        "termination",
        "persistence",
        "trigger",
        "recovery",
        "observability",
    ]
    assert sum(d["max"] for d in data["dimensions"]) == 100
    assert data["score"] == sum(d["points"] for d in data["dimensions"])
    for finding in data["findings"]:
        assert set(finding) == {"level", "dimension", "message", "hint", "fix", "path"}
        assert finding["level"] in ("ok", "warn", "block")
        assert finding["dimension"] in lrs.DIMENSIONS
        if finding["fix"] is not None:
            assert set(finding["fix"]) == {"label", "patch"}


@pytest.mark.parametrize(
    ("score", "grade"),
    [
        (100, "A"),
        (90, "A"),
        (89, "B"),
        (80, "B"),
        (79, "C"),
        (65, "C"),
        (64, "D"),
        (50, "D"),
        (49, "F"),
        (0, "F"),
    ],
)
def test_grades_follow_the_thresholds(score: int, grade: str) -> None:
    assert lrs.grade_for(score) == grade


def test_pr_review_has_separation_and_three_budget_dimensions() -> None:
    report = lrs.score(load("pr-review"))
    assert "[ok] Maker/Checker separation enforced" in messages(report)
    assert "[ok] Budget controls configured (3 dimensions)" in messages(report)
    assert report.grade in ("A", "B")


def test_the_seeds_own_pr_review_scores_a_c_for_its_unsigned_webhook_and_bare_steps() -> None:
    from tests.engine.test_spec import SEED_PR_REVIEW

    report = lrs.score(load_loop(SEED_PR_REVIEW))
    assert (report.score, report.grade) == (70, "C")
    assert messages(report) == [
        "[ok] Maker/Checker separation enforced",
        "[ok] Budget controls configured (2 dimensions)",
        "[!] Budget has no limit on maxCostUsd",
        "[!] Model calls not capped (only wall time bounds the run)",
        "[ok] Verification rounds capped (maxRounds: 3)",
        "[ok] State persisted (filesystem: .loopkit/state)",
        "[!] Unsigned webhook: anyone who finds the URL can start runs",
        "[!] Runs on every 'pull_request' action (closed, labeled, edited...)",
        "[!] 3 of 3 agent steps without a timeout or retries",
        "[ok] Failed verification retries automatically (autoRetry)",
        "[!] No description",
        "[ok] Every agent step is labelled",
    ]


def test_daily_triage_scores_c_or_lower_without_verification_or_budget() -> None:
    report = lrs.score(load("daily-triage"))
    assert report.score < 80
    assert report.grade in ("C", "D", "F")
    assert "[ok] Max iterations set" in messages(report)
    assert "[!] Add budget controls for production" in messages(report)
    assert "[!] Verification missing" in messages(report)


def test_add_budget_controls_offers_the_documented_patch() -> None:
    finding = next(f for f in lrs.score(load_loop(MINIMAL)).findings if f.dimension == "budget")
    assert finding.fix is not None
    assert finding.fix.as_dict() == {
        "label": "Add budget controls",
        "patch": {"budget": {"maxTokens": 200000, "maxDurationMinutes": 30, "maxCostUsd": 5}},
    }


def test_a_bare_loop_scores_f_and_every_finding_says_how_to_fix_it() -> None:
    report = lrs.score(load_loop(MINIMAL))
    assert report.grade == "F"
    for finding in report.findings:
        if finding.level != "ok":
            assert finding.hint, finding


def test_applying_every_fix_yields_a_valid_loop_that_scores_higher() -> None:
    loop = load_loop("name: bare\npipeline:\n  - prompt: Do the thing\n    label: Work\n")
    data = to_data(loop)
    before = lrs.score(loop)
    for finding in before.findings:
        if finding.fix is not None:
            data = merge_patch(data, finding.fix.patch)
    fixed = loop_from_data(data)
    after = lrs.score(fixed)
    assert after.score > before.score
    assert after.score >= 90, [f.message for f in after.findings if f.level != "ok"]


def test_every_fix_of_every_example_loop_applies_cleanly() -> None:
    for path in sorted(LOOPS.glob("*.yaml")):
        loop = load_loop(path.read_text())
        for finding in lrs.score(loop).findings:
            if finding.fix is not None:
                patched = loop_from_data(merge_patch(to_data(loop), finding.fix.patch))
                assert lrs.score(patched).score >= lrs.score(loop).score, (path, finding)


def test_enforce_maker_checker_makes_missing_verification_blocking() -> None:
    project = load_project("defaults:\n  enforceMakerChecker: true\n")
    report = lrs.score(load_loop(MINIMAL), project)
    assert "[x] Verification missing (the project enforces Maker/Checker)" in messages(report)
    assert report.blocked
    assert report.score <= lrs.BLOCKED_CAP and report.grade == "F"


def test_project_default_budget_and_memory_count_for_the_loop() -> None:
    project = load_project(
        "defaults:\n  budget:\n    maxTokens: 1000\n    maxCostUsd: 1\n    maxDurationMinutes: 5\n"
        "  memory:\n    store: database\n"
    )
    report = lrs.score(load_loop(MINIMAL), project)
    assert "[ok] Budget controls configured (3 dimensions)" in messages(report)
    assert "[ok] State persisted (database: database)" in messages(report)


def test_a_checker_twin_of_a_maker_is_weak_separation() -> None:
    loop = load_loop(
        """\
name: twins
pipeline:
  - prompt: Review
    label: Review
    subagent: reviewer
verify:
  maker: [Review]
  checker: judge
subagents:
  reviewer:
    role: executor
    model: openai/gpt-4o
    prompt: You review code.
  judge:
    role: verifier
    model: openai/gpt-4o
    prompt: You review code.
"""
    )
    report = lrs.score(loop)
    assert (
        "[!] Weak Maker/Checker separation: checker 'judge' has the same model and prompt "
        "as maker 'Review'"
    ) in messages(report)
    assert report.dimensions[0].points == 12


def test_a_checker_on_its_own_model_and_prompt_is_full_separation() -> None:
    report = lrs.score(load("ci-failure-sweeper"))
    assert "[ok] Maker/Checker separation enforced" in messages(report)
    assert report.dimensions[0].points == 25


def test_a_loop_that_triggers_itself_is_blocked() -> None:
    loop = load_loop(
        "name: ouroboros\ntrigger:\n  type: event\n  loop: ouroboros\npipeline:\n  - prompt: a\n"
    )
    report = lrs.score(loop)
    assert "[x] The loop triggers itself on completion: it would never stop" in messages(report)
    assert report.grade == "F"


def test_an_inline_secret_is_blocked() -> None:
    loop = load_loop(
        "name: leaky\npipeline:\n  - prompt: a\nconnectors:\n  api:\n    type: http\n"
        "    baseUrl: https://example.com\n    headers:\n      Authorization: Bearer sk-live-123\n"
    )
    assert "[x] A secret is written inline (connectors.api Authorization)" in messages(
        lrs.score(loop)
    )


def test_write_actions_without_a_gate_get_a_gate_fix_before_the_writing_step() -> None:
    # post-merge-cleanup files its issue in onPass, after verification; filed from the
    # pipeline (before the checker judged it), the write is unattended.
    data = to_data(load("post-merge-cleanup"))
    data["pipeline"][0]["then"].append(data.pop("onPass")[0]["then"][0])
    loop = loop_from_data(data)
    finding = next(f for f in lrs.score(loop).findings if f.message.startswith("Write actions"))
    assert finding.message == "Write actions run unattended (File Issue): no approval gate"
    assert finding.fix is not None
    patched = loop_from_data(merge_patch(to_data(loop), finding.fix.patch))
    gated = patched.pipeline[0]
    assert isinstance(gated, spec.ConditionalStep)
    assert [type(step).__name__ for step in gated.then] == [
        "ParallelStep",
        "AgentStep",
        "ApprovalStep",
        "ToolStep",
    ]
    assert "[ok] A human approves before write actions" in messages(lrs.score(patched))


def test_the_gate_fix_goes_before_a_parallel_group_not_inside_it() -> None:
    loop = load_loop(
        """\
name: writers
description: Two writers side by side.
trigger:
  type: webhook
  event: push
  secretEnv: S
pipeline:
  - prompt: Plan
    label: Plan
  - parallel:
      - prompt: Read
        label: Read
      - prompt: Write
        label: Write
        connectors: [api]
        tools: [create_thing]
connectors:
  api:
    type: http
    baseUrl: https://example.com
    operations:
      create_thing:
        method: POST
        path: /things
"""
    )
    finding = next(f for f in lrs.score(loop).findings if f.message.startswith("Write actions"))
    assert finding.fix is not None
    patched = loop_from_data(merge_patch(to_data(loop), finding.fix.patch))
    assert [type(step).__name__ for step in patched.pipeline] == [
        "AgentStep",
        "ApprovalStep",
        "ParallelStep",
    ]


def test_adding_verification_raises_limits_one_pass_would_no_longer_fit() -> None:
    loop = loop_from_data(
        {
            "name": "tight",
            "pipeline": [{"prompt": "Summarise", "label": "Summary"}],
            "budget": {"maxTokens": 64, "maxModelCalls": 1},
        }
    )
    before = lrs.score(loop)
    (missing,) = [f for f in before.findings if f.message == "Verification missing"]
    assert missing.fix is not None
    assert missing.fix.patch["budget"] == {"maxModelCalls": 2, "maxTokens": 128}

    data = to_data(loop)
    data["verify"] = missing.fix.patch["verify"]
    data["budget"] = {**data["budget"], **missing.fix.patch["budget"]}
    after = lrs.score(loop_from_data(data))
    assert after.score > before.score
    assert [f.message for f in after.findings if f.level == "block"] == []

"""The change list between versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from builder.changes import loop_changes
from loopkit import yamlio

ROOT = Path(__file__).resolve().parents[2]


def data(text: str) -> dict[str, Any]:
    return yamlio.to_data(yamlio.load_loop(text, check=False))  # type: ignore[no-any-return]


def kinds(old: str, new: str) -> list[tuple[str, str, str]]:
    return [(c["kind"], c["path"], c["summary"]) for c in loop_changes(data(old), data(new))]


BASE = """name: review
trigger: {type: cron, schedule: "0 8 * * *"}
pipeline:
  - parallel:
      - {prompt: Find bugs., label: Bugs}
      - {prompt: Find leaks., label: Security}
  - {prompt: Summarise., label: Summary}
  - {prompt: Unlabelled step.}
verify: {maker: [Bugs, Security], checker: Adversarial Verifier, maxRounds: 2}
budget: {maxTokens: 1000}
"""


def test_it_reports_no_change_for_formatting_only() -> None:
    assert kinds(BASE, yamlio.dump(yamlio.load_loop(BASE, check=False))) == []


def test_it_reports_a_labelled_step_that_moved_as_moved() -> None:
    new = BASE.replace("      - {prompt: Find leaks., label: Security}\n", "").replace(
        "  - {prompt: Summarise., label: Summary}\n",
        "  - {prompt: Summarise., label: Summary}\n  - {prompt: Find leaks., label: Security}\n",
    )
    assert (
        "moved",
        "pipeline[2]",
        "moved agent step 'Security' from pipeline[0].parallel[1] to pipeline[2]",
    ) in kinds(BASE, new)


def test_it_reports_added_removed_and_changed_steps() -> None:
    new = BASE.replace("Summarise.", "Summarise briefly.").replace(
        "  - {prompt: Unlabelled step.}\n", "  - {prompt: Publish., label: Publish}\n"
    )
    assert kinds(BASE, new) == [
        ("changed", "pipeline[1]", "changed agent step 'Summary': prompt edited"),
        ("added", "pipeline[2]", "added agent step 'Publish'"),
        ("removed", "pipeline[2]", "removed agent step at pipeline[2]"),
    ]


def test_it_reports_section_changes_field_by_field() -> None:
    new = (
        BASE.replace("maxRounds: 2", "maxRounds: 3")
        .replace('"0 8 * * *"', '"0 9 * * *"')
        .replace("budget: {maxTokens: 1000}", "memory: {store: filesystem}")
    )
    assert kinds(BASE, new) == [
        ("changed", "trigger", "changed trigger.schedule: '0 8 * * *' → '0 9 * * *'"),
        ("changed", "verify", "changed verify.maxRounds: 2 → 3"),
        ("removed", "budget", "removed budget"),
        ("added", "memory", "added memory: store='filesystem'"),
    ]


def test_it_reports_step_field_changes_and_lrs_moves() -> None:
    new = BASE.replace(
        "{prompt: Summarise., label: Summary}", "{prompt: Summarise., label: Summary, retries: 2}"
    )
    changes = loop_changes(
        data(BASE), data(new), {"score": 50, "grade": "D"}, {"score": 81, "grade": "B"}
    )
    assert [c["summary"] for c in changes] == [
        "changed agent step 'Summary': retries: (none) → 2",
        "LRS 50 (D) → 81 (B)",
    ]


def test_inserting_a_step_above_others_moves_none_of_them() -> None:
    new = BASE.replace("pipeline:\n", "pipeline:\n  - {prompt: Fetch the diff., label: Fetch}\n")
    assert kinds(BASE, new) == [("added", "pipeline[0]", "added agent step 'Fetch'")]


def test_swapping_two_steps_moves_one_of_them() -> None:
    new = BASE.replace(
        "      - {prompt: Find bugs., label: Bugs}\n      - {prompt: Find leaks., label: Security}\n",
        "      - {prompt: Find leaks., label: Security}\n      - {prompt: Find bugs., label: Bugs}\n",
    )
    assert [c[0] for c in kinds(BASE, new)] == ["moved"]


def test_an_unlabelled_step_edited_in_place_is_changed_not_replaced() -> None:
    new = BASE.replace("Unlabelled step.", "Unlabelled step again.")
    assert kinds(BASE, new) == [
        ("changed", "pipeline[2]", "changed agent step at pipeline[2]: prompt edited")
    ]


def test_a_step_moved_into_another_group_is_moved() -> None:
    new = BASE.replace("      - {prompt: Find leaks., label: Security}\n", "").replace(
        "  - {prompt: Summarise., label: Summary}\n",
        "  - sequential:\n      - {prompt: Summarise., label: Summary}\n      - {prompt: Find leaks., label: Security}\n",
    )
    summaries = [c[2] for c in kinds(BASE, new)]
    assert (
        "moved agent step 'Security' from pipeline[0].parallel[1] to pipeline[1].sequential[1]"
        in summaries
    )
    assert "moved agent step 'Summary' from pipeline[1] to pipeline[1].sequential[0]" in summaries


@pytest.mark.parametrize("path", sorted((ROOT / "loops").glob("*.yaml")), ids=lambda p: p.name)
def test_the_editor_round_trip_is_byte_identical_for_canonical_yaml(path: Path) -> None:
    from builder.services import validate

    first = validate(path.read_bytes())
    assert first.yaml == yamlio.dump(yamlio.load_loop(path.read_bytes(), check=False))
    canonical_text = first.yaml
    assert validate(canonical_text).yaml == canonical_text  # YAML view → YAML
    assert validate(data=first.data).yaml == canonical_text  # graph/form (JSON) → YAML
    assert validate(data=first.data).data == first.data


def test_it_reports_changes_to_the_actions_after_verification() -> None:
    new = (
        BASE
        + "onPass:\n  - {tool: github.comment, label: Post, arguments: {body: hi}}\n"
        + "onFail:\n  - {prompt: Explain., label: Explain}\n"
    )
    assert kinds(BASE, new) == [
        ("added", "onPass[0]", "added tool step 'Post'"),
        ("added", "onFail[0]", "added agent step 'Explain'"),
    ]
    edited = new.replace("body: hi", "body: hello")
    assert kinds(new, edited) == [
        ("changed", "onPass[0]", "changed tool step 'Post': arguments.body: 'hi' → 'hello'")
    ]

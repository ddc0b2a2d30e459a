"""Renaming a step in the editor's form: every reference follows, undo brings them back."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import screenshot
from tests.e2e.test_editor import (  # noqa: F401  (fixtures)
    EDITOR_READY,
    api,
    editor_user,
    import_example,
    node,
    open_editor,
    signed_in,
    wait_for_yaml,
    yaml_text,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_renaming_a_step_updates_its_references_undo_restores_them_and_the_save_validates(
    signed_in: Any,  # noqa: F811
    live_server: Any,
    api: Any,  # noqa: F811
) -> None:
    page = signed_in
    loop = import_example(api, "docs-drift-check")
    open_editor(page, live_server.url, loop["id"])
    original = yaml_text(page)
    assert original.count("steps['Find Drift']") == 2

    # "Find Drift" is read by the condition and by the patch writer's prompt.
    node(page, "pipeline[0].sequential[1]").click()
    form = page.get_by_test_id("form-panel")
    form.get_by_text("pipeline[0].sequential[1]", exact=True).wait_for()
    form.get_by_label("Label").fill("Drift Report")
    wait_for_yaml(page, "label: Drift Report\n")
    page.wait_for_selector(EDITOR_READY)
    text = yaml_text(page)
    assert "  - when: steps['Drift Report'].output | trim | length > 0\n" in text
    assert "\n\n          {{ steps['Drift Report'].output }}\n        label: Docs Patch\n" in text
    assert "Find Drift" not in text
    assert form.get_by_test_id("rename-hint").inner_text() == (
        "Renaming updates 2 references: pipeline[1].when, pipeline[1].then[0].prompt."
    )
    node(page, "pipeline[0].sequential[1]").get_by_text("Drift Report", exact=True).wait_for()
    screenshot(page, "editor-rename-references")

    # One undo in the YAML view puts the old label back with all its references.
    page.locator(".lke-yaml .cm-content").click()
    page.keyboard.press("Control+z")
    wait_for_yaml(page, "label: Find Drift\n")
    page.wait_for_selector(EDITOR_READY)
    assert yaml_text(page) == original
    node(page, "pipeline[0].sequential[1]").get_by_text("Find Drift", exact=True).wait_for()
    page.keyboard.press("Control+Shift+z")
    wait_for_yaml(page, "label: Drift Report\n")
    page.wait_for_selector(EDITOR_READY)
    assert "Find Drift" not in yaml_text(page)

    # "Docs Patch" is the verify stage's maker and a memory key the first step reads.
    node(page, "pipeline[1].then[0]").click()
    form.get_by_text("pipeline[1].then[0]", exact=True).wait_for()
    form.get_by_label("Label").fill("Bob's Patch")
    wait_for_yaml(page, "label: Bob's Patch\n")
    page.wait_for_selector(EDITOR_READY)
    text = yaml_text(page)
    assert "          {{ memory.get(\"Bob's Patch\", '(none)') }}\n" in text
    assert "verify:\n  maker:\n    - Bob's Patch\n  checker: docs-reviewer\n" in text
    assert "Docs Patch" not in text
    assert node(page, "verify").get_by_text("1 maker", exact=False).count() == 1

    page.get_by_label("Change message").fill("Rename two steps")
    page.get_by_test_id("save").click()
    page.get_by_text("Saved version 2.").wait_for()
    saved = api.get(f"/api/loops/{loop['id']}").json()
    assert saved["version"] == 2 and saved["yaml"] == yaml_text(page)
    check = api.post(
        "/api/loops/validate", {"yaml": saved["yaml"]}, content_type="application/json"
    ).json()
    assert check["ok"] is True and check["errors"] == []


def test_a_rename_to_another_steps_label_is_refused_with_a_message(
    signed_in: Any,  # noqa: F811
    live_server: Any,
    api: Any,  # noqa: F811
) -> None:
    page = signed_in
    loop = import_example(api, "pr-review")
    open_editor(page, live_server.url, loop["id"])
    node(page, "pipeline[1].parallel[0]").click()
    form = page.get_by_test_id("form-panel")
    label = form.get_by_label("Label")
    label.fill("Security Review")
    refused = form.get_by_test_id("rename-refused")
    refused.wait_for()
    message = (
        "Not renamed: another step (pipeline[1].parallel[1]) is labelled 'Security Review'."
        " Labels must be unique."
    )
    assert refused.inner_text() == message
    assert refused.get_attribute("role") == "alert"
    screenshot(page, "editor-rename-refused")

    # Leaving the field keeps the old label and the message.
    page.keyboard.press("Tab")
    assert label.input_value() == "Bug Review"
    assert refused.inner_text() == message
    page.wait_for_selector(EDITOR_READY)
    assert yaml_text(page) == loop["yaml"]
    assert node(page, "pipeline[1].parallel[0]").get_by_text("Bug Review", exact=True).is_visible()

    # Typing key by key goes through another step's label ("Bug Review") on
    # the way to a free one: only the last label counts, nothing is merged.
    node(page, "pipeline[1].parallel[1]").click()
    form.get_by_text("pipeline[1].parallel[1]", exact=True).wait_for()
    label.click()
    page.keyboard.press("Control+a")
    page.keyboard.type("Bug Review 2", delay=40)
    wait_for_yaml(page, "label: Bug Review 2\n")
    page.wait_for_selector(EDITOR_READY)
    assert refused.count() == 0
    assert form.get_by_test_id("rename-hint").inner_text() == (
        "Renaming updates 2 references: onPass[0].arguments.body, verify.maker[1]."
    )
    text = yaml_text(page)
    assert "label: Bug Review\n" in text and "Security Review" not in text
    assert "  maker:\n    - Bug Review\n    - Bug Review 2\n    - Quality Review\n" in text

    # Escape, still in the field, puts the old label and its maker back.
    page.keyboard.press("Escape")
    wait_for_yaml(page, "label: Security Review\n")
    page.wait_for_selector(EDITOR_READY)
    assert yaml_text(page) == loop["yaml"]
    assert label.input_value() == "Security Review"

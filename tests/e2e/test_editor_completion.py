"""Completion in the editor, in a browser: `{{` in a prompt field and in the YAML view, keys,
enum values and hover docs from the loop's JSON Schema."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.e2e.conftest import screenshot
from tests.e2e.test_editor import (  # noqa: F401  (fixtures)
    EDITOR_READY,
    api,
    editor_user,
    go_to_line,
    import_example,
    node,
    open_editor,
    signed_in,
    wait_for_yaml,
    yaml_text,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def options(page: Any, selector: str) -> list[str]:
    page.wait_for_selector(selector)
    found: list[str] = page.eval_on_selector_all(selector, "els => els.map(e => e.textContent)")
    return found


def test_typing_braces_in_a_prompt_offers_earlier_steps_and_the_webhook_payload(
    signed_in: Any,  # noqa: F811
    live_server: Any,
    api: Any,  # noqa: F811
) -> None:
    page = signed_in
    loop = import_example(api, "pr-review")
    open_editor(page, live_server.url, loop["id"])
    node(page, "pipeline[1].parallel[1]").click()
    prompt = page.get_by_test_id("form-panel").locator(
        '[data-path="pipeline[1].parallel[1].prompt"] textarea'
    )
    prompt.click()
    page.keyboard.press("Control+End")
    page.keyboard.type("Compare with {{")

    listed = options(page, '[data-testid="template-completions"] [role="option"] code')
    # The step before the parallel group, never a member of the same group or the step itself.
    assert "steps['Diff'].output" in listed
    assert not any(label.startswith("steps[") and "Review'" in label for label in listed)
    assert "feedback" in listed and "round" in listed  # a maker step of a loop that verifies
    assert prompt.get_attribute("aria-expanded") == "true"
    screenshot(page, "editor-completion-prompt-list")

    # Keyboard: narrow the list, move down and back, insert with Enter.
    page.keyboard.type(" steps")
    assert options(page, '[data-testid="template-completions"] [role="option"] code')[0] == (
        "steps['Diff'].output"
    )
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Enter")
    assert prompt.input_value().endswith("Compare with {{ steps['Diff'].output }}")
    assert prompt.get_attribute("aria-expanded") == "false"

    wait_for_yaml(page, "Compare with {{ steps['Diff'].output }}")
    page.wait_for_selector(EDITOR_READY)
    spec = yaml.safe_load(yaml_text(page))
    assert (
        spec["pipeline"][1]["parallel"][1]["prompt"]
        .rstrip("\n")
        .endswith("Compare with {{ steps['Diff'].output }}")
    )

    # Mouse: the pull_request webhook's payload, one level at a time.
    page.keyboard.type(" for PR {{ trigger.payload.pull_request.ti")
    item = page.locator(
        '[data-testid="template-completions"] [role="option"]',
        has_text="trigger.payload.pull_request.title",
    )
    item.click()
    assert prompt.input_value().endswith("for PR {{ trigger.payload.pull_request.title }}")
    wait_for_yaml(page, "for PR {{ trigger.payload.pull_request.title }}")
    page.wait_for_selector(EDITOR_READY)
    screenshot(page, "editor-completion-prompt-inserted")


def test_the_yaml_view_completes_keys_and_enum_values_from_the_schema_with_hover_docs(
    signed_in: Any,  # noqa: F811
    live_server: Any,
    api: Any,  # noqa: F811
) -> None:
    page = signed_in
    loop = import_example(api, "pr-review")
    open_editor(page, live_server.url, loop["id"])

    # A key of `verify:` from the schema.
    go_to_line(page, "  maxRounds: 3")
    page.keyboard.press("Enter")
    page.keyboard.type("stallOnRe")
    listed = options(page, ".lke-yaml .cm-tooltip-autocomplete li .cm-completionLabel")
    assert "stallOnRepeat" in listed
    page.locator(".lke-yaml .cm-tooltip-autocomplete").scroll_into_view_if_needed()
    screenshot(page, "editor-completion-yaml-key")
    page.keyboard.press("Enter")
    wait_for_yaml(page, "  stallOnRepeat")
    text = yaml_text(page)
    line = next(li for li in text.splitlines() if "stallOnRepeat" in li)
    assert line.strip().startswith("stallOnRepeat")
    if not line.endswith(": "):  # the completion inserts the key with or without ": "
        page.keyboard.type(": " if not line.endswith(":") else " ")
    page.keyboard.type("false")
    page.wait_for_selector(EDITOR_READY)
    assert yaml.safe_load(yaml_text(page))["verify"]["stallOnRepeat"] is False

    # An enum value: verify.onFail is one of fail, accept-best, escalate.
    page.keyboard.press("Escape")  # close the list of values offered for `false`
    page.keyboard.press("End")
    page.keyboard.press("Enter")
    page.keyboard.type("onFail: a")
    page.keyboard.press("Control+Space")  # values complete when asked (a query is slow)
    listed = options(page, ".lke-yaml .cm-tooltip-autocomplete li .cm-completionLabel")
    assert "accept-best" in {label.strip("\"'") for label in listed}
    screenshot(page, "editor-completion-yaml-enum")
    page.keyboard.press("Enter")
    page.wait_for_selector(EDITOR_READY)
    assert yaml.safe_load(yaml_text(page))["verify"]["onFail"] == "accept-best"

    # Hover on a key shows its description from the schema.
    page.keyboard.press("Escape")
    page.locator(".lke-yaml .cm-line", has_text="maker:").first.locator(
        "span", has_text="maker"
    ).first.hover()
    hover = page.locator(".cm-tooltip-hover")
    hover.wait_for()
    assert "Labels of the steps whose output is checked" in hover.inner_text()
    screenshot(page, "editor-completion-yaml-hover")


def test_the_yaml_view_completes_a_step_reference_in_a_template(
    signed_in: Any,  # noqa: F811
    live_server: Any,
    api: Any,  # noqa: F811
) -> None:
    page = signed_in
    loop = import_example(api, "pr-review")
    open_editor(page, live_server.url, loop["id"])
    go_to_line(page, "Only report problems you can point at in the diff.")
    page.keyboard.type(" Title: {{ ")
    listed = options(page, ".lke-yaml .cm-tooltip-autocomplete li .cm-completionLabel")
    assert "steps['Diff'].output" in listed
    assert "steps['Bug Review'].output" not in listed  # a member of the same parallel group
    page.locator(".lke-yaml .cm-tooltip-autocomplete").scroll_into_view_if_needed()
    screenshot(page, "editor-completion-yaml-template-list")
    page.keyboard.type("steps['Di")
    page.wait_for_selector(
        ".lke-yaml .cm-tooltip-autocomplete li[aria-selected] >> text=steps['Diff'].output"
    )
    page.keyboard.press("Enter")
    page.keyboard.type(" }}")
    wait_for_yaml(page, "Title: {{ steps['Diff'].output }}")
    page.wait_for_selector(EDITOR_READY)
    screenshot(page, "editor-completion-yaml-template")

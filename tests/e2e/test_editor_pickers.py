"""The editor's pickers (the team's connectors, subagents, skills) and the plan step, in a browser."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

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


def test_picking_a_connector_another_loop_defines_copies_it_into_the_yaml(
    signed_in: Any,  # noqa: F811
    live_server: Any,
    api: Any,  # noqa: F811
) -> None:
    page = signed_in
    import_example(api, "incident-summary")  # defines the `incidents` SQL connector
    import_example(api, "checkout-investigation")  # defines the `judge` verifier
    loop = import_example(api, "pr-review")  # defines only `github`
    open_editor(page, live_server.url, loop["id"])
    assert "incidents:" not in yaml_text(page)

    node(page, "pipeline[1].parallel[0]").click()
    picker = page.get_by_test_id("form-panel").get_by_test_id("pick-connectors")
    option = picker.locator('label[data-name="incidents"]')
    assert "copied from incident-summary" in option.inner_text()
    assert "copies its definition into this loop" in picker.inner_text()
    option.locator("input[type=checkbox]").check()

    wait_for_yaml(page, "\n  incidents:\n    type: sql\n")
    page.wait_for_selector(EDITOR_READY)
    text = yaml_text(page)
    assert yaml.safe_load(text)["pipeline"][1]["parallel"][0]["connectors"] == ["incidents"]
    assert "    url: ${INCIDENTS_DATABASE_URL}\n    rowLimit: 500\n" in text
    # Now the loop's own: offered first, marked as this loop's.
    assert picker.locator('label[data-name="incidents"]').inner_text().endswith("this loop")
    screenshot(page, "editor-connector-picked")

    # A checker picked from the team's subagents is copied in too.
    node(page, "verify").click()
    checker = page.get_by_test_id("form-panel").locator('[data-path="verify.checker"] input')
    checker.fill("judge")
    wait_for_yaml(page, "subagents:\n  judge:\n    role: verifier\n")
    page.wait_for_selector(EDITOR_READY)
    assert yaml.safe_load(yaml_text(page))["verify"]["checker"] == "judge"


def test_the_plan_step_is_drawn_with_its_planner_and_templates_and_edited_in_the_form(
    signed_in: Any,  # noqa: F811
    live_server: Any,
    api: Any,  # noqa: F811
) -> None:
    page = signed_in
    loop = import_example(api, "checkout-investigation")
    open_editor(page, live_server.url, loop["id"])

    plan = node(page, "pipeline[0]")
    assert plan.get_attribute("data-kind") == "plan"
    assert plan.locator(".lke-plan-planner").text_content() == "planner: @lead"
    assert (
        plan.locator(".lke-plan-templates").text_content() == "templates: search_logs, read_ticket"
    )
    assert page.get_by_text("Unknown step").count() == 0

    plan.click()
    form = page.get_by_test_id("form-panel")
    form.get_by_text("Plan · Investigate").wait_for()
    max_steps = form.locator('[data-path="pipeline[0].maxSteps"] input')
    max_steps.fill("4")
    wait_for_yaml(page, "    maxSteps: 4\n")
    templates = form.get_by_test_id("plan-templates")
    templates.get_by_label("New template name").fill("read_runbook")
    templates.get_by_role("button", name="Add template").click()
    wait_for_yaml(page, "      read_runbook:\n")
    plan.locator(".lke-plan-templates").get_by_text("read_runbook").wait_for(state="attached")
    page.wait_for_selector(EDITOR_READY)
    screenshot(page, "editor-plan-step")

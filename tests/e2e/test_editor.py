"""The loop editor in a real browser: graph, form and YAML in sync, live LRS, save, versions."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

EDITOR_READY = '[data-testid="editor"][data-status="valid"]'


# ── Helpers ──────────────────────────────────────────────────────────────


@pytest.fixture
def editor_user(make_team: Any) -> Any:
    """A user with the editor role in a team of their own."""
    _team, users = make_team("E2E Team", roles=["editor"])
    return users["editor"]


@pytest.fixture
def api(client_for: Any, editor_user: Any) -> Any:
    """The builder API as the editor user (Django's test client, same database)."""
    return client_for(editor_user)


def import_example(api: Any, name: str) -> dict[str, Any]:
    """Import loops/<name>.yaml through the builder's import API; return the loop."""
    text = (ROOT / "loops" / f"{name}.yaml").read_text()
    response = api.post(
        "/api/loops/import",
        {"files": [{"name": f"{name}.yaml", "content": text}]},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert name in response.json()["created"]
    loops = {item["name"]: item for item in api.get("/api/loops").json()}
    loop: dict[str, Any] = api.get(f"/api/loops/{loops[name]['id']}").json()
    return loop


def log_in(page: Any, base_url: str, user: Any, password: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", user.get_username())
    page.fill("#id_password", password)
    page.click("form [type=submit]")
    page.wait_for_url(re.compile(r"^(?!.*/accounts/login/).*$"))


def open_editor(page: Any, base_url: str, loop_id: int) -> None:
    page.goto(f"{base_url}/loops/{loop_id}/edit/")
    page.wait_for_selector(EDITOR_READY)


def yaml_text(page: Any) -> str:
    """The YAML view's whole text (CodeMirror only draws the visible lines)."""
    text: str = page.evaluate(
        "() => document.querySelector('.lke-yaml').loopkitView.state.doc.toString()"
    )
    return text


def wait_for_yaml(page: Any, fragment: str, present: bool = True) -> None:
    page.wait_for_function(
        "([fragment, present]) => document.querySelector('.lke-yaml').loopkitView.state.doc.toString().includes(fragment) === present",
        arg=[fragment, present],
    )


def go_to_line(page: Any, text: str) -> None:
    """Put the YAML cursor at the end of the first line containing ``text``."""
    page.evaluate(
        """(text) => {
            const view = document.querySelector('.lke-yaml').loopkitView;
            const doc = view.state.doc;
            for (let n = 1; n <= doc.lines; n++) {
                const line = doc.line(n);
                if (line.text.includes(text)) {
                    view.dispatch({selection: {anchor: line.to}, scrollIntoView: true});
                    view.focus();
                    return;
                }
            }
            throw new Error('no line contains ' + text);
        }""",
        text,
    )


def node(page: Any, key: str) -> Any:
    return page.locator(f'[data-testid="node-{key}"]')


# ── Tests ────────────────────────────────────────────────────────────────


@pytest.fixture
def signed_in(page: Any, live_server: Any, editor_user: Any, password: str) -> Any:
    log_in(page, live_server.url, editor_user, password)
    return page


def test_it_adds_a_parallel_agent_in_the_graph_and_the_yaml_and_lrs_follow(
    signed_in: Any, live_server: Any, api: Any
) -> None:
    page = signed_in
    loop = import_example(api, "pr-review")
    open_editor(page, live_server.url, loop["id"])
    assert yaml_text(page) == loop["yaml"]
    for index in range(4):
        assert node(page, f"pipeline[1].parallel[{index}]").is_visible()
    page.get_by_text("4 of 4 agent steps without a timeout or retries").wait_for()
    screenshot(page, "editor-pr-review-opened")

    node(page, "pipeline[1]").get_by_role(
        "button", name="Add a parallel branch", exact=True
    ).click()
    page.get_by_role("menuitem", name="Agent").click()

    node(page, "pipeline[1].parallel[4]").wait_for()
    wait_for_yaml(page, "label: Agent\n")
    # The new step is selected: the inspector shows it.
    page.get_by_test_id("form-panel").get_by_text("pipeline[1].parallel[4]", exact=True).wait_for()
    text = yaml_text(page)
    assert "      - prompt: Describe the task\n        label: Agent\n" in text
    assert text.index("label: Performance Review") < text.index("label: Agent")
    page.get_by_text("5 of 5 agent steps without a timeout or retries").wait_for()
    page.wait_for_selector(EDITOR_READY)
    assert page.get_by_test_id("status").inner_text() == "Unsaved changes"
    screenshot(page, "editor-parallel-agent-added")


def test_it_follows_a_budget_typed_into_the_yaml(
    signed_in: Any, live_server: Any, api: Any
) -> None:
    page = signed_in
    loop = import_example(api, "daily-triage")
    open_editor(page, live_server.url, loop["id"])
    score_before = page.get_by_test_id("lrs-score").inner_text()
    # Node details are in the DOM at every zoom (a fitted graph may show titles only).
    assert (node(page, "budget").text_content() or "").endswith("1 iteration · 20 calls")
    page.get_by_text("Add budget controls for production").wait_for()

    go_to_line(page, "maxModelCalls: 20")
    page.keyboard.press("Enter")
    page.keyboard.type("maxTokens: 100000")

    node(page, "budget").get_by_text("100,000 tokens · 1 iteration · 20 calls").wait_for(
        state="attached"
    )
    page.get_by_text("Add budget controls for production").wait_for(state="detached")
    assert page.get_by_test_id("lrs-score").inner_text() != score_before
    # The user's text stays as typed (canonical YAML would put maxTokens first).
    typed = "budget:\n  maxIterations: 1\n  maxModelCalls: 20\n  maxTokens: 100000\n"
    assert typed in yaml_text(page)
    node(page, "budget").click()
    assert page.get_by_label("Max tokens").input_value() == "100000"
    screenshot(page, "editor-budget-typed")


def test_it_marks_a_yaml_error_at_its_line_and_column(
    signed_in: Any, live_server: Any, api: Any
) -> None:
    from builder import services

    page = signed_in
    loop = import_example(api, "pr-review")
    open_editor(page, live_server.url, loop["id"])
    go_to_line(page, "maxRounds: 3")
    page.keyboard.press("Backspace")
    page.keyboard.type("many")

    page.wait_for_selector('[data-testid="editor"][data-status="invalid"]')
    expected = services.validate(yaml_text(page)).errors
    assert len(expected) == 1 and expected[0]["path"] == "verify.maxRounds"
    where = f"{expected[0]['line']}:{expected[0]['column']}"
    errors = page.get_by_test_id("errors")
    assert where in errors.inner_text()
    assert "verify.maxRounds" in errors.inner_text()
    marked = page.locator(".cm-lintRange-error")
    assert marked.count() == 1
    assert marked.inner_text() == "many"
    assert page.locator(".cm-lint-marker-error").count() == 1
    assert page.get_by_test_id("status").inner_text() == "1 problem"
    assert page.get_by_text(
        "The YAML has errors: the graph shows the last valid loop."
    ).is_visible()
    assert page.get_by_test_id("save").is_disabled()
    screenshot(page, "editor-error-marked")

    for _ in range(4):
        page.keyboard.press("Backspace")
    page.keyboard.type("2")
    page.wait_for_selector(EDITOR_READY)
    assert page.locator(".cm-lintRange-error").count() == 0
    node(page, "verify").get_by_text("up to 2 rounds", exact=False).wait_for(state="attached")


def test_it_saves_reloads_and_restores_an_older_version(
    signed_in: Any, live_server: Any, api: Any
) -> None:
    page = signed_in
    loop = import_example(api, "pr-review")
    open_editor(page, live_server.url, loop["id"])
    node(page, "pipeline[1]").get_by_role(
        "button", name="Add a parallel branch", exact=True
    ).click()
    page.get_by_role("menuitem", name="Agent").click()
    wait_for_yaml(page, "label: Agent\n")
    page.wait_for_selector(EDITOR_READY)
    page.get_by_label("Change message").fill("Add a fifth reviewer")
    page.get_by_test_id("save").click()
    page.get_by_test_id("version").get_by_text("v2").wait_for()
    assert page.get_by_test_id("status").inner_text() == "Saved"
    saved = api.get(f"/api/loops/{loop['id']}").json()
    assert saved["version"] == 2 and "label: Agent\n" in saved["yaml"]

    page.reload()
    page.wait_for_selector(EDITOR_READY)
    assert yaml_text(page) == saved["yaml"]
    assert page.get_by_test_id("version").inner_text() == "v2"
    node(page, "pipeline[1].parallel[4]").wait_for()

    page.get_by_role("tab", name="History").click()
    page.get_by_text("Add a fifth reviewer").wait_for()
    page.locator('[data-version="2"]').get_by_role("button", name="Show changes").click()
    page.wait_for_selector('[data-testid="node-pipeline[1].parallel[4]"].lke-highlight')
    assert page.locator(".lke-highlight").count() == 1
    page.get_by_test_id("restore-1").click()
    page.get_by_test_id("version").get_by_text("v3").wait_for()
    node(page, "pipeline[1].parallel[4]").wait_for(state="detached")
    assert yaml_text(page) == loop["yaml"]
    restored = api.get(f"/api/loops/{loop['id']}/versions/3").json()
    assert restored["yaml"] == loop["yaml"] and restored["restored_from"] == 1
    screenshot(page, "editor-version-restored")


def test_it_shows_the_other_change_when_a_save_is_stale(
    signed_in: Any, live_server: Any, api: Any
) -> None:
    page = signed_in
    loop = import_example(api, "pr-review")
    open_editor(page, live_server.url, loop["id"])
    theirs = loop["yaml"].replace("maxRounds: 3", "maxRounds: 2")
    response = api.put(
        f"/api/loops/{loop['id']}",
        {"yaml": theirs, "base_version": 1, "message": "Fewer rounds"},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content

    node(page, "pipeline[1]").get_by_role(
        "button", name="Add a parallel branch", exact=True
    ).click()
    page.get_by_role("menuitem", name="Agent").click()
    page.wait_for_selector(EDITOR_READY)
    wait_for_yaml(page, "label: Agent\n")
    page.get_by_test_id("save").click()

    conflict = page.get_by_test_id("conflict")
    conflict.wait_for()
    assert "Version 2 by e2e-team-editor" in conflict.inner_text()
    assert "Fewer rounds" in conflict.inner_text()
    screenshot(page, "editor-stale-save")
    conflict.get_by_role("button", name="Overwrite with mine").click()
    page.get_by_test_id("version").get_by_text("v3").wait_for()
    mine = api.get(f"/api/loops/{loop['id']}").json()
    assert "label: Agent\n" in mine["yaml"] and "maxRounds: 3" in mine["yaml"]


def test_it_reloads_the_other_change_when_asked(signed_in: Any, live_server: Any, api: Any) -> None:
    page = signed_in
    loop = import_example(api, "pr-review")
    open_editor(page, live_server.url, loop["id"])
    theirs = loop["yaml"].replace("maxRounds: 3", "maxRounds: 2")
    api.put(
        f"/api/loops/{loop['id']}",
        {"yaml": theirs, "base_version": 1, "message": "Fewer rounds"},
        content_type="application/json",
    )
    go_to_line(page, "maxCostUsd: 5")
    page.keyboard.press("Backspace")
    page.keyboard.type("7")
    page.wait_for_selector(EDITOR_READY)
    page.get_by_test_id("save").click()
    page.get_by_test_id("conflict").get_by_role(
        "button", name="Load their version (discard mine)"
    ).click()
    page.get_by_test_id("conflict").wait_for(state="detached")
    assert page.get_by_test_id("version").inner_text() == "v2"
    assert yaml_text(page) == theirs
    node(page, "verify").get_by_text("up to 2 rounds", exact=False).wait_for(state="attached")


def test_a_one_click_fix_adds_budget_controls(signed_in: Any, live_server: Any, api: Any) -> None:
    page = signed_in
    loop = import_example(api, "daily-triage")
    open_editor(page, live_server.url, loop["id"])
    score_before = int(page.get_by_test_id("lrs-score").inner_text())
    page.get_by_role("button", name="Add budget controls").click()
    page.get_by_text("Add budget controls for production").wait_for(state="detached")
    page.wait_for_selector(EDITOR_READY)
    assert int(page.get_by_test_id("lrs-score").inner_text()) > score_before
    text = yaml_text(page)
    budget = text[text.index("budget:") :]
    assert "maxTokens:" in budget and "maxModelCalls: 20" in budget


def test_it_reorders_parallel_branches_by_drag(signed_in: Any, live_server: Any, api: Any) -> None:
    page = signed_in
    loop = import_example(api, "pr-review")
    open_editor(page, live_server.url, loop["id"])
    bug = node(page, "pipeline[1].parallel[0]")
    quality = node(page, "pipeline[1].parallel[2]")
    box = quality.bounding_box()
    bug.hover()
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2, steps=12)
    page.mouse.up()
    page.wait_for_selector(EDITOR_READY)
    wait_for_yaml(page, "label: Bug Review", present=True)
    page.wait_for_function(
        "() => { const t = document.querySelector('.lke-yaml').loopkitView.state.doc.toString();"
        " return t.indexOf('label: Quality Review') < t.indexOf('label: Bug Review'); }"
    )
    labels = re.findall(r"label: (\w+ Review)", yaml_text(page))
    assert labels == [
        "Security Review",
        "Quality Review",
        "Bug Review",
        "Performance Review",
        "Post Review",  # onPass
    ]


def test_a_new_loop_is_created_from_the_editor(signed_in: Any, live_server: Any, api: Any) -> None:
    page = signed_in
    page.goto(f"{live_server.url}/loops/new/")
    page.wait_for_selector(EDITOR_READY)
    page.get_by_label("Name", exact=True).fill("fresh-loop")
    wait_for_yaml(page, "name: fresh-loop\n")
    page.wait_for_selector(EDITOR_READY)
    page.get_by_test_id("save").click()
    page.get_by_test_id("version").get_by_text("v1").wait_for()
    page.wait_for_url(re.compile(r"/loops/\d+/edit/$"))
    loop_id = int(page.url.rstrip("/").split("/")[-2])
    assert api.get(f"/api/loops/{loop_id}").json()["name"] == "fresh-loop"


def test_the_run_graph_shows_step_states_and_highlights(
    page: Any, live_server: Any, api: Any
) -> None:
    loop = import_example(api, "pr-review")
    static = f"{live_server.url}/static/editor"
    page.set_content(
        # No <link> to graph.css: graph.js brings its styles itself.
        '<div id="graph" style="width: 1000px; height: 700px"></div>'
        f'<script src="{static}/graph.js"></script>'
    )
    page.wait_for_function("() => window.LoopKitGraph !== undefined")
    page.evaluate(
        """(spec) => {
            window.graph = window.LoopKitGraph.mount(document.getElementById('graph'), {spec});
            window.graph.setNodeState('Bug Review', 'running', {tokens: 1200, cost: 0.0123, durationMs: 1500});
            window.graph.setNodeState('pipeline[1].parallel[1]', 'done', {tokens: 800});
            window.graph.setNodeState('Quality Review', 'failed');
            window.graph.highlight(['verify.maxRounds']);
        }""",
        loop["spec"],
    )
    bug = node(page, "pipeline[1].parallel[0]")
    bug.get_by_text("1,200 tok · $0.0123 · 1.5 s").wait_for()
    assert page.locator("style#lke-graph-styles").count() == 1
    page.wait_for_function(
        "() => getComputedStyle(document.querySelector('.react-flow__node')).position === 'absolute'"
    )
    assert "lke-state-running" in (bug.get_attribute("class") or "")
    assert "lke-state-done" in (node(page, "pipeline[1].parallel[1]").get_attribute("class") or "")
    assert "lke-state-failed" in (
        node(page, "pipeline[1].parallel[2]").get_attribute("class") or ""
    )
    assert "lke-highlight" in (node(page, "verify").get_attribute("class") or "")
    assert page.locator(".lke-add-button").count() == 0  # read-only: no edit buttons
    with pytest.raises(Exception, match="state must be one of"):
        page.evaluate("() => window.graph.setNodeState('Bug Review', 'exploded')")
    screenshot(page, "run-graph-states")


def test_the_form_edits_a_step_and_shows_field_errors(
    signed_in: Any, live_server: Any, api: Any
) -> None:
    page = signed_in
    loop = import_example(api, "pr-review")
    open_editor(page, live_server.url, loop["id"])
    node(page, "pipeline[1].parallel[0]").click()
    form = page.get_by_test_id("form-panel")
    form.get_by_text("pipeline[1].parallel[0]", exact=True).wait_for()

    form.get_by_label("Label").fill("Bugs")
    wait_for_yaml(page, "label: Bugs\n")
    page.wait_for_selector(EDITOR_READY)
    verify = yaml_text(page).split("verify:")[1]
    assert "- Bugs\n" in verify and "Bug Review" not in verify
    node(page, "pipeline[1].parallel[0]").get_by_text("Bugs", exact=True).wait_for()

    form.get_by_label("Prompt").fill("")
    page.wait_for_selector('[data-testid="editor"][data-status="invalid"]')
    field = form.locator('[data-path="pipeline[1].parallel[0].prompt"]')
    field.get_by_role("alert").wait_for()
    assert "at least 1 character" in field.get_by_role("alert").inner_text()
    assert "lke-invalid" in (node(page, "pipeline[1].parallel[0]").get_attribute("class") or "")
    screenshot(page, "editor-form-field-error")

    form.get_by_label("Prompt").fill("Find the bugs.")
    page.wait_for_selector(EDITOR_READY)
    wait_for_yaml(page, "- prompt: Find the bugs.\n")
    assert field.get_by_role("alert").count() == 0


def test_a_viewer_reads_the_loop_without_edit_controls(
    page: Any, live_server: Any, make_team: Any, client_for: Any, password: str
) -> None:
    from loopkit_web.teams.models import Membership

    team, users = make_team("Readers", roles=["editor"])
    viewer = users["editor"]
    loop = import_example(client_for(viewer), "pr-review")
    Membership.objects.filter(team=team, user=viewer).update(role="viewer")
    log_in(page, live_server.url, viewer, password)
    open_editor(page, live_server.url, loop["id"])
    assert page.get_by_test_id("save").count() == 0
    assert page.locator(".lke-add-button").count() == 0
    node(page, "pipeline[1].parallel[0]").click()
    assert page.get_by_test_id("form-panel").get_by_label("Prompt").is_disabled()
    go_to_line(page, "maxRounds: 3")
    page.keyboard.type("3")
    assert yaml_text(page) == loop["yaml"]


def test_a_condition_inserted_between_steps_gets_an_else_branch(
    signed_in: Any, live_server: Any, api: Any
) -> None:
    page = signed_in
    loop = import_example(api, "daily-triage")
    open_editor(page, live_server.url, loop["id"])
    add = page.locator('[data-edge="pipeline[0]->pipeline[1]"]').get_by_role("button")
    add.click()
    page.keyboard.press("Escape")  # the menu closes without adding anything
    page.get_by_role("menu").wait_for(state="detached")
    add.click()
    page.get_by_role("menuitem", name="Condition").click()

    node(page, "pipeline[1]").wait_for()
    node(page, "pipeline[1].then[0]").wait_for()
    assert node(page, "pipeline[2]").get_by_text("Triage", exact=True).is_visible()
    form = page.get_by_test_id("form-panel")
    form.get_by_label("When (Jinja2 expression)").fill("inputs.repository")
    wait_for_yaml(page, "- when: inputs.repository\n")
    form.get_by_role("button", name="Add an else branch").click()
    node(page, "pipeline[1].else[0]").wait_for()
    page.wait_for_selector(EDITOR_READY)
    text = yaml_text(page)
    condition = text[text.index("- when: inputs.repository") : text.index("label: Triage")]
    assert "then:" in condition and "else:" in condition
    then_x = node(page, "pipeline[1].then[0]").bounding_box()["x"]
    assert then_x < node(page, "pipeline[1].else[0]").bounding_box()["x"]
    screenshot(page, "editor-condition-added")


def test_the_delete_key_removes_the_selected_step_and_its_maker(
    signed_in: Any, live_server: Any, api: Any
) -> None:
    page = signed_in
    loop = import_example(api, "pr-review")
    open_editor(page, live_server.url, loop["id"])
    node(page, "pipeline[1].parallel[3]").click()
    page.keyboard.press("Delete")
    node(page, "pipeline[1].parallel[3]").wait_for(state="detached")
    wait_for_yaml(page, "label: Performance Review", present=False)
    assert node(page, "verify").get_by_text("3 makers", exact=False).count() == 1
    # The review posted after the pass (onPass) still reads it: the editor says where.
    page.wait_for_selector('[data-testid="editor"][data-status="invalid"]')
    page.wait_for_selector('[data-testid="node-onPass[0]"].lke-invalid')
    # Undo in the YAML view brings the step back, in every view.
    page.locator(".lke-yaml .cm-content").click()
    page.keyboard.press("Control+z")
    wait_for_yaml(page, "label: Performance Review\n")
    node(page, "pipeline[1].parallel[3]").wait_for()
    page.wait_for_selector(EDITOR_READY)
    assert node(page, "verify").get_by_text("4 makers", exact=False).count() == 1


def test_a_name_clash_is_refused_with_a_message(signed_in: Any, live_server: Any, api: Any) -> None:
    page = signed_in
    import_example(api, "pr-review")
    page.goto(f"{live_server.url}/loops/new/")
    page.wait_for_selector(EDITOR_READY)
    page.get_by_label("Name", exact=True).fill("pr-review")
    wait_for_yaml(page, "name: pr-review\n")
    page.wait_for_selector(EDITOR_READY)
    page.get_by_test_id("save").click()
    alert = page.get_by_role("alert").filter(has_text="Not saved")
    alert.wait_for()
    assert "a loop named 'pr-review' already exists in this team" in alert.inner_text()
    assert page.get_by_test_id("conflict").count() == 0
    assert page.url.endswith("/loops/new/")

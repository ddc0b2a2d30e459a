"""The editor's canvas: build a loop from the palette, copy and paste, one undo across views, keyboard."""

from __future__ import annotations

from typing import Any

import pytest

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


def edge(page: Any, edge_id: str) -> Any:
    """An edge's label box (it sits at the edge's middle)."""
    return page.locator(f'[data-edge="{edge_id}"]')


def flow_node(page: Any, key: str) -> Any:
    """The focusable React Flow wrapper of a node."""
    return page.locator(f'.react-flow__node[data-id="{key}"]')


def drop(page: Any, item: str, target: Any) -> None:
    """Drag a palette item (its data-testid) and drop it on the centre of ``target``."""
    page.get_by_test_id(item).drag_to(target)


def test_a_loop_is_built_from_the_palette_only(
    signed_in: Any,  # noqa: F811
    live_server: Any,
    api: Any,  # noqa: F811
) -> None:
    page = signed_in
    import_example(api, "pr-review")  # the team's github connector is offered in the palette
    page.goto(f"{live_server.url}/loops/new/")
    page.wait_for_selector(EDITOR_READY)
    palette = page.get_by_test_id("palette")
    palette.get_by_test_id("palette-connector-github").wait_for()

    # On an edge: a parallel group is inserted there.
    drop(page, "palette-step-parallel", edge(page, "trigger->pipeline[0]"))
    node(page, "pipeline[0].parallel[0]").wait_for()
    # On a group: a member is added.
    drop(page, "palette-step-agent", node(page, "pipeline[0]"))
    node(page, "pipeline[0].parallel[1]").wait_for()
    # Below the group's join: a condition.
    drop(page, "palette-step-conditional", edge(page, "pipeline[0]#join->pipeline[1]"))
    node(page, "pipeline[1].then[0]").wait_for()
    # On the condition's "else" edge: an else branch with an approval gate.
    drop(page, "palette-step-approval", edge(page, "pipeline[1]->pipeline[1]#join:else"))
    node(page, "pipeline[1].else[0]").wait_for()
    # A connector on an agent step.
    drop(page, "palette-connector-github", node(page, "pipeline[0].parallel[0]"))
    wait_for_yaml(page, "        connectors:\n          - github\n")
    # The connector's definition is copied in.
    assert "connectors:\n  github:\n    type: http\n" in yaml_text(page)
    page.wait_for_selector(EDITOR_READY)

    # A drop that does not map to the YAML is refused, and says why.
    drop(page, "palette-step-agent", flow_node(page, "pipeline[1]#join"))
    alert = page.get_by_role("alert").filter(has_text="Not dropped")
    alert.wait_for()
    assert "A condition's join cannot take a step" in alert.inner_text()

    # A step moves from the parallel group into the condition's branch by drag.
    moving = node(page, "pipeline[0].parallel[1]")
    then_box = node(page, "pipeline[1].then[0]").bounding_box()
    moving.hover()
    page.mouse.down()
    page.mouse.move(
        then_box["x"] + then_box["width"] / 2,
        then_box["y"] + then_box["height"] * 0.8,
        steps=12,
    )
    page.mouse.up()
    node(page, "pipeline[1].then[1]").wait_for()
    page.wait_for_selector(EDITOR_READY)
    text = yaml_text(page)
    assert text.startswith("name: new-loop\n")
    pipeline = text[text.index("pipeline:") :]
    assert pipeline.index("- parallel:") < pipeline.index("label: Agent 2")
    assert pipeline.index("connectors:") < pipeline.index("- when: 'true'")
    then = pipeline[pipeline.index("then:") : pipeline.index("else:")]
    assert "label: Agent 4" in then and "label: Agent 3" in then
    assert then.index("label: Agent 4") < then.index("label: Agent 3")
    assert "approve: Approve this change?" in pipeline[pipeline.index("else:") :]
    assert page.get_by_test_id("status").inner_text() == "Unsaved changes"
    screenshot(page, "editor-built-from-palette")


def test_keyboard_selection_agrees_with_the_inspector_and_copy_paste_duplicate(
    signed_in: Any,  # noqa: F811
    live_server: Any,
    api: Any,  # noqa: F811
) -> None:
    page = signed_in
    loop = import_example(api, "pr-review")
    open_editor(page, live_server.url, loop["id"])
    form = page.get_by_test_id("form-panel")

    # One step selected with the mouse, another focused and chosen with Enter:
    # the inspector shows the focused one, and Delete would act on it.
    node(page, "pipeline[0]").click()
    form.get_by_text("pipeline[0]", exact=True).wait_for()
    flow_node(page, "pipeline[1].parallel[1]").focus()
    page.keyboard.press("Enter")
    form.get_by_text("pipeline[1].parallel[1]", exact=True).wait_for()
    assert "lke-selected" in (node(page, "pipeline[1].parallel[1]").get_attribute("class") or "")
    assert "lke-selected" not in (node(page, "pipeline[0]").get_attribute("class") or "")

    # Copy and paste: the copy lands after the selected step, with a label of its own.
    page.keyboard.press("Control+c")
    page.keyboard.press("Control+v")
    wait_for_yaml(page, "label: Security Review 2\n")
    form.get_by_text("pipeline[1].parallel[2]", exact=True).wait_for()
    # Duplicate (Ctrl+D) the pasted step, then delete the duplicate with the keyboard.
    flow_node(page, "pipeline[1].parallel[2]").focus()
    page.keyboard.press("Control+d")
    wait_for_yaml(page, "label: Security Review 3\n")
    form.get_by_text("pipeline[1].parallel[3]", exact=True).wait_for()
    flow_node(page, "pipeline[1].parallel[3]").focus()
    page.keyboard.press("Delete")
    wait_for_yaml(page, "label: Security Review 3\n", present=False)
    assert "label: Security Review 2\n" in yaml_text(page)
    assert "label: Diff\n" in yaml_text(page)

    # The palette by keyboard: Enter on an item, then choose the place (it
    # starts after the selected step) and Enter.
    flow_node(page, "pipeline[0]").focus()
    page.keyboard.press(" ")
    form.get_by_text("pipeline[0]", exact=True).wait_for()
    page.get_by_test_id("palette-step-approval").focus()
    page.keyboard.press("Enter")
    places = page.get_by_test_id("palette-places")
    places.wait_for()
    active = places.locator('[aria-selected="true"]')
    assert active.inner_text() == "Between Diff and Parallel"
    screenshot(page, "editor-palette-keyboard")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Enter")
    wait_for_yaml(page, "approve: Approve this change?")
    text = yaml_text(page)
    assert text.index("label: Diff") < text.index("approve:") < text.index("- parallel:")

    # The context menu: duplicate with the mouse.
    node(page, "pipeline[0]").click(button="right")
    page.get_by_test_id("context-menu").get_by_role("menuitem", name="Duplicate").click()
    wait_for_yaml(page, "label: Diff 2\n")
    page.wait_for_selector(EDITOR_READY)
    screenshot(page, "editor-copy-paste")


def test_one_undo_history_across_the_graph_the_form_and_the_yaml(
    signed_in: Any,  # noqa: F811
    live_server: Any,
    api: Any,  # noqa: F811
) -> None:
    page = signed_in
    loop = import_example(api, "pr-review")
    open_editor(page, live_server.url, loop["id"])
    original = yaml_text(page)

    # An edit in the graph (duplicate a step), then one in the form.
    node(page, "pipeline[0]").click()
    page.keyboard.press("Control+d")
    wait_for_yaml(page, "label: Diff 2\n")
    page.locator(".react-flow__pane").click(position={"x": 20, "y": 20})
    page.get_by_label("Name", exact=True).fill("pr-review-renamed")
    wait_for_yaml(page, "name: pr-review-renamed\n")
    page.wait_for_selector(EDITOR_READY)

    # Undo both from the YAML view.
    page.locator(".lke-yaml .cm-content").click()
    page.keyboard.press("Control+z")
    wait_for_yaml(page, "name: pr-review\n")
    page.keyboard.press("Control+z")
    wait_for_yaml(page, "label: Diff 2\n", present=False)
    page.wait_for_selector(EDITOR_READY)
    assert yaml_text(page) == original
    # Redo with the toolbar button and Ctrl+Y.
    page.get_by_test_id("redo").click()
    wait_for_yaml(page, "label: Diff 2\n")
    page.locator(".lke-yaml .cm-content").click()
    page.keyboard.press("Control+y")
    wait_for_yaml(page, "name: pr-review-renamed\n")
    page.wait_for_selector(EDITOR_READY)

    # Typing in the YAML view is one undo step, undone from the graph.
    go_to_line(page, "name: pr-review-renamed")
    page.keyboard.type("-x2")
    wait_for_yaml(page, "name: pr-review-renamed-x2\n")
    page.wait_for_selector(EDITOR_READY)
    node(page, "pipeline[0]").click()
    page.keyboard.press("Control+z")
    wait_for_yaml(page, "name: pr-review-renamed\n")
    page.wait_for_selector(EDITOR_READY)
    assert page.get_by_test_id("redo").is_enabled()
    screenshot(page, "editor-undo-across-views")


def test_a_large_loop_fits_with_legible_titles_and_a_minimap(
    signed_in: Any,  # noqa: F811
    live_server: Any,
    api: Any,  # noqa: F811
) -> None:
    page = signed_in
    steps = "".join(
        f"- prompt: Do part {n} of the work.\n  label: Step {n}\n" for n in range(1, 121)
    )
    response = api.post(
        "/api/loops",
        {"yaml": f"name: big-loop\ntrigger:\n  type: manual\npipeline:\n{steps}", "message": "e2e"},
        content_type="application/json",
    )
    assert response.status_code in (200, 201), response.content
    open_editor(page, live_server.url, response.json()["id"])
    node(page, "trigger").wait_for()
    # Fitted, the graph is zoomed out: nodes show their titles alone, large
    # enough to read on screen, and a minimap shows the whole loop.
    page.wait_for_selector(".react-flow.lke-far")
    page.locator(".react-flow__minimap").wait_for()
    shown_px = page.evaluate(
        """() => {
            const title = document.querySelector('[data-testid="node-pipeline[0]"] .lke-node-title');
            const zoom = new DOMMatrix(getComputedStyle(document.querySelector('.react-flow__viewport')).transform).a;
            return parseFloat(getComputedStyle(title).fontSize) * zoom;
        }"""
    )
    assert shown_px >= 11, shown_px
    # Too long to fit at the smallest zoom, it starts at the top: the trigger is in view.
    pane = page.locator(".lke-canvas").bounding_box()
    page.wait_for_function(
        """(top) => { const r = document.querySelector('[data-testid="node-trigger"]').getBoundingClientRect();
                      return r.top >= top && r.top < top + 120; }""",
        arg=pane["y"],
    )
    assert not node(page, "pipeline[0]").locator(".lke-node-detail").is_visible()
    # Zoomed in, the details come back.
    for _ in range(4):  # x1.2 each, from the fitted 40 %
        page.locator(".react-flow__controls-zoomin").click()
    page.wait_for_selector(".react-flow:not(.lke-far)")
    node(page, "pipeline[0]").locator(".lke-node-detail").wait_for()
    screenshot(page, "editor-large-loop")

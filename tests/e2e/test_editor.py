"""The loop editor in a real browser: graph, form and YAML in sync, live LRS, save, versions."""

from __future__ import annotations

import json
import re
from pathlib import Path
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
    loop = api.get(f"/api/loops/{loops[name]['id']}").json()
    return loop  # type: ignore[no-any-return]


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
    return page.evaluate("() => document.querySelector('.lke-yaml').loopkitView.state.doc.toString()")  # type: ignore[no-any-return]


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
        assert node(page, f"pipeline[0].parallel[{index}]").is_visible()
    page.get_by_text("4 of 4 agent steps without a timeout or retries").wait_for()
    screenshot(page, "editor-pr-review-opened")

    node(page, "pipeline[0]").get_by_role("button", name="Add a parallel branch", exact=True).click()
    page.get_by_role("menuitem", name="Agent").click()

    node(page, "pipeline[0].parallel[4]").wait_for()
    wait_for_yaml(page, "label: Agent\n")
    text = yaml_text(page)
    assert "      - prompt: Describe the task\n        label: Agent\n" in text
    assert text.index("label: Performance Review") < text.index("label: Agent")
    page.get_by_text("5 of 5 agent steps without a timeout or retries").wait_for()
    page.wait_for_selector(EDITOR_READY)
    assert page.get_by_test_id("status").inner_text() == "Unsaved changes"
    screenshot(page, "editor-parallel-agent-added")

"""The builder's server-rendered pages in a real browser: versions, diff, restore, no-JS editing."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.conftest import screenshot
from tests.web.builder_fixtures import create, loop_yaml, save

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def editor(make_team: Any, client_for: Any) -> Any:
    _team, users = make_team("Pages Team", roles=["editor"])
    return users["editor"], client_for(users["editor"])


def log_in(page: Any, base_url: str, user: Any, password: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", user.get_username())
    page.fill("#id_password", password)
    page.click("form [type=submit]")
    page.wait_for_url(re.compile(r"^(?!.*/accounts/login/).*$"))


def test_versions_diff_and_restore(page: Any, live_server: Any, editor: Any, password: str) -> None:
    user, api = editor
    loop = create(api, message="first draft")
    save(
        api,
        loop["id"],
        loop_yaml(budget=False, extra_step="Assign"),
        base=1,
        message="drop the budget",
    )
    log_in(page, live_server.url, user, password)

    page.goto(f"{live_server.url}/loops/")
    page.click("text=triage")
    page.wait_for_selector("table.lk-versions")
    assert page.locator("table.lk-versions tbody tr").count() == 2
    screenshot(page, "builder-loop-detail")

    page.click("table.lk-versions >> text=Changes")
    page.wait_for_selector(".lk-changes")
    changes = page.locator(".lk-changes li").all_inner_texts()
    assert any("removed budget" in c for c in changes)
    assert any("added agent step 'Assign'" in c for c in changes)
    assert page.locator("tr.lk-diff-delete", has_text="maxTokens: 50000").count() == 1
    highlighted = page.locator('[data-testid="diff-graph"] .lke-highlight')
    highlighted.first.wait_for(state="visible")
    assert "Assign" in highlighted.first.inner_text()
    highlighted.first.scroll_into_view_if_needed()
    # Drawn, not clipped away: the node is what the browser finds at its own centre.
    assert page.evaluate(
        """() => {
            const node = document.querySelector('#lk-diff-graph .lke-highlight');
            const r = node.getBoundingClientRect();
            const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
            return !!hit && node.contains(hit);
        }"""
    )
    screenshot(page, "builder-diff")

    page.click("text=Restore v1 as a new version")
    page.wait_for_selector(".messages li.success")
    assert "Restored version 1 as version 3." in page.inner_text(".messages")
    assert api.get(f"/api/loops/{loop['id']}").json()["yaml"] == loop_yaml()


def test_the_editor_page_works_as_a_plain_form_without_javascript(
    browser: Any, live_server: Any, editor: Any, password: str
) -> None:
    user, api = editor
    loop = create(api)
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 1400, "height": 1000}
    )
    try:
        page = context.new_page()
        log_in(page, live_server.url, user, password)
        page.goto(f"{live_server.url}/loops/{loop['id']}/edit/")
        page.fill("#lk-yaml", loop_yaml(budget=False))
        page.fill("#lk-message", "no budget, by hand")
        page.click("text=Save a new version")
        page.wait_for_selector(".messages li.success")
        assert "Saved version 2 of “triage”." in page.inner_text(".messages")
        assert page.input_value("#lk-yaml") == loop_yaml(budget=False)

        page.fill("#lk-yaml", "name: triage\npipeline: [\n")
        page.click("text=Save a new version")
        page.wait_for_selector(".lk-errors")
        assert "line 3:1: YAML syntax error" in page.inner_text(".lk-errors")
        screenshot(page, "builder-plain-form-error")
    finally:
        context.close()
    assert api.get(f"/api/loops/{loop['id']}").json()["version"] == 2

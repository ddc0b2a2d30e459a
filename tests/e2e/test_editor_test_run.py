"""Test runs and templates in the editor, in a browser: edit a demo loop's prompt, test-run
the draft (dry), see each node's result on the graph and in the inspector, pin a node's
output and run again without calling it; start a new loop from the template gallery.

The app is pytest-django's ``live_server`` with Huey inline (as tests/e2e/test_editor.py):
it serves no WebSocket, so the editor follows the test run through the events API, its
fallback when the run's socket cannot be opened.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from builder.models import Loop
from runs.models import Run, RunEvent
from tests.e2e.conftest import screenshot
from tests.e2e.test_editor import EDITOR_READY, import_example, log_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BUG_REVIEW = "pipeline[1].parallel[0]"
EDITED_PROMPT = "Review the diff for bugs in the tests only.\n{{ steps['Diff'].output }}"


@pytest.fixture
def signed_in(page: Any, live_server: Any, make_team: Any, client_for: Any, password: str) -> Any:
    _team, users = make_team("Test Runs", roles=["editor"])
    log_in(page, live_server.url, users["editor"], password)
    page.api = client_for(users["editor"])
    return page


def node(page: Any, key: str) -> Any:
    return page.locator(f'[data-testid="node-{key}"]')


def shown_run_id(page: Any) -> int:
    text = page.get_by_test_id("test-run-status").inner_text()
    return int(re.search(r"#(\d+)", text).group(1))  # type: ignore[union-attr]


def wait_for_test_run(page: Any, after: int = 0) -> int:
    """Wait until a test run newer than *after* has succeeded; return its id."""
    page.wait_for_function(
        """after => {
          const s = document.querySelector('[data-testid=test-run-status]');
          if (!s) return false;
          const id = Number((s.textContent.match(/#(\\d+)/) || [])[1]);
          return id > after && s.dataset.status === 'succeeded';
        }""",
        arg=after,
        timeout=60_000,
    )
    return shown_run_id(page)


def test_a_drafts_test_run_shows_results_per_node_and_a_pinned_output_is_not_called_again(
    signed_in: Any, live_server: Any
) -> None:
    page = signed_in
    loop = import_example(page.api, "pr-review")
    page.goto(f"{live_server.url}/loops/{loop['id']}/edit/")
    page.wait_for_selector(EDITOR_READY)
    node(page, BUG_REVIEW).click()
    page.get_by_test_id("form-panel").get_by_label("Prompt").fill(EDITED_PROMPT)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=status]').textContent === 'Unsaved changes'"
    )

    page.get_by_test_id("test-run").click()
    first = wait_for_test_run(page)

    # Every step's state on the graph, with tokens under the agents.
    assert "lke-state-done" in (node(page, BUG_REVIEW).get_attribute("class") or "")
    assert "tok" in node(page, "pipeline[1].parallel[1]").inner_text()
    assert "lke-state-done" in (node(page, "verify").get_attribute("class") or "")
    node(page, BUG_REVIEW).click()
    result = page.get_by_test_id("node-result")
    assert result.get_attribute("data-state") == "done"
    assert result.get_attribute("data-pinned") == "false"
    output = page.get_by_test_id("node-result-output").inner_text()
    assert output.strip()
    node(page, "verify").click()
    assert "Round 1/3: passed" in page.get_by_test_id("node-result-verdicts").inner_text()
    screenshot(page, "editor-test-run-results")

    # The run had the draft (the edited prompt) and saved nothing.
    run = Run.objects.get(pk=first)
    assert (run.is_test, run.version_number, run.loop_id) == (True, 0, loop["id"])
    assert "bugs in the tests only" in run.loop_yaml
    assert Loop.objects.get(pk=loop["id"]).version == 1

    node(page, BUG_REVIEW).click()
    page.get_by_test_id("pin-output").click()
    assert page.get_by_test_id("pins-count").inner_text().startswith("1 pinned")
    page.get_by_test_id("test-run").click()
    second = wait_for_test_run(page, after=first)

    # The graph marks the pinned node: no tokens, no cost.
    stats = node(page, BUG_REVIEW).locator(".lke-node-stats").inner_text()
    assert "pinned · 0 tok · $0.0000" in stats
    node(page, BUG_REVIEW).click()
    result = page.get_by_test_id("node-result")
    assert result.get_attribute("data-pinned") == "true"
    assert page.get_by_test_id("node-result-pinned").is_visible()
    assert page.get_by_test_id("node-result-tokens").inner_text() == "0"
    assert page.get_by_test_id("node-result-output").inner_text() == output
    screenshot(page, "editor-test-run-pinned")
    finished = {
        e.payload["label"]: e.payload
        for e in RunEvent.objects.filter(run_id=second, type="step_finished")
    }
    assert (finished["Bug Review"]["pinned"], finished["Bug Review"]["output"]) == (True, output)
    assert finished["Security Review"]["pinned"] is False
    started = RunEvent.objects.get(run_id=second, type="step_started", payload__label="Bug Review")
    assert (started.payload["pinned"], started.payload["prompt"]) == (True, None)  # never sent
    assert Run.objects.get(pk=second).pinned == {"Bug Review": output}
    # Results stay shown after an edit, marked as those of the draft that ran.
    assert page.get_by_test_id("test-run-stale").count() == 0
    page.get_by_test_id("form-panel").get_by_label("Prompt").fill(EDITED_PROMPT + " Be brief.")
    page.get_by_test_id("test-run-stale").wait_for()
    # Pins are the editor's: the loop's YAML never has them.
    assert "pinned" not in page.locator(".lke-yaml .cm-content").inner_text()


def test_a_new_loop_starts_from_a_template_of_the_gallery(signed_in: Any, live_server: Any) -> None:
    page = signed_in
    url = live_server.url
    page.goto(f"{url}/loops/")
    page.get_by_test_id("new-loop").click()
    card = page.locator('[data-template="example:daily-triage"]')
    assert re.search(r"\b[ABCDF]\b", card.inner_text())
    screenshot(page, "loop-templates-gallery")
    card.locator("a").click()

    page.wait_for_selector(EDITOR_READY)
    # The graph and the name follow the validation in a React transition.
    page.wait_for_function(
        "() => document.querySelector('.lke-loop-name').textContent === 'daily-triage-copy'"
    )
    assert page.get_by_test_id("status").inner_text() == "Unsaved changes"
    # A loop not saved yet test-runs too.
    page.get_by_test_id("test-run").click()
    run = Run.objects.get(pk=wait_for_test_run(page))
    assert (run.loop, run.loop_name, run.is_test) == (None, "daily-triage-copy", True)
    page.get_by_label("Change message").fill("From the daily-triage template")
    page.get_by_test_id("save").click()
    page.wait_for_url(re.compile(r"/loops/\d+/edit/$"))
    assert page.get_by_test_id("version").inner_text() == "v1"
    screenshot(page, "loop-from-template-saved")
    assert Loop.objects.filter(name="daily-triage-copy").count() == 1

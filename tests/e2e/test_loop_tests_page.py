"""Loop tests from the browser: finish a live run, keep it as a test, run the loop's tests
and see the test pass on the loop page (replayed from the recording: no model call); a
prompt edit saved in the editor shows "Tests: 0/1 passed" beside the LRS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from loopkit import yamlio
from tests.e2e.conftest import screenshot
from tests.e2e.runner import login
from tests.e2e.test_editor import node, open_editor
from tests.e2e.test_live_run_from_browser import SCRIPTS, add_default_provider, start_live
from tests.engine.llm_server import LLMServer, Reply, verdict
from tests.web.procs import child_env, manage, running_loopkit, shell

pytestmark = pytest.mark.e2e

LOOP = yamlio.dump(
    yamlio.loop_from_data(
        {
            "name": "kept-review",
            "inputs": {"repo": {"type": "string", "required": True}},
            "pipeline": [
                {"prompt": "Review the repository {{ inputs.repo }}", "label": "Review"},
                {"prompt": "Summarise: {{ steps['Review'].output }}", "label": "Summary"},
            ],
            "verify": {"maker": ["Review"], "checker": "Checker", "maxRounds": 1},
        }
    )
)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp_path = tmp_path_factory.mktemp("loop-tests")
    env = child_env(LOOPKIT_HOME=str(tmp_path / "var"), LOOPKIT_HUEY_IMMEDIATE="false")
    manage("migrate", "--no-input", env=env)
    proc = shell(SCRIPTS / "run_dialog_setup.py", env={**env, "RUNS_LOOP_YAML": LOOP})
    loops = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))[7:])
    with running_loopkit(env, tmp_path / "server.log") as url:
        yield {"url": url, "loop": loops["kept-review"]}


def test_a_finished_run_kept_as_a_test_passes_on_the_loop_page(
    page: Any, app: dict[str, Any]
) -> None:
    url = app["url"]
    with LLMServer() as server:
        server.default = Reply("Looks fine.")
        server.when("adversarial verifier", verdict(True, 0.9))
        login(page, url)
        add_default_provider(page, url, server)
        assert start_live(page, url, app["loop"], "acme/api") == "succeeded"
        calls = len(server.requests)
    # The model is gone: what follows replays the recording.
    page.reload()
    page.fill(".keep-as-test input[name=name]", "acme review")
    page.click("[data-testid=keep-as-test]")
    page.wait_for_url(f"{url}/loops/{app['loop']}/#tests")
    row = page.locator('[data-test="acme review"]')
    assert row.locator("[data-result]").get_attribute("data-result") == "none"

    page.click("[data-testid=run-tests]")
    page.wait_for_url(f"{url}/loops/{app['loop']}/#tests")

    assert "Tests: 1/1 passed on v1." in page.inner_text(".messages")
    assert row.locator("[data-result]").get_attribute("data-result") == "pass"
    assert f"{calls} call(s) replayed" in row.inner_text()
    page.locator("#tests").scroll_into_view_if_needed()
    screenshot(page, "loop-tests-passed")

    # A prompt edit saved in the editor: the save replays the test, which fails.
    open_editor(page, url, app["loop"])
    node(page, "pipeline[0]").click()
    form = page.get_by_test_id("form-panel")
    form.get_by_label("Prompt").fill("Review every file of {{ inputs.repo }}")
    page.wait_for_selector('[data-testid="editor"][data-status="valid"]')
    page.get_by_test_id("save").click()
    chip = page.get_by_test_id("tests-chip")
    chip.wait_for()
    assert chip.inner_text() == "Tests: 0/1 passed"
    assert chip.get_attribute("title") == (
        "acme review: the request of step 'Review' (maker, round 1) is not in the cassette: "
        "message 1 (user) changed"
    )
    screenshot(page, "loop-tests-editor-chip")
    chip.click()
    page.wait_for_url(f"{url}/loops/{app['loop']}/#tests")
    assert row.locator("[data-result]").get_attribute("data-result") == "fail"

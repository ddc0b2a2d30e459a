"""The loop page's Run dialog in a browser: typed inputs, a dry run watched to its end,
and every example loop dry-run from its page as shipped.

The app runs as a user runs it (``manage.py loopkit_start``: Daphne and a Huey
worker, SQLite) in a fresh folder, as in test_run_live.py.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from loopkit import examples, yamlio
from tests.e2e.conftest import ROOT, screenshot
from tests.e2e.runner import FINISHED, login
from tests.web.procs import child_env, manage, running_loopkit, shell

pytestmark = pytest.mark.e2e

SCRIPTS = ROOT / "tests" / "web" / "scripts"
TYPED = yamlio.dump(
    yamlio.loop_from_data(
        {
            "name": "typed-review",
            "inputs": {
                "repo": {"type": "string", "required": True, "description": "owner/name"},
                "count": {"type": "integer", "default": 3},
                "strict": {"type": "boolean", "default": False},
            },
            "pipeline": [
                {"prompt": "Review {{ inputs.repo }} ({{ inputs.count }})", "label": "Review"},
                {"prompt": "Summarise", "label": "Summary"},
            ],
            "verify": {"maker": ["Review"], "checker": "Checker"},
            "budget": {"maxTokens": 20000, "maxIterations": 10, "maxModelCalls": 10},
        }
    )
)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp_path = tmp_path_factory.mktemp("run-dialog")
    env = child_env(LOOPKIT_HOME=str(tmp_path / "var"), LOOPKIT_HUEY_IMMEDIATE="false")
    manage("migrate", "--no-input", env=env)
    proc = shell(SCRIPTS / "run_dialog_setup.py", env={**env, "RUNS_LOOP_YAML": TYPED})
    loops = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))[7:])
    with running_loopkit(env, tmp_path / "server.log") as url:
        yield {"url": url, "db": tmp_path / "var" / "loopkit.sqlite3", "loops": loops}


def stored_run(db: Any, run_id: int) -> dict[str, Any]:
    with sqlite3.connect(db, timeout=20) as conn:
        status, inputs, dry_run, model = conn.execute(
            "SELECT status, inputs, dry_run, model FROM runs_run WHERE id = ?", (run_id,)
        ).fetchone()
    return {
        "status": status,
        "inputs": json.loads(inputs),
        "dry_run": bool(dry_run),
        "model": model,
    }


def finish(page: Any, url: str) -> str:
    """Wait on the run page for the run's end, approving a gate when one waits; its status."""
    page.wait_for_url(f"{url}/runs/*/")
    ended = ", ".join(f'#run-status[data-status="{s}"]' for s in FINISHED)
    waiting = '#run-status[data-status="waiting_for_approval"]'
    found = page.wait_for_selector(f"{ended}, {waiting}", timeout=60_000)
    if found.get_attribute("data-status") == "waiting_for_approval":
        page.click("#approvals button.approve")
        found = page.wait_for_selector(ended, timeout=60_000)
    return str(found.get_attribute("data-status"))


def test_a_dry_run_with_typed_inputs_starts_from_the_run_dialog_and_finishes(
    page: Any, app: dict[str, Any]
) -> None:
    url = app["url"]
    login(page, url)
    page.goto(f"{url}/loops/{app['loops']['typed-review']}/")
    page.click("[data-testid=run-open]")
    dialog = page.wait_for_selector("[data-testid=run-dialog]", state="visible")
    assert page.input_value("[data-testid=input-count]") == "3"
    assert page.get_attribute("[data-testid=input-count]", "type") == "number"
    page.fill("[data-testid=input-repo]", "acme/api")
    page.fill("[data-testid=input-count]", "5")
    page.check("[data-testid=input-strict]")
    page.fill("[data-testid=run-model]", "openai/review-model")
    assert page.is_checked("[data-testid=mode-dry]")
    screenshot(page, "run-dialog-filled")
    assert dialog.is_visible()
    page.click("[data-testid=run-start]")

    assert finish(page, url) == "succeeded"
    run_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    assert stored_run(app["db"], run_id) == {
        "status": "succeeded",
        "inputs": {"repo": "acme/api", "count": 5, "strict": True},
        "dry_run": True,
        "model": "openai/review-model",
    }


def test_a_live_run_asks_for_a_required_input_and_invalid_json_is_refused_before_submit(
    page: Any, app: dict[str, Any]
) -> None:
    url = app["url"]
    login(page, url)
    page.goto(f"{url}/loops/{app['loops']['typed-review']}/")
    page.click("[data-testid=run-open]")
    page.check("[data-testid=mode-live]")
    page.click("[data-testid=run-start]")

    assert page.url == f"{url}/loops/{app['loops']['typed-review']}/"  # not submitted
    assert page.eval_on_selector("[data-testid=input-repo]", "el => el.validity.valueMissing")

    webhook = next(name for name in examples.names() if "type: webhook" in examples.read(name))
    page.goto(f"{url}/loops/{app['loops'][webhook]}/")
    page.click("[data-testid=run-open]")
    sample = json.loads(page.input_value("[data-testid=run-payload]"))
    assert isinstance(sample, dict) and sample
    page.fill("[data-testid=run-payload]", '{"action": "opened",}')
    page.click("[data-testid=run-start]")

    error = page.wait_for_selector("[data-testid=payload-error]", state="visible")
    assert error.inner_text().startswith("The payload is not valid JSON: ")
    assert page.url == f"{url}/loops/{app['loops'][webhook]}/"


@pytest.mark.parametrize("name", examples.names())
def test_every_example_loop_dry_runs_from_its_pages_dialog_as_shipped(
    page: Any, app: dict[str, Any], name: str
) -> None:
    url = app["url"]
    login(page, url)
    page.goto(f"{url}/loops/{app['loops'][name]}/")
    page.click("[data-testid=run-open]")
    page.click("[data-testid=run-start]")

    status = finish(page, url)

    run_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    assert (status, stored_run(app["db"], run_id)["dry_run"]) == ("succeeded", True), name


def test_the_editor_follows_a_test_run_of_its_draft_over_the_runs_websocket(
    page: Any, app: dict[str, Any]
) -> None:
    # The editor's Test run (tests/e2e/test_editor_test_run.py) here under Daphne: the
    # results come over the run's WebSocket, so the events API is never polled.
    url = app["url"]
    polled: list[str] = []
    page.on("request", lambda r: polled.append(r.url) if "/events" in r.url else None)
    login(page, url)
    page.goto(f"{url}/loops/{app['loops']['pr-review']}/edit/")
    page.wait_for_selector('[data-testid=editor][data-status="valid"]')
    page.get_by_test_id("test-run").click()
    page.wait_for_selector('[data-testid=test-run-status][data-status="succeeded"]', timeout=60_000)

    bug_review = page.locator('[data-testid="node-pipeline[1].parallel[0]"]')
    assert "lke-state-done" in (bug_review.get_attribute("class") or "")
    bug_review.click()
    assert page.get_by_test_id("node-result-output").inner_text().startswith("[dry run] Bug Review")
    assert polled == []
    run_id = int(
        page.get_by_test_id("test-run-status").get_attribute("href").strip("/").rsplit("/", 1)[1]
    )
    with sqlite3.connect(app["db"], timeout=20) as conn:
        assert conn.execute("SELECT is_test FROM runs_run WHERE id = ?", (run_id,)).fetchone() == (
            1,
        )

"""A dry run started from the loop page, watched live, reloaded mid-run.

The app runs as a user runs it: ``manage.py loopkit_start`` (Daphne and a
Huey worker) in the embedded default (SQLite, SqliteHuey, channels-lite),
in a fresh var/ folder. The loop's ``dryRun.latencyMs`` makes each model call
slow enough to reload the page while the run is in progress.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loopkit import yamlio
from tests.e2e.conftest import ROOT, screenshot
from tests.e2e.runner import login
from tests.web.procs import child_env, manage, running_loopkit, shell

pytestmark = pytest.mark.e2e

SCRIPTS = ROOT / "tests" / "web" / "scripts"
LOOP = yamlio.dump(
    yamlio.loop_from_data(
        {
            "name": "live-review",
            "pipeline": [
                {
                    "parallel": [
                        {"prompt": "Review for bugs", "label": "Bug Review"},
                        {"prompt": "Review for security", "label": "Security Review"},
                    ]
                },
                {"prompt": "Summarise", "label": "Summary"},
            ],
            "verify": {
                "maker": ["Bug Review", "Security Review"],
                "checker": "Adversarial Verifier",
            },
            "budget": {"maxTokens": 20000, "maxIterations": 10, "maxModelCalls": 10},
            "dryRun": {"latencyMs": 900},
        }
    )
)

GATED = yamlio.dump(
    yamlio.loop_from_data(
        {
            "name": "gated-release",
            "pipeline": [
                {"prompt": "Draft the release notes", "label": "Draft"},
                {"approve": "Publish these notes?", "label": "Publish", "approvers": ["owner"]},
                {"prompt": "Publish the notes", "label": "Publish notes"},
            ],
        }
    )
)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Start LoopKit (server and worker) with a team, a user and the loops; yield its facts."""
    tmp_path = tmp_path_factory.mktemp("run-live")
    env = child_env(LOOPKIT_HOME=str(tmp_path / "var"), LOOPKIT_HUEY_IMMEDIATE="false")
    manage("migrate", "--no-input", env=env)
    proc = shell(
        SCRIPTS / "runs_setup.py",
        env={**env, "RUNS_LOOP_YAML": LOOP, "RUNS_OTHER_LOOP_YAML": GATED, "RUNS_NO_RUN": "1"},
    )
    facts = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))[7:])
    with running_loopkit(env, tmp_path / "server.log") as url:
        yield {"url": url, "db": tmp_path / "var" / "loopkit.sqlite3", **facts}


def stored_events(db: Path, run_id: int) -> list[tuple[int, str]]:
    with sqlite3.connect(db, timeout=20) as conn:
        rows = conn.execute(
            "SELECT seq, type FROM runs_runevent WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()
    return [(int(s), str(t)) for s, t in rows]


def shown_events(page: Any) -> list[int]:
    return [
        int(s)
        for s in page.eval_on_selector_all("#events li", "els => els.map(e => e.dataset.seq)")
    ]


def test_an_approval_gate_is_decided_on_the_run_page_and_the_run_goes_on(
    page: Any, app: dict[str, Any]
) -> None:
    url = app["url"]
    login(page, url)
    page.goto(f"{url}/loops/{app['other_loop']}/")
    page.click("[data-testid=run-dry]")
    page.wait_for_selector('#run-status[data-status="waiting_for_approval"]')
    approval = page.wait_for_selector("#approvals .approval")
    assert "Publish these notes?" in approval.inner_text()
    page.fill("#approvals .approval-comment", "Looks right")
    screenshot(page, "run-approval-waiting")
    page.click("#approvals button.approve")
    page.wait_for_selector('#run-status[data-status="succeeded"]', timeout=30_000)
    assert page.is_hidden("#approvals")
    resolved = page.inner_text('#events li[data-type="approval_resolved"]')
    assert resolved.endswith("approval approved by runner")
    assert page.get_attribute('#step-list li[data-label="Publish notes"]', "data-state") == "done"


def test_a_dry_run_from_the_loop_page_is_watched_live_and_survives_a_reload(
    page: Any, app: dict[str, Any]
) -> None:
    url = app["url"]
    login(page, url)
    page.goto(f"{url}/loops/{app['loop']}/")
    page.click("[data-testid=run-dry]")
    page.wait_for_url(f"{url}/runs/*/")
    run_id = int(page.url.rstrip("/").rsplit("/", 1)[1])

    # The parallel reviews turn done while the run goes on; reload in the middle.
    page.wait_for_selector('#step-list li[data-label="Bug Review"][data-state="done"]')
    assert page.get_attribute("#run-status", "data-status") == "running"
    screenshot(page, "run-live-before-reload")
    page.reload()

    page.wait_for_selector('#run-status[data-status="succeeded"]', timeout=30_000)
    page.wait_for_selector("#rounds tbody tr[data-round='1']")
    assert page.inner_text("#rounds tbody tr[data-round='1']").split("\t")[2:4] == ["PASS", "0.95"]
    for label in ("Bug Review", "Security Review", "Summary"):
        assert page.get_attribute(f'#step-list li[data-label="{label}"]', "data-state") == "done"
    if page.locator(".lke-node").count():  # the editor's graph is built (make frontend)
        assert page.locator('[data-key="pipeline[1]"].lke-state-done').count() == 1
    # Every stored event is shown exactly once, in order, after the reload.
    stored = stored_events(app["db"], run_id)
    page.wait_for_function(f"document.querySelectorAll('#events li').length >= {len(stored)}")
    assert shown_events(page) == [seq for seq, _ in stored] == list(range(1, len(stored) + 1))
    assert stored[-1][1] == "run_finished"
    assert page.inner_text("#outputs").count("[dry run]") == 3
    # Four model calls (three agents, one checker) in one pass of the loop.
    assert page.inner_text('#budget tr[data-limit="maxModelCalls"]').split("\t")[1] == "4 / 10"
    assert page.inner_text('#budget tr[data-limit="maxIterations"]').split("\t")[1] == "1 / 10"
    screenshot(page, "run-live-finished")


def test_a_dry_runs_agent_text_streams_in_before_its_step_finishes(
    page: Any, app: dict[str, Any]
) -> None:
    url = app["url"]
    login(page, url)
    page.goto(f"{url}/loops/{app['loop']}/")
    page.click("[data-testid=run-dry]")
    page.wait_for_url(f"{url}/runs/*/")
    run_id = int(page.url.rstrip("/").rsplit("/", 1)[1])

    # Seen in one look at the page: an agent's panel holds part of its text while its
    # step is still running (the dry run streams each answer in 4 pieces over 900 ms).
    partial = page.wait_for_function(
        """() => {
          for (const box of document.querySelectorAll('#outputs details[data-state="streaming"]')) {
            const row = document.querySelector(`#step-list li[data-key="${box.dataset.key}"]`);
            const text = box.querySelector("pre").textContent;
            if (row && row.dataset.state === "running" && text.length > 0) {
              return {key: box.dataset.key, text, state: row.dataset.state};
            }
          }
          return false;
        }"""
    ).json_value()
    page.locator("#outputs").scroll_into_view_if_needed()
    screenshot(page, "run-live-streaming")
    assert not partial["text"].endswith(").")  # not the whole answer yet

    page.wait_for_selector('#run-status[data-status="succeeded"]', timeout=30_000)
    box = f'#outputs details[data-key="{partial["key"]}"][data-round="1"]'
    page.wait_for_selector(f'{box}[data-state="done"]')
    final = page.inner_text(f"{box} pre")
    assert final.startswith(partial["text"]) and final.endswith("(round 1).")
    assert page.inner_text("#outputs").count("[dry run]") == 3  # one panel per agent
    # After a reload the stored pieces replay into the same panels, once each.
    stored = stored_events(app["db"], run_id)
    assert sum(1 for _, type_ in stored if type_ == "step_output") >= 3 * 4
    page.reload()
    page.wait_for_function(f"document.querySelectorAll('#events li').length >= {len(stored)}")
    assert shown_events(page) == list(range(1, len(stored) + 1))
    assert page.inner_text(f"{box} pre") == final
    assert page.inner_text("#outputs").count("[dry run]") == 3

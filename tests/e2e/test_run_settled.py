"""A finished run's page tells the truth: every node settled, and each node's detail.

Runs are dry runs started from the loop page of an app started as a user starts
it (``manage.py loopkit_start`` in the embedded default): one whose budget runs
out (failed), one cancelled mid-step, one whose approval is rejected. Each is
reloaded once over, and no node may be left "queued" or "running".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loopkit import yamlio
from tests.e2e.conftest import ROOT, screenshot
from tests.e2e.runner import login, node_states
from tests.web.procs import child_env, manage, running_loopkit, shell

pytestmark = pytest.mark.e2e

SCRIPTS = ROOT / "tests" / "web" / "scripts"
REVIEW = yamlio.dump(
    yamlio.loop_from_data(
        {
            "name": "settled-review",
            "inputs": {"topic": {"type": "string", "default": "release notes"}},
            "pipeline": [
                {
                    "prompt": "Summarise {{ inputs.topic }} as JSON",
                    "label": "Summary",
                    "output": {
                        "schema": {
                            "type": "object",
                            "properties": {"title": {"type": "string"}},
                            "required": ["title"],
                        }
                    },
                },
                {
                    "when": "false",
                    "label": "Route",
                    "then": [{"prompt": "Escalate", "label": "Escalate"}],
                    "else": [{"prompt": "Polish the summary", "label": "Polish"}],
                },
                {"prompt": "Publish", "label": "Publish"},
            ],
            "budget": {"maxModelCalls": 2},
            "dryRun": {"latencyMs": 1500},
        }
    )
)
GATED = yamlio.dump(
    yamlio.loop_from_data(
        {
            "name": "settled-gate",
            "pipeline": [
                {"prompt": "Draft the release notes", "label": "Draft"},
                {"approve": "Publish these notes?", "label": "Gate", "approvers": ["owner"]},
                {"prompt": "Publish the notes", "label": "Publish notes"},
            ],
        }
    )
)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp_path = tmp_path_factory.mktemp("run-settled")
    env = child_env(LOOPKIT_HOME=str(tmp_path / "var"), LOOPKIT_HUEY_IMMEDIATE="false")
    manage("migrate", "--no-input", env=env)
    proc = shell(
        SCRIPTS / "runs_setup.py",
        env={**env, "RUNS_LOOP_YAML": REVIEW, "RUNS_OTHER_LOOP_YAML": GATED, "RUNS_NO_RUN": "1"},
    )
    facts = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))[7:])
    log = tmp_path / "server.log"
    with running_loopkit(env, log) as url:
        yield {"url": url, "log": log, **facts}


def start(page: Any, url: str, loop: int) -> None:
    page.goto(f"{url}/loops/{loop}/")
    page.click("[data-testid=run-dry]")
    page.wait_for_url(f"{url}/runs/*/")


def reload_settled(page: Any) -> dict[str, str]:
    page.reload()
    page.wait_for_function("window.LoopKitRun && window.LoopKitRun.settled")
    assert page.get_attribute("#live-state", "data-state") == "finished"
    return node_states(page)


def test_a_run_out_of_budget_reloads_with_every_node_settled_and_shows_a_nodes_prompt_and_output(
    page: Any, app: dict[str, Any]
) -> None:
    url = app["url"]
    login(page, url)
    start(page, url, app["loop"])
    page.wait_for_selector('#run-status[data-status="budget_exceeded"]', timeout=30_000)
    live = node_states(page)
    assert (
        reload_settled(page)
        == live
        == {
            "Summary": "done",
            "Route": "done",
            "Escalate": "skipped",
            "Polish": "done",
            "Publish": "failed",
        }
    )
    # The duration stopped at the run's end: it does not grow while we look.
    shown = page.inner_text("#duration")
    page.wait_for_timeout(1500)
    assert page.inner_text("#duration") == shown

    page.click('#step-list li[data-label="Summary"] .step-name')
    detail = page.locator("#node-detail")
    assert (
        detail.locator("[data-part=prompt] pre")
        .inner_text()
        .startswith(
            "Summarise release notes as JSON\n\nAnswer with one JSON object matching this JSON Schema:"
        )
    )
    assert detail.locator("h3", has_text="Output (JSON)").count() == 1
    output = detail.locator("[data-part=output] pre")
    assert output.get_attribute("data-json") == "true"
    assert json.loads(output.inner_text()) == json.loads(
        page.inner_text('#outputs details[data-key="pipeline[0]"] pre')
    )
    assert detail.locator('dd[data-fact="retries"]').inner_text() == "0"
    screenshot(page, "run-settled-detail")

    page.click('#step-list li[data-label="Publish"] .step-name')
    assert detail.get_attribute("data-state") == "failed"
    assert "maxModelCalls" in detail.locator("[data-part=error] pre").inner_text()


def test_a_cancelled_run_reloads_with_every_node_settled_and_logs_no_traceback(
    page: Any, app: dict[str, Any]
) -> None:
    url = app["url"]
    login(page, url)
    start(page, url, app["loop"])
    page.wait_for_selector('#step-list li[data-label="Summary"][data-state="running"]')
    page.click("#cancel-run")
    page.wait_for_selector('#run-status[data-status="cancelled"]', timeout=30_000)
    assert page.get_attribute("#live-state", "data-state") == "finished"
    assert reload_settled(page) == {
        "Summary": "cancelled",
        "Route": "skipped",
        "Escalate": "skipped",
        "Polish": "skipped",
        "Publish": "skipped",
    }
    page.wait_for_timeout(500)  # the worker has logged whatever it logs about the cancel
    log = Path(app["log"]).read_text(errors="replace")
    assert "Traceback" not in log, log[max(0, log.find("Traceback") - 200) :][:4000]


def test_a_rejected_approval_reloads_as_rejected_with_the_rest_settled(
    page: Any, app: dict[str, Any]
) -> None:
    url = app["url"]
    login(page, url)
    start(page, url, app["other_loop"])
    page.wait_for_selector("#approvals .approval")
    page.fill("#approvals .approval-comment", "Not this week")
    page.click("#approvals button.reject")
    page.wait_for_function("window.LoopKitRun && window.LoopKitRun.settled", timeout=30_000)
    assert reload_settled(page) == {"Draft": "done", "Gate": "rejected", "Publish notes": "skipped"}
    page.click('#step-list li[data-label="Draft"] .step-name')
    detail = page.locator("#node-detail")
    assert detail.locator("[data-part=prompt] pre").inner_text() == "Draft the release notes"
    assert detail.locator("[data-part=output] pre").inner_text().startswith("[dry run]")
    screenshot(page, "run-settled-rejected")

"""The run page's totals show a call lost with a dead worker: paid, cost unknown.

The run's events are stored through the recorder as a worker and the recovery
write them (tests/web/scripts/runs_seed_lost_call.py; the real SIGKILL is in
tests/web/test_runs_workers.py); the page replays them over its WebSocket from
a real ``loopkit_start`` server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from loopkit import yamlio
from tests.e2e.conftest import ROOT, screenshot
from tests.e2e.runner import login
from tests.web.procs import child_env, manage, running_loopkit, shell

pytestmark = pytest.mark.e2e

LOOP = yamlio.dump(
    yamlio.loop_from_data(
        {
            "name": "lost-call",
            "pipeline": [{"prompt": "One", "label": "One"}, {"prompt": "Two", "label": "Two"}],
            "budget": {"maxModelCalls": 5},
        }
    )
)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp_path = tmp_path_factory.mktemp("run-lost-calls")
    env = child_env(LOOPKIT_HOME=str(tmp_path / "var"), LOOPKIT_HUEY_IMMEDIATE="false")
    manage("migrate", "--no-input", env=env)
    proc = shell(
        ROOT / "tests" / "web" / "scripts" / "runs_seed_lost_call.py",
        env={**env, "RUNS_LOOP_YAML": LOOP},
    )
    facts = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))[7:])
    with running_loopkit(env, tmp_path / "server.log") as url:
        yield {"url": url, **facts}


def test_the_run_page_counts_a_lost_call_in_its_totals_and_says_its_cost_is_unknown(
    page: Any, app: dict[str, Any]
) -> None:
    assert app["lost"] == 1
    login(page, app["url"])
    page.goto(f"{app['url']}/runs/{app['run']}/")
    page.wait_for_selector('#events li[data-type="run_finished"]')

    assert page.inner_text("#cost") == "$0.0223 + 1 lost call (cost unknown)"
    assert page.get_attribute("#cost", "data-lost-calls") == "1"
    assert page.inner_text('#events li[data-type="calls_lost"]') == (
        "#6 1 call lost with the worker of attempt 1 (Two): paid, cost unknown, made again"
    )
    # Two calls made and one lost: three against maxModelCalls.
    assert page.inner_text('#budget tr[data-limit="maxModelCalls"] td') == "3 / 5"
    page.click('#step-list li[data-label="Two"]')
    assert page.inner_text('#node-detail dd[data-fact="lost calls"]').startswith("1 ")
    screenshot(page, "run-lost-calls")

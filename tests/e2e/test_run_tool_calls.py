"""The live run page shows a run's tool calls and plans, replayed from stored events.

Dry runs start no connectors, so the finished run's ``tool_called`` and
``plan_made`` events are seeded in the database as the engine writes them; the
page replays them over its WebSocket from a real ``loopkit_start`` server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, screenshot
from tests.web.procs import child_env, manage, running_loopkit, shell

pytestmark = pytest.mark.e2e

LOOP = (ROOT / "loops" / "checkout-investigation.yaml").read_text()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp_path = tmp_path_factory.mktemp("run-tools")
    env = child_env(LOOPKIT_HOME=str(tmp_path / "var"), LOOPKIT_HUEY_IMMEDIATE="false")
    manage("migrate", "--no-input", env=env)
    proc = shell(
        ROOT / "tests" / "web" / "scripts" / "runs_seed_tool_calls.py",
        env={**env, "RUNS_LOOP_YAML": LOOP},
    )
    facts = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))[7:])
    with running_loopkit(env, tmp_path / "server.log") as url:
        yield {"url": url, **facts}


def test_the_run_page_shows_each_tool_call_and_the_plan_under_its_step(
    page: Any, app: dict[str, Any]
) -> None:
    url = app["url"]
    page.goto(f"{url}/accounts/login/")
    page.fill("input[name=username]", "runner")
    page.fill("input[name=password]", "x-long-password-1")
    page.click("form [type=submit]")
    page.goto(f"{url}/runs/{app['run']}/")

    page.wait_for_selector('#events li[data-type="run_finished"]')
    plan_row = '#step-list li[data-label="Investigate"]'
    calls = page.locator(f"{plan_row} .tool-call")
    assert calls.count() == 2
    first, second = calls.nth(0), calls.nth(1)
    assert first.get_attribute("data-tool") == "logs.search"
    assert first.locator(".tool-step").inner_text() == "Investigate 1.1 search_logs \u203a"
    assert first.locator(".tool-args").inner_text() == (
        '({"query":"payment declined","token":"[REDACTED]"})'
    )
    assert first.locator(".tool-result").inner_text() == "3 lines: 09:14 card declined (acme)"
    assert first.locator(".tool-duration").inner_text() == "42 ms"
    assert "tool-error" in (second.get_attribute("class") or "")
    assert second.locator(".tool-result").inner_text() == "error: HTTP 404: no such ticket"
    assert second.locator(".tool-duration").inner_text() == "1.25 s"

    plan = page.locator(f"{plan_row} .plan-made")
    assert plan.locator(".plan-head").inner_text() == "plan 1/2: 2 steps · planner finished"
    assert plan.locator(".plan-steps li").evaluate_all(
        "els => els.map(e => e.dataset.template)"
    ) == ["search_logs", "read_ticket"]

    logged = page.locator('#events li[data-type="tool_called"]').all_inner_texts()
    assert logged == [
        '#4 Investigate 1.1 search_logs: tool logs.search({"query":"payment declined",'
        '"token":"[REDACTED]"}) → 3 lines: 09:14 card declined (acme) · 42 ms',
        '#5 Investigate 1.2 read_ticket: tool tracker.get_issue({"id":4242})'
        " → error: HTTP 404: no such ticket · 1.25 s",
    ]
    assert page.inner_text('#events li[data-type="plan_made"]') == (
        "#3 Investigate: plan 1/2 → search_logs, read_ticket (done)"
    )
    screenshot(page, "run-tool-calls")

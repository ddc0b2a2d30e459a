"""The dashboard in a real browser: switch periods, see the charts, follow a number to the runs."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from tests.e2e.conftest import screenshot
from tests.web.dashboard_fixtures import make_run, seed

pytestmark = pytest.mark.e2e


@pytest.fixture
def world(transactional_db: Any, make_team: Any) -> Any:
    seeded = seed(make_team)
    now = timezone.now()
    triage, review = seeded.loops["triage"], seeded.loops["review"]
    # Recent runs for the preset periods: 2 in the last 24 h, 3 more in the last 7 days.
    make_run(triage, now - timedelta(hours=2), "succeeded", (900, 300), "0.12", 1, ["gpt-4o-mini"])
    make_run(review, now - timedelta(hours=5), "failed", (400, 0), None, 0, ["local/llama"])
    for days in (2, 3, 4):
        make_run(
            triage, now - timedelta(days=days), "succeeded", (1000, 500), "0.20", 2, ["gpt-4o"]
        )
    return seeded


def figure(page: Any, name: str) -> str:
    return str(page.locator(f'[data-figure="{name}"] .value').inner_text()).strip()


def test_the_dashboard_switches_periods_and_links_a_number_to_the_runs_list(
    world: Any, live_server: Any, page: Any, password: str
) -> None:
    page.goto(f"{live_server.url}/accounts/login/?next=/dashboard/%3Fperiod%3D24h")
    page.fill("input[name=username]", world.users["viewer"].username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/dashboard/\?period=24h$"))
    assert figure(page, "runs") == "2"
    assert figure(page, "unknown_cost_runs") == "1"
    page.wait_for_selector("#chart-runs[data-ready=true]")

    page.click('a[data-period="7d"]')
    page.wait_for_url(re.compile(r"period=7d$"))
    assert figure(page, "runs") == "5"
    assert figure(page, "success_rate") == "80.0%"
    assert figure(page, "cost") == "$0.7200"

    page.fill("input[name=since]", "2026-03-01")
    page.fill("input[name=until]", "2026-03-07")
    page.click("text=Show range")
    page.wait_for_url(re.compile(r"period=custom"))
    assert figure(page, "runs") == "9"
    assert figure(page, "verification_pass_rate") == "66.7%"
    for chart in ("runs", "cost", "tokens", "rates", "by-loop", "by-model"):
        page.wait_for_selector(f"#chart-{chart}[data-ready=true]")
    assert page.evaluate("Chart.getChart('chart-runs').data.datasets[0].data") == [
        2,
        0,
        1,
        0,
        0,
        1,
        0,
    ]
    screenshot(page, "dashboard-custom-period")

    page.click('[data-figure="success_rate"]')
    page.wait_for_url(
        re.compile(
            r"/runs/\?since=2026-03-01T00:00:00Z&until=2026-03-08T00:00:00Z&status=succeeded"
        )
    )
    assert page.locator(".count").get_attribute("data-count") == "4"
    assert page.locator("table.runs tbody tr").count() == 4
    screenshot(page, "runs-list-followed-from-dashboard")
    page.click("table.runs tbody tr >> nth=0 >> a")
    page.wait_for_url(re.compile(rf"/runs/{world.runs[8].pk}/$"))


def test_the_loop_page_draws_the_loops_runs_and_cost_per_run(
    world: Any, live_server: Any, page: Any, password: str
) -> None:
    loop = world.loops["triage"]
    page.goto(f"{live_server.url}/accounts/login/?next=/loops/{loop.pk}/%3Fperiod%3D7d")
    page.fill("input[name=username]", world.users["viewer"].username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_selector("#loop-chart[data-ready=true]")
    section = page.locator("#loop-dashboard")
    assert section.locator('[data-figure="runs"] .value').inner_text() == "4"
    assert section.locator('[data-figure="cost_per_run"] .value').inner_text() == "$0.1800"
    assert section.locator('[data-figure="lrs"] .value').inner_text() == "B"
    section.scroll_into_view_if_needed()
    screenshot(page, "loop-page-dashboard-section")

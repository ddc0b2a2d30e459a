"""The dashboard's figures against the hand-computed table in dashboard_fixtures.py."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard import rollups, services
from dashboard.periods import PeriodError, parse_period

from .dashboard_fixtures import PERIOD, Seeded, at, make_run, seed

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded(make_team: Any) -> Seeded:
    return seed(make_team)


@pytest.fixture
def week() -> Any:
    return parse_period(PERIOD)


def test_the_totals_match_the_hand_computed_figures(seeded: Seeded, week: Any) -> None:
    t = services.totals(seeded.team, week)
    assert {k: t[k] for k in t if k not in {"cost", "cost_per_run"}} == {
        "runs": 9,
        "succeeded": 4,
        "finished": 8,
        "failed": 1,
        "verification_failed": 1,
        "budget_exceeded": 1,
        "cancelled": 1,
        "active": 1,
        "success_rate": 0.5,
        "verified_runs": 4,
        "verified_passed": 2,
        "verified_failed": 1,
        "rounds": 6,
        "verification_pass_rate": 0.6667,
        "mean_rounds": 1.5,
        "tokens_in": 47400,
        "tokens_out": 17800,
        "tokens": 65200,
        "known_cost_runs": 8,
        "unknown_cost_runs": 1,
    }
    assert t["cost"] == Decimal("1.76")
    assert t["cost_per_run"] == Decimal("0.22")


def test_a_team_without_runs_has_unknown_rates_and_no_cost(make_team: Any, week: Any) -> None:
    team, _ = make_team("Empty")
    t = services.totals(team, week)
    assert (t["runs"], t["success_rate"], t["verification_pass_rate"], t["mean_rounds"]) == (
        0,
        None,
        None,
        None,
    )
    assert t["cost"] is None and t["cost_per_run"] is None


def test_runs_whose_price_is_unknown_are_counted_as_unknown_not_as_zero(
    make_team: Any, week: Any
) -> None:
    team, _ = make_team("Local models")
    loop = seed_loop(team)
    make_run(loop, at("2026-03-02T10:00"), "succeeded", (10, 10), None, models=["local/llama"])
    t = services.totals(team, week)
    assert (t["runs"], t["unknown_cost_runs"], t["known_cost_runs"], t["cost"]) == (1, 1, 0, None)
    assert services.by_model(team, week)[0]["cost"] is None


def seed_loop(team: Any) -> Any:
    from .dashboard_fixtures import make_loop

    return make_loop(team, "solo", grade="A", score=95, budget=False)


def test_the_series_has_one_bucket_per_day_with_empty_days_included(
    seeded: Seeded, week: Any
) -> None:
    rows = services.series(seeded.team, week)
    assert [r["bucket"] for r in rows] == [f"2026-03-0{d}T00:00:00Z" for d in range(1, 8)]
    assert [r["runs"] for r in rows] == [2, 2, 1, 1, 2, 1, 0]
    assert [r["cost"] for r in rows] == [
        Decimal("0.40"),
        Decimal("0.50"),
        Decimal("0.05"),
        Decimal("0.80"),
        Decimal("0.01"),
        Decimal("0"),
        None,
    ]
    assert [r["unknown_cost_runs"] for r in rows] == [0, 1, 0, 0, 0, 0, 0]
    assert [r["tokens_in"] for r in rows] == [3000, 3500, 800, 40000, 100, 0, 0]


def test_a_period_of_three_days_or_less_is_bucketed_by_hour(seeded: Seeded) -> None:
    period = parse_period({"period": "custom", "since": "2026-03-01", "until": "2026-03-01"})
    rows = services.series(seeded.team, period)
    assert len(rows) == 24
    assert {r["bucket"]: r["runs"] for r in rows if r["runs"]} == {
        "2026-03-01T10:00:00Z": 1,
        "2026-03-01T14:00:00Z": 1,
    }


def test_the_breakdown_by_loop_puts_the_most_expensive_first(seeded: Seeded, week: Any) -> None:
    rows = services.by_loop(seeded.team, week)
    assert [
        (
            r["loop_name"],
            r["runs"],
            r["succeeded"],
            r["finished"],
            r["cost"],
            r["unknown_cost_runs"],
        )
        for r in rows
    ] == [
        ("triage", 5, 2, 5, Decimal("1.70"), 0),
        ("review", 4, 2, 3, Decimal("0.06"), 1),
    ]
    assert rows[0]["success_rate"] == 0.4
    assert rows[0]["verification_pass_rate"] == 0.6667
    assert rows[1]["loop_id"] == seeded.loops["review"].pk


def test_the_breakdown_by_model_splits_a_two_model_run_by_what_each_model_spent(
    seeded: Seeded, week: Any
) -> None:
    rows = services.by_model(seeded.team, week)
    # gpt-4o-mini: runs 1, 2 (its part: $0.05), 3, 5, 6, 7 = 0.10+0.05+0.50+0.05+0.80+0.01
    assert [(r["model_name"], r["runs"], r["cost"], r["unknown_cost_runs"]) for r in rows] == [
        ("gpt-4o-mini", 6, Decimal("1.51"), 0),
        ("claude-sonnet-4-5", 1, Decimal("0.25"), 0),
        (None, 2, Decimal("0"), 0),
        ("local/llama", 1, None, 1),
    ]
    # in: 1000 + 500 + 3000 + 800 + 40000 + 100, out: 500 + 200 + 1000 + 200 + 15000 + 0
    assert [(r["tokens_in"], r["tokens_out"]) for r in rows] == [
        (45400, 16900),
        (1500, 800),
        (0, 0),
        (500, 100),
    ]
    totals = services.totals(seeded.team, week)
    assert sum(r["tokens"] for r in rows) == totals["tokens_in"] + totals["tokens_out"]
    assert sum(r["cost"] or 0 for r in rows) == totals["cost"]


def test_the_loop_over_its_token_budget_leads_the_budget_table(seeded: Seeded, week: Any) -> None:
    rows = services.budgets(seeded.team, week)
    assert len(rows) == 1  # review and legacy have no budget and no budget_exceeded run
    row = rows[0]
    assert (row["loop_name"], row["runs"], row["exceeded"], row["usage"], row["over"]) == (
        "triage",
        5,
        1,
        1.1,  # 55,000 tokens of 50,000
        True,
    )
    assert (row["peak_cost"], row["max_cost_usd"], row["peak_tokens"], row["max_tokens"]) == (
        Decimal("0.80"),
        Decimal("1"),
        55000,
        50000,
    )


def test_a_loop_near_its_cost_budget_is_listed_but_not_over(make_team: Any, week: Any) -> None:
    from .dashboard_fixtures import make_loop

    team, _ = make_team("Thrifty")
    loop = make_loop(team, "thrifty", grade="A", score=90, budget=True)
    make_run(loop, at("2026-03-03T10:00"), "succeeded", (100, 100), "0.95")
    [row] = services.budgets(team, week)
    assert (row["usage"], row["over"], row["exceeded"]) == (0.95, False, 0)


def test_the_most_expensive_runs_are_priced_runs_costliest_first(seeded: Seeded, week: Any) -> None:
    r = seeded.runs
    assert services.most_expensive(seeded.team, week) == [
        r[5],
        r[2],
        r[1],
        r[0],
        r[4],
        r[6],
        r[8],
        r[7],
    ]
    assert services.most_expensive(seeded.team, week, limit=2) == [r[5], r[2]]


def test_loops_graded_below_b_are_listed_lowest_score_first(seeded: Seeded) -> None:
    assert [loop.name for loop in services.low_lrs_loops(seeded.team)] == ["review", "legacy"]


def test_no_figure_of_one_team_leaks_into_another(seeded: Seeded, week: Any) -> None:
    a = services.dashboard(seeded.team, week)
    b = services.dashboard(seeded.other_team, week)
    assert a["totals"]["runs"] == 9 and b["totals"]["runs"] == 3
    assert b["totals"]["cost"] == Decimal("300.00")
    assert "bravo-model" not in {r["model_name"] for r in a["by_model"]}
    assert {r["loop_id"] for r in a["by_loop"]} == {
        seeded.loops["triage"].pk,
        seeded.loops["review"].pk,
    }
    assert all(run.team_id == seeded.team.pk for run in a["most_expensive"])
    assert [loop.name for loop in b["low_lrs"]] == ["triage"]
    assert sum(row["runs"] for row in a["series"]) == 9


def test_one_loops_section_has_its_own_figures_only(seeded: Seeded, week: Any) -> None:
    data = services.loop_figures(seeded.loops["review"], week)
    assert (data["totals"]["runs"], data["totals"]["cost"], data["lrs_grade"]) == (
        4,
        Decimal("0.06"),
        "D",
    )
    assert data["totals"]["cost_per_run"] == Decimal("0.02")  # 0.06 over 3 priced runs
    assert [row["runs"] for row in data["series"]] == [0, 1, 1, 0, 1, 1, 0]


def test_preset_periods_end_now_and_reach_back_24h_7d_30d(make_team: Any) -> None:
    team, _ = make_team("Recent")
    loop = seed_loop(team)
    now = timezone.now()
    for age in (timedelta(hours=1), timedelta(days=2), timedelta(days=10), timedelta(days=40)):
        make_run(loop, now - age, "succeeded", (1, 1), "0.01")
    counts = {
        key: services.totals(team, parse_period({"period": key}))["runs"]
        for key in ("24h", "7d", "30d")
    }
    assert counts == {"24h": 1, "7d": 2, "30d": 3}


def test_a_bad_period_is_refused_with_a_message_that_says_what_to_send() -> None:
    cases = {
        "period=year": "period must be one of 24h, 7d, 30d or custom, not 'year'",
        "period=custom&since=2026-03-01": "a custom period needs until as a date like 2026-01-31",
        "period=custom&since=2026-03-09&until=2026-03-01": "until must be on or after since",
        "period=custom&since=2026-13-01&until=2026-03-01": "since must be a date like 2026-01-31, not '2026-13-01'",
        "period=custom&since=2024-01-01&until=2026-03-01": "a custom period covers at most 366 days, not 791",
    }
    for query, message in cases.items():
        params = dict(part.split("=") for part in query.split("&"))
        with pytest.raises(PeriodError) as caught:
            parse_period(params)
        assert str(caught.value) == message


def test_the_number_of_queries_does_not_grow_with_the_number_of_runs(
    seeded: Seeded, week: Any
) -> None:
    def count(rebuild: bool) -> int:
        if rebuild:
            rollups.rebuild(seeded.team)
        with CaptureQueriesContext(connection) as ctx:
            services.dashboard(seeded.team, week)
        return len(ctx.captured_queries)

    cold, warm = count(rebuild=True), count(rebuild=False)
    for hour in range(30):
        make_run(seeded.loops["review"], at(f"2026-03-0{1 + hour % 7}T{hour % 24:02d}:30"),
                 "succeeded", (1, 1), "0.01", 1, [f"model-{hour % 5}"])  # fmt: skip
    assert (count(rebuild=True), count(rebuild=False)) == (cold, warm)
    assert warm < cold <= 22


def test_figures_are_the_same_from_rollups_and_from_the_runs(seeded: Seeded, week: Any) -> None:
    from dashboard.models import LoopHour, RollupState

    rollups.advance(seeded.team)  # as the periodic task does
    rolled = services.dashboard(seeded.team, week)
    # Run 7 is still running: hours up to 03-05 07:00 are rolled up, the rest read live.
    state = RollupState.objects.get(team=seeded.team)
    assert state.closed_until == at("2026-03-05T07:00")
    assert LoopHour.objects.filter(team=seeded.team).count() == 7
    rollups.rebuild(seeded.team)
    seeded.runs[6].transition("failed", allowed_from={"running"})
    live = services.dashboard(seeded.team, week)
    assert live["totals"]["failed"] == rolled["totals"]["failed"] + 1
    for key in ("series", "by_loop", "by_model", "budgets"):
        assert [r["runs"] for r in live[key]] == [r["runs"] for r in rolled[key]], key
    # This page rolled up 48 hours (its cap) and read the rest from the runs.
    assert RollupState.objects.get(team=seeded.team).closed_until == at("2026-03-02T23:00")
    assert live["totals"]["cost"] == rolled["totals"]["cost"]


def test_a_page_rolls_up_at_most_48_hours_and_the_periodic_task_the_rest(make_team: Any) -> None:
    from dashboard.tasks import roll_up_all

    team, _ = make_team("Catching up")
    loop = seed_loop(team)
    now = timezone.now()
    ages = range(1, 24 * 5, 7)  # 17 runs, the oldest 113 hours ago
    for hours in ages:
        make_run(loop, now - timedelta(hours=hours), "succeeded", (1, 1), "0.01")
    first_hour = rollups.floor_hour(now - timedelta(hours=max(ages)))
    period = parse_period({"period": "7d"})
    assert services.totals(team, period)["runs"] == 17
    assert rollups.closed_until(team) == first_hour + timedelta(hours=48)
    assert services.totals(team, period)["runs"] == 17  # the next 48 hours, same figures
    assert rollups.closed_until(team) == first_hour + timedelta(hours=96)
    assert roll_up_all() == 1
    # (either side of an hour's turn between the test's clock and the task's)
    assert rollups.closed_until(team) in {
        rollups.floor_hour(now - rollups.GRACE),
        rollups.floor_hour(timezone.now() - rollups.GRACE),
    }
    assert services.totals(team, period)["runs"] == 17


def test_the_rollup_command_rebuilds_a_teams_rollups(seeded: Seeded) -> None:
    import io

    from django.core.management import CommandError, call_command

    out = io.StringIO()
    call_command("dashboard_rollup", "--rebuild", "--team", "acme", stdout=out)
    assert out.getvalue().startswith("acme: rolled up until 2026-03-05T07:00:00+00:00 in ")
    with pytest.raises(CommandError, match="no team with the slug 'nope'"):
        call_command("dashboard_rollup", "--team", "nope")

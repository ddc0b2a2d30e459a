"""What each run spent per model (runs.RunModel): recorded exactly, filtered by, backfilled."""

from __future__ import annotations

import importlib
import re
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dashboard import services
from dashboard.periods import parse_period

from .dashboard_fixtures import at, make_loop, make_run

pytestmark = pytest.mark.django_db


def step(model: str, tokens_in: int, tokens_out: int, cost: float | None, **extra: Any) -> Any:
    payload = {
        "key": f"s{tokens_in}",
        "label": None,
        "kind": "agent",
        "model": model,
        "tokens": {"input": tokens_in, "output": tokens_out},
        "cost": cost,
        **extra,
    }
    return ("step_finished", payload)


def usage(run: Any) -> dict[str, tuple[int, int, Decimal | None]]:
    return {u.model: (u.tokens_in, u.tokens_out, u.cost_usd) for u in run.model_usage.all()}


def listed_ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.content[:500]
    return [int(x) for x in re.findall(r'<a href="/runs/(\d+)/">#', response.content.decode())]


def test_a_two_model_run_is_split_exactly_by_the_steps_of_each_model(make_team: Any) -> None:
    from runs.recorder import record_events

    team, _ = make_team("Split")
    loop = make_loop(team, "two", grade="A", score=95, budget=False)
    run = make_run(loop, at("2026-03-01T10:00"), "running", cost="0")
    record_events(
        run.pk,
        [
            ("step_started", {"key": "a", "kind": "agent", "model": "gpt-4o-mini"}),
            step("gpt-4o-mini", 1000, 200, 0.0015),
            step("claude-sonnet-4-5", 3000, 700, 0.0195),
        ],
    )
    # A second batch: the same model again, a verification round (no model), a resumed
    # step (counted by the attempt that ran it), then the engine's totals.
    record_events(
        run.pk,
        [
            step("gpt-4o-mini", 500, 100, 0.00075),
            (
                "verification_round",
                {"round": 1, "tokens": {"input": 40, "output": 5}, "cost": 0.01},
            ),
            step("claude-sonnet-4-5", 9999, 9999, 9.0, resumed=True),
            (
                "run_finished",
                {"status": "succeeded", "tokens": {"input": 4540, "output": 1005}, "cost": 0.03175},
            ),
        ],
    )
    run.refresh_from_db()
    # gpt-4o-mini: 1000+500 in, 200+100 out, 0.0015+0.00075; claude: one step; "": the round.
    assert usage(run) == {
        "gpt-4o-mini": (1500, 300, Decimal("0.002250")),
        "claude-sonnet-4-5": (3000, 700, Decimal("0.019500")),
        "": (40, 5, Decimal("0.010000")),
    }
    assert (run.tokens_in, run.tokens_out, run.cost_usd) == (4540, 1005, Decimal("0.031750"))
    assert run.models_used == ["gpt-4o-mini", "claude-sonnet-4-5"]

    week = parse_period({"period": "custom", "since": "2026-03-01", "until": "2026-03-01"})
    rows = {r["model_name"]: r for r in services.by_model(team, week)}
    assert {m: (r["runs"], r["tokens_in"], r["cost"]) for m, r in rows.items()} == {
        "claude-sonnet-4-5": (1, 3000, Decimal("0.019500")),
        None: (1, 40, Decimal("0.010000")),
        "gpt-4o-mini": (1, 1500, Decimal("0.002250")),
    }
    assert sum(r["cost"] for r in rows.values()) == run.cost_usd


def test_a_step_of_unknown_price_leaves_only_its_models_cost_unknown(make_team: Any) -> None:
    from runs.recorder import record_events

    team, _ = make_team("Unknown")
    loop = make_loop(team, "u", grade="A", score=95, budget=False)
    run = make_run(loop, at("2026-03-01T10:00"), "running", cost="0")
    record_events(run.pk, [step("local/llama", 10, 10, None), step("gpt-4o", 10, 10, 0.5)])
    record_events(run.pk, [step("local/llama", 10, 10, 0.25)])
    assert usage(run) == {"local/llama": (20, 20, None), "gpt-4o": (10, 10, Decimal("0.5"))}


def test_the_model_filter_finds_each_teams_runs_of_a_model_and_no_other_teams(
    make_team: Any, client_for: Any
) -> None:
    found: dict[str, list[int]] = {}
    viewers = {}
    for name in ("Ant", "Bee", "Cat"):
        team, users = make_team(name, roles=["viewer"])
        viewers[name] = client_for(users["viewer"])
        loop = make_loop(team, "shared-name", grade="A", score=95, budget=False)
        both = make_run(loop, at("2026-03-02T10:00"), "succeeded", (30, 3), "0.3",
                        models=["gpt-4o", "o3"],
                        split={"gpt-4o": (10, 1, "0.1"), "o3": (20, 2, "0.2")})  # fmt: skip
        one = make_run(loop, at("2026-03-02T11:00"), "succeeded", (5, 5), "0.1", models=["o3"])
        make_run(loop, at("2026-03-02T12:00"), "succeeded", (5, 5), "0.1", models=["gpt-4o-mini"])
        found[name] = [one.pk, both.pk]
    for name, client in viewers.items():
        assert listed_ids(client.get("/runs/?model=o3")) == found[name]
        assert listed_ids(client.get("/runs/?model=gpt-4o")) == found[name][1:]
        data = client.get("/api/dashboard/runs?model=o3").json()
        assert (data["count"], [r["id"] for r in data["runs"]]) == (2, found[name])
        # Counted from RunModel alone (model and dates) or with the runs (other filters).
        for extra, count in (("&since=2026-03-02T10:30:00Z", 1), ("&status=succeeded", 2),
                             ("&status=failed", 0), ("&until=2026-03-01", 0)):  # fmt: skip
            data = client.get(f"/api/dashboard/runs?model=o3{extra}").json()
            assert (data["count"], len(data["runs"])) == (count, count), extra


def test_the_model_filtered_runs_list_costs_the_same_queries_for_more_runs(
    make_team: Any, client_for: Any
) -> None:
    team, users = make_team("Queries", roles=["viewer"])
    client = client_for(users["viewer"])
    loop = make_loop(team, "q", grade="A", score=95, budget=False)

    def add(n: int) -> None:
        for i in range(n):
            model = ["o3", "gpt-4o"][i % 2]
            make_run(loop, at(f"2026-03-02T{i % 24:02d}:00"), "succeeded", (1, 1), "0.01",
                     models=[model])  # fmt: skip

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/runs/?model=o3").status_code == 200
        return len(ctx.captured_queries)

    add(4)
    few = queries()
    add(60)
    assert queries() == few


def test_the_migration_backfills_the_split_from_the_stored_events(make_team: Any) -> None:
    from django.apps import apps

    from runs.models import RunEvent, RunModel

    backfill = importlib.import_module("runs.migrations.0004_backfill_runmodel").backfill
    team, _ = make_team("Old")
    loop = make_loop(team, "old", grade="A", score=95, budget=False)
    stepped = make_run(loop, at("2026-03-01T10:00"), "succeeded", (0, 0), "0", models=["a", "b"],
                       split={})  # fmt: skip
    for seq, (type_, payload) in enumerate(
        [step("a", 100, 10, 0.1), step("b", 200, 20, None), step("a", 1, 1, 0.2)], start=1
    ):
        RunEvent.objects.create(run=stepped, seq=seq, type=type_, payload=payload)
    single = make_run(loop, at("2026-03-01T11:00"), "succeeded", (7, 3), "0.07", models=["a"])
    several = make_run(loop, at("2026-03-01T12:00"), "failed", (8, 4), None, models=["a", "b"],
                       split={})  # fmt: skip
    RunModel.objects.all().delete()
    backfill(apps, None)
    assert usage(stepped) == {"a": (101, 11, Decimal("0.3")), "b": (200, 20, None)}
    assert usage(single) == {"a": (7, 3, Decimal("0.07"))}
    # No events to split by: the totals stay whole under "", and the filter still finds it.
    assert usage(several) == {"": (8, 4, None), "a": (0, 0, Decimal(0)), "b": (0, 0, Decimal(0))}

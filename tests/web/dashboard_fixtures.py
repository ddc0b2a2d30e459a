"""A seeded set of runs in two teams, with the dashboard figures computed by hand.

Team A ("Acme") has three loops and eleven runs: nine inside the week
2026-03-01..2026-03-07 (the ``PERIOD`` below) and one just outside each end.
Team B ("Bravo") has a loop of the same name with expensive runs in the same
week: none of its figures may show up in team A's.

    #  loop    status               created (UTC)     in/out tokens  cost   rounds models
    1  triage  succeeded            03-01 10:00       1000/500       0.10   1      gpt-4o-mini
    2  triage  succeeded            03-01 14:00       2000/1000      0.30   2      gpt-4o-mini, claude-sonnet-4-5 (*)
    3  triage  verification_failed  03-02 09:00       3000/1000      0.50   2      gpt-4o-mini
    4  review  failed               03-02 11:00       500/100        unknown 0     local/llama
    5  review  succeeded            03-03 08:00       800/200        0.05   0      gpt-4o-mini
    6  triage  budget_exceeded      03-04 12:00       40000/15000    0.80   1      gpt-4o-mini
    7  review  running              03-05 07:00       100/0          0.01   0      gpt-4o-mini
    8  triage  cancelled            03-05 20:00       0/0            0      0      -
    9  review  succeeded (dry run)  03-06 10:00       0/0            0      0      -
    -  triage  succeeded            02-28 23:59       (outside: cost 5.00)
    -  review  succeeded            03-08 00:00       (outside: cost 7.00)

(*) split per model (``RunModel``): gpt-4o-mini 500/200 tokens $0.05,
    claude-sonnet-4-5 1500/800 tokens $0.25. A run of one model has all of its
    figures under it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from .builder_fixtures import loop_yaml

PERIOD = {"period": "custom", "since": "2026-03-01", "until": "2026-03-07"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class Seeded:
    team: Any
    users: dict[str, Any]
    loops: dict[str, Any]
    runs: list[Any]  # the nine runs inside the period, in table order
    other_team: Any
    other_users: dict[str, Any]
    outside: list[Any] = field(default_factory=list)


def make_loop(team: Any, name: str, *, grade: str, score: int, budget: bool) -> Any:
    from builder.models import Loop, LoopVersion

    loop = Loop.objects.create(team=team, name=name, version=1, lrs_score=score, lrs_grade=grade)
    LoopVersion.objects.create(loop=loop, number=1, yaml=loop_yaml(name, budget=budget))
    return loop


def make_run(
    loop: Any,
    created: datetime,
    status: str,
    tokens: tuple[int, int] = (0, 0),
    cost: str | None = "0",
    rounds: int = 0,
    models: list[str] | None = None,
    trigger: str = "manual",
    user: Any = None,
    dry_run: bool = False,
    score: float | None = None,
    duration: timedelta | None = timedelta(minutes=2),
    split: dict[str, tuple[int, int, str | None]] | None = None,
) -> Any:
    """Create a run and its RunModel rows: *split* per model, or all under its one model."""
    from runs.models import TERMINAL, Run, RunModel

    finished = status in TERMINAL
    version = loop.versions.get(number=loop.version)
    run = Run.objects.create(
        team=loop.team,
        loop=loop,
        loop_version=version,
        loop_name=loop.name,
        version_number=version.number,
        loop_yaml=version.yaml,
        trigger_type=trigger,
        started_by=user,
        started_by_label=user.username if user else trigger,
        dry_run=dry_run,
        status=status,
        created_at=created,
        started_at=created + timedelta(seconds=5) if status != "queued" else None,
        finished_at=created + timedelta(seconds=5) + duration if finished and duration else None,
        tokens_in=tokens[0],
        tokens_out=tokens[1],
        cost_usd=Decimal(cost) if cost is not None else None,
        cost_known=cost is not None,
        verification_rounds=rounds,
        final_score=score,
        models_used=models or [],
    )
    if split is None and models:
        assert len(models) == 1, "a run of several models needs its split"
        split = {models[0]: (tokens[0], tokens[1], cost)}
    for model, (tokens_in, tokens_out, model_cost) in (split or {}).items():
        RunModel.objects.create(
            run=run,
            team=run.team,
            model=model,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=None if model_cost is None else Decimal(model_cost),
            created_at=created,
        )
    return run


def seed(make_team: Any) -> Seeded:
    """Create both teams, their loops and runs; return what tests need to point at."""
    team, users = make_team("Acme", roles=["owner", "editor", "viewer"])
    loops = {
        "triage": make_loop(team, "triage", grade="B", score=80, budget=True),
        "review": make_loop(team, "review", grade="D", score=55, budget=False),
        "legacy": make_loop(team, "legacy", grade="C", score=65, budget=False),
    }
    t, r = loops["triage"], loops["review"]
    mini, sonnet = "gpt-4o-mini", "claude-sonnet-4-5"
    runs = [
        make_run(t, at("2026-03-01T10:00"), "succeeded", (1000, 500), "0.10", 1, [mini],
                 trigger="cron", score=0.9),
        make_run(t, at("2026-03-01T14:00"), "succeeded", (2000, 1000), "0.30", 2, [mini, sonnet],
                 user=users["owner"], score=0.8, duration=timedelta(hours=1, minutes=3),
                 split={mini: (500, 200, "0.05"), sonnet: (1500, 800, "0.25")}),
        make_run(t, at("2026-03-02T09:00"), "verification_failed", (3000, 1000), "0.50", 2, [mini],
                 user=users["editor"], score=0.4),
        make_run(r, at("2026-03-02T11:00"), "failed", (500, 100), None, 0, ["local/llama"],
                 trigger="webhook"),
        make_run(r, at("2026-03-03T08:00"), "succeeded", (800, 200), "0.05", 0, [mini],
                 user=users["owner"]),
        make_run(t, at("2026-03-04T12:00"), "budget_exceeded", (40000, 15000), "0.80", 1, [mini],
                 trigger="cron", duration=timedelta(seconds=30)),
        make_run(r, at("2026-03-05T07:00"), "running", (100, 0), "0.01", 0, [mini],
                 user=users["editor"]),
        make_run(t, at("2026-03-05T20:00"), "cancelled", (0, 0), "0", 0, [], user=users["viewer"]),
        make_run(r, at("2026-03-06T10:00"), "succeeded", (0, 0), "0", 0, [], user=users["owner"],
                 dry_run=True),
    ]  # fmt: skip
    outside = [
        make_run(t, at("2026-02-28T23:59"), "succeeded", (9, 9), "5.00", 1, [mini]),
        make_run(r, at("2026-03-08T00:00"), "succeeded", (9, 9), "7.00", 1, [mini]),
    ]
    other_team, other_users = make_team("Bravo", roles=["owner"])
    b_loop = make_loop(other_team, "triage", grade="F", score=10, budget=True)
    for day in ("01", "03", "05"):
        make_run(b_loop, at(f"2026-03-{day}T12:00"), "failed", (99999, 99999), "100.00", 3,
                 [mini, "bravo-model"], user=other_users["owner"],
                 split={mini: (50000, 50000, "50.00"), "bravo-model": (49999, 49999, "50.00")})  # fmt: skip
    return Seeded(team, users, loops, runs, other_team, other_users, outside)

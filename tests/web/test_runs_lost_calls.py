"""Calls lost with a worker that died: recorded once, shown in the run's totals.

A worker killed mid-step leaves the step's model call paid but in no event;
the resumed run makes it again. ``runs.recorder.record_lost_calls`` records
such calls as one ``calls_lost`` event when the run is taken over. The events
here are the ones a worker writes, stored through the recorder; the real
SIGKILL scenario is in test_runs_workers.py.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from runs.models import Checkpoint, Run, RunModel, Status
from runs.recorder import record_events, record_lost_calls

from .runs_support import CollectingQueue, event_types, make_loop

pytestmark = pytest.mark.django_db

MODEL = "gpt-4o-mini"


@pytest.fixture
def team(make_team: Any) -> tuple[Any, dict[str, Any]]:
    return make_team("Acme", roles=["owner", "editor", "viewer"])


def running_run(team: Any, attempt: int = 1) -> Run:
    loop = make_loop(team, name=f"review-{Run.objects.count()}")
    version = loop.versions.get(number=loop.version)
    return Run.objects.create(
        team=team,
        loop=loop,
        loop_version=version,
        loop_name=loop.name,
        version_number=version.number,
        loop_yaml=version.yaml,
        trigger_type="manual",
        status=Status.RUNNING,
        attempt=attempt,
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )


def started(label: str, round_: int = 1, **extra: Any) -> tuple[str, dict[str, Any]]:
    payload = {"key": f"k.{label}", "label": label, "kind": "agent", "round": round_}
    return ("step_started", {"model": MODEL, **payload, **extra})


def finished(label: str, cost: float | None = 0.01, round_: int = 1, **extra: Any) -> Any:
    payload = {"key": f"k.{label}", "label": label, "kind": "agent", "round": round_}
    tokens = {"input": 100, "output": 20}
    return ("step_finished", {"model": MODEL, "tokens": tokens, "cost": cost, **payload, **extra})


def recovered(run: Run, attempt: int) -> None:
    """What recovery does before recording lost calls: take the run over, say so."""
    Run.objects.filter(pk=run.pk).update(attempt=attempt, worker="recovering")
    record_events(run.pk, [("run_recovered", {"attempt": attempt})])


def lost_events(run: Run) -> list[dict[str, Any]]:
    return list(run.events.filter(type="calls_lost").values_list("payload", flat=True))


def test_a_step_in_flight_when_its_worker_died_is_one_lost_call_recorded_once(
    team: Any, client_for: Any
) -> None:
    acme, users = team
    run = running_run(acme)
    record_events(run.pk, [started("One"), finished("One", 0.0123), started("Two")])
    recovered(run, 2)

    assert record_lost_calls(run.pk) == 1
    assert record_lost_calls(run.pk) == 0  # the same recovery again: nothing new

    run.refresh_from_db()
    assert event_types(run)[-2:] == ["run_recovered", "calls_lost"]
    assert lost_events(run) == [
        {
            "calls": 1,
            "steps": [{"key": "k.Two", "label": "Two", "round": 1, "model": MODEL}],
            "attempt": 1,
        }
    ]
    assert (run.lost_calls, run.cost_known, run.cost_usd) == (1, False, Decimal("0.0123"))
    assert run.cost_label == "$0.0123 + 1 lost call (cost unknown)"
    body = client_for(users["viewer"]).get(f"/api/runs/{run.pk}").json()
    assert {k: body[k] for k in ("lost_calls", "cost_known", "cost_usd", "cost_label")} == {
        "lost_calls": 1,
        "cost_known": False,
        "cost_usd": 0.0123,
        "cost_label": "$0.0123 + 1 lost call (cost unknown)",
    }
    page = client_for(users["viewer"]).get(f"/runs/{run.pk}/").content.decode()
    assert "$0.0123 + 1 lost call (cost unknown)" in page


def test_the_resumed_run_adds_its_known_costs_and_never_ends_with_a_whole_cost(
    team: Any,
) -> None:
    acme, _ = team
    run = running_run(acme)
    record_events(run.pk, [started("One"), finished("One", 0.01), started("Two")])
    recovered(run, 2)
    record_lost_calls(run.pk)
    # The resumed attempt: One from its checkpoint (counted once already), Two made again.
    record_events(
        run.pk,
        [
            ("step_started", {"key": "k.One", "label": "One", "kind": "agent", "round": 1}),
            finished("One", 0.01, resumed=True),
            started("Two"),
            finished("Two", 0.02),
        ],
    )
    run.refresh_from_db()
    assert (run.cost_usd, run.cost_known, run.tokens_in) == (Decimal("0.03"), False, 200)
    # The engine's totals: every price known, one lost call (in requests, in no total).
    record_events(
        run.pk,
        [
            (
                "run_finished",
                {
                    "status": "succeeded",
                    "tokens": {"input": 200, "output": 40},
                    "cost": 0.03,
                    "cost_known": True,
                    "requests": 3,
                    "lost_calls": 1,
                },
            )
        ],
    )
    run.refresh_from_db()
    assert (run.tokens_in, run.tokens_out, run.cost_usd) == (200, 40, Decimal("0.03"))
    assert (run.cost_known, run.lost_calls) == (False, 1)
    assert run.cost_label == "$0.0300 + 1 lost call (cost unknown)"


def test_parallel_steps_in_flight_each_count_but_not_a_finished_or_checkpointed_one(
    team: Any,
) -> None:
    acme, _ = team
    run = running_run(acme)
    record_events(
        run.pk,
        [
            ("step_started", {"key": "k.group", "label": "Group", "kind": "parallel"}),
            started("A"),
            started("B", model="claude-sonnet-4-5"),
            started("C"),
            started("D"),
            started("E"),
            finished("A"),
            # C's first call failed and is being retried: still calling.
            (
                "step_failed",
                {"key": "k.C", "label": "C", "kind": "agent", "round": 1, "will_retry": True},
            ),
            # E failed for good: no call in flight.
            ("step_failed", {"key": "k.E", "label": "E", "kind": "agent", "round": 1}),
        ],
    )
    # D answered and its checkpoint was saved, but its step_finished died with the worker.
    Checkpoint.objects.create(run=run, key="r1:k.D", data={"key": "r1:k.D", "output": "d"})
    recovered(run, 2)

    assert record_lost_calls(run.pk) == 2
    (lost,) = lost_events(run)
    assert [(s["label"], s["model"]) for s in lost["steps"]] == [
        ("B", "claude-sonnet-4-5"),
        ("C", MODEL),
    ]
    run.refresh_from_db()
    assert run.lost_calls == 2
    # Each lost call's model has an unknown cost in the run's split per model.
    usage = {u.model: u.cost_usd for u in RunModel.objects.filter(run=run)}
    assert usage == {MODEL: None, "claude-sonnet-4-5": None}


def test_each_recovery_counts_only_the_calls_of_the_attempt_that_died(team: Any) -> None:
    acme, _ = team
    run = running_run(acme)
    record_events(run.pk, [started("One"), started("Two", round_=1)])
    recovered(run, 2)
    assert record_lost_calls(run.pk) == 2
    # Attempt 2 makes One again and finishes it, starts Three, and dies too.
    record_events(run.pk, [started("One"), finished("One"), started("Three")])
    recovered(run, 3)
    assert record_lost_calls(run.pk) == 1
    assert record_lost_calls(run.pk, attempt=2) == 0
    assert record_lost_calls(run.pk, attempt=1) == 0
    run.refresh_from_db()
    assert [e["attempt"] for e in lost_events(run)] == [1, 2]
    assert [s["label"] for s in lost_events(run)[1]["steps"]] == ["Three"]
    assert run.lost_calls == 3
    assert run.cost_label == "$0.0100 + 3 lost calls (cost unknown)"


def test_a_run_with_an_unknown_price_and_a_lost_call_says_both_are_unknown(team: Any) -> None:
    acme, _ = team
    run = running_run(acme)
    record_events(run.pk, [started("One"), finished("One", None), started("Two")])
    recovered(run, 2)
    record_lost_calls(run.pk)
    record_events(run.pk, [started("Two"), finished("Two", 0.5)])
    run.refresh_from_db()
    assert (run.cost_usd, run.cost_known, run.lost_calls) == (None, False, 1)
    assert run.cost_label == "unknown (and 1 lost call)"


def test_a_run_failed_without_a_worker_keeps_the_known_part_of_its_cost(team: Any) -> None:
    from runs.lifecycle import finish

    acme, _ = team
    run = running_run(acme)
    record_events(run.pk, [started("One"), finished("One", 0.25), started("Two")])
    recovered(run, 2)
    record_lost_calls(run.pk)
    run.refresh_from_db()
    assert finish(run, Status.FAILED, "gave up", announce=True)
    run.refresh_from_db()
    assert (run.status, run.cost_usd, run.cost_known) == ("failed", Decimal("0.25"), False)
    assert run.cost_label == "$0.2500 + 1 lost call (cost unknown)"


def test_nothing_is_lost_by_a_run_that_was_never_recovered_or_had_nothing_in_flight(
    team: Any,
) -> None:
    acme, _ = team
    fresh = running_run(acme)
    record_events(fresh.pk, [started("One")])
    assert record_lost_calls(fresh.pk) == 0  # attempt 1 is still its worker's
    idle = running_run(acme)
    record_events(idle.pk, [started("One"), finished("One")])
    recovered(idle, 2)
    assert record_lost_calls(idle.pk) == 0
    for run in (fresh, idle):
        run.refresh_from_db()
        assert (run.lost_calls, run.cost_known, lost_events(run)) == (0, True, [])


def test_recovery_records_the_calls_of_the_worker_it_takes_a_run_from(
    team: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runs import lifecycle

    queue = CollectingQueue()
    monkeypatch.setattr(lifecycle, "_queue", queue)
    acme, _ = team
    run = running_run(acme)
    record_events(run.pk, [started("One")])
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))

    assert lifecycle.recover()["resumed"] == [run.pk]
    assert queue.calls == [(run.pk, 2)]
    run.refresh_from_db()
    assert event_types(run)[-2:] == ["run_recovered", "calls_lost"]
    assert run.lost_calls == 1


def test_the_dashboard_counts_a_run_with_lost_calls_as_of_unknown_cost(
    team: Any, client_for: Any
) -> None:
    from dashboard import services
    from dashboard.periods import parse_period

    acme, users = team
    run = running_run(acme)
    record_events(run.pk, [started("One"), finished("One", 0.01), started("Two")])
    recovered(run, 2)
    record_lost_calls(run.pk)
    day = timezone.now().date().isoformat()
    period = parse_period({"period": "custom", "since": day, "until": day})
    totals = services.totals(acme, period)
    assert (totals["runs"], totals["known_cost_runs"], totals["unknown_cost_runs"]) == (1, 0, 1)
    assert [(r["model_name"], r["cost"]) for r in services.by_model(acme, period)] == [
        (MODEL, None)
    ]
    # Listed among the runs of unknown cost, with the part that is known.
    listed = client_for(users["viewer"]).get("/runs/?cost=unknown").content.decode()
    assert f'href="/runs/{run.pk}/"' in listed
    assert "$0.0100 + 1 lost call" in listed

"""A cron trigger's catch-up settings, and the due times of a schedule in a time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from loopkit import spec
from loopkit.engine.payloads import due_times
from loopkit.errors import SpecError
from loopkit.yamlio import dump, load_loop

BASE = "name: x\npipeline:\n  - prompt: a\ntrigger:\n  type: cron\n  schedule: '0 * * * *'\n"


def cron(schedule: str, zone: str = "Europe/Berlin") -> spec.CronTrigger:
    return spec.CronTrigger(type="cron", schedule=schedule, timezone=zone)


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def iso(moments: list[datetime]) -> list[str]:
    return [moment.isoformat() for moment in moments]


# ── The loop format ──────────────────────────────────────────────────────


def test_catch_up_settings_load_and_round_trip_through_yaml() -> None:
    loop = load_loop(BASE + "  catchUp: latest\n  catchUpMinutes: 90\n", "x.yaml")
    assert loop.trigger == spec.CronTrigger(
        type="cron", schedule="0 * * * *", catch_up="latest", catch_up_minutes=90
    )
    assert loop.trigger.catch_up_window == timedelta(minutes=90)
    text = dump(loop)
    assert "catchUp: latest\n" in text and "catchUpMinutes: 90\n" in text
    assert load_loop(text, "x.yaml") == loop


def test_without_catch_up_settings_each_missed_due_time_of_the_last_5_minutes_fires() -> None:
    trigger = load_loop(BASE, "x.yaml").trigger
    assert isinstance(trigger, spec.CronTrigger)
    assert trigger.catch_up is None  # all
    assert trigger.catch_up_window == timedelta(minutes=5)
    assert "catchUp" not in dump(load_loop(BASE, "x.yaml"))


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (
            "catchUp: sometimes",
            "7:12: input should be 'all' or 'latest', got 'sometimes' (trigger.catchUp)",
        ),
        (
            "catchUpMinutes: 0",
            "7:19: input should be greater than or equal to 1, got 0 (trigger.catchUpMinutes)",
        ),
        (
            "catchUpMinutes: 10081",
            "7:19: input should be less than or equal to 10080, got 10081 (trigger.catchUpMinutes)",
        ),
        (
            "catchUpMinutes: '30'",
            "7:19: expected a whole number, got '30' (trigger.catchUpMinutes)",
        ),
    ],
)
def test_bad_catch_up_settings_are_refused(line: str, problem: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_loop(BASE + f"  {line}\n", "x.yaml")
    assert [str(found) for found in caught.value.problems] == [f"x.yaml:{problem}"]


def test_the_json_schema_describes_the_catch_up_settings() -> None:
    fields = spec.json_schema()["$defs"]["CronTrigger"]["properties"]
    assert fields["catchUp"]["anyOf"][0]["enum"] == ["all", "latest"]
    assert fields["catchUpMinutes"]["anyOf"][0] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 7 * 24 * 60,
    }


# ── Due times ────────────────────────────────────────────────────────────


def test_due_times_are_the_schedules_instants_after_the_start_up_to_the_end() -> None:
    trigger = cron("*/15 * * * *", "UTC")
    assert iso(due_times(trigger, at(2026, 11, 20, 9, 45), at(2026, 11, 20, 10, 30))) == [
        "2026-11-20T10:00:00+00:00",
        "2026-11-20T10:15:00+00:00",
        "2026-11-20T10:30:00+00:00",
    ]


def test_a_wall_time_the_autumn_change_repeats_is_due_at_both_instants() -> None:
    # Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens at 00:30 and 01:30 UTC.
    daily = due_times(cron("30 2 * * *"), at(2026, 10, 24, 12), at(2026, 10, 25, 12))
    assert iso(daily) == ["2026-10-25T00:30:00+00:00", "2026-10-25T01:30:00+00:00"]
    # Starting in the repeated hour (02:10 CET, the second time round) misses neither 02:00.
    hourly = due_times(cron("0 * * * *"), at(2026, 10, 24, 23, 30), at(2026, 10, 25, 1, 10))
    assert iso(hourly) == ["2026-10-25T00:00:00+00:00", "2026-10-25T01:00:00+00:00"]


def test_a_wall_time_the_spring_change_skips_is_due_later_by_the_gap() -> None:
    # Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 is due at 03:30 CEST (01:30 UTC).
    daily = due_times(cron("30 2 * * *"), at(2026, 3, 28, 12), at(2026, 3, 29, 12))
    assert iso(daily) == ["2026-03-29T01:30:00+00:00"]
    # A start just after the change still finds it.
    assert iso(due_times(cron("30 2 * * *"), at(2026, 3, 29, 1, 20), at(2026, 3, 29, 1, 40))) == [
        "2026-03-29T01:30:00+00:00"
    ]


#: Changes of UTC offset: spring and autumn, by an hour and (Lord Howe) by half an hour.
CHANGES = [
    ("Europe/Berlin", at(2026, 3, 29, 1)),
    ("Europe/Berlin", at(2026, 10, 25, 1)),
    ("America/New_York", at(2026, 3, 8, 7)),
    ("America/New_York", at(2026, 11, 1, 6)),
    ("Australia/Lord_Howe", at(2026, 10, 3, 15, 30)),
    ("Australia/Lord_Howe", at(2026, 4, 4, 15)),
]


@pytest.mark.parametrize(("zone", "change"), CHANGES)
@pytest.mark.parametrize("schedule", ["* * * * *", "*/15 * * * *", "0 * * * *", "30 2 * * *"])
def test_minute_ticks_across_a_change_of_offset_see_each_due_time_once(
    zone: str, change: datetime, schedule: str
) -> None:
    trigger = cron(schedule, zone)
    start, end = change - timedelta(hours=3), change + timedelta(hours=3)
    ticked: list[datetime] = []
    tick = start
    while tick < end:
        ticked += due_times(trigger, tick, tick + timedelta(minutes=1))
        tick += timedelta(minutes=1)
    whole = due_times(trigger, start, end)
    assert ticked == whole
    assert len(set(whole)) == len(whole)

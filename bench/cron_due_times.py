"""Time ``due_times``, what the cron tick computes for each cron loop (in process).

Prints one JSON document with the median time per call in milliseconds, in
Europe/Berlin: a steady tick (the minute since the loop's latest firing), a
tick beside the autumn change (its walk covers an extra hour of wall-clock
times), and the catch-up tick after a day and a week without workers (every
due time of the window is listed before the latest ones are kept).

    .venv/bin/python bench/cron_due_times.py [--repeat 50]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from datetime import UTC, datetime, timedelta

from loopkit import spec
from loopkit.engine.payloads import due_times

NOW = datetime(2026, 11, 20, 10, 0, 5, tzinfo=UTC)
AUTUMN = datetime(2026, 10, 25, 1, 30, 5, tzinfo=UTC)  # Berlin's second 02:30


def median_ms(schedule: str, after: datetime, until: datetime, repeat: int) -> float:
    trigger = spec.CronTrigger(type="cron", schedule=schedule, timezone="Europe/Berlin")
    due_times(trigger, after, until)  # warm
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        due_times(trigger, after, until)
        samples.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(samples), 3)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=50)
    repeat = parser.parse_args().repeat
    minute, day, week = timedelta(minutes=1), timedelta(days=1), timedelta(days=7)
    result: dict[str, object] = {
        "benchmark": "cron_due_times",
        "unit": "ms per call (median)",
        "load_avg": round(os.getloadavg()[0], 2),
    }
    for name, schedule in (("every_minute", "* * * * *"), ("hourly", "0 * * * *")):
        result[name] = {
            "steady_tick": median_ms(schedule, NOW - minute, NOW, repeat),
            "tick_at_autumn_change": median_ms(schedule, AUTUMN - minute, AUTUMN, repeat),
            "catch_up_1_day": median_ms(schedule, NOW - day, NOW, max(repeat // 10, 3)),
            "catch_up_1_week": median_ms(schedule, NOW - week, NOW, max(repeat // 50, 3)),
        }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

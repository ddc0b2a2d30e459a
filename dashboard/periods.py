"""The period a dashboard covers: 24 h, 7 d, 30 d, or a custom date range.

A period is a half-open interval ``[start, end)`` of UTC datetimes and a bucket
size for its time series (an hour for up to three days, else a day).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.utils import timezone

PRESETS: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
PRESET_LABELS: dict[str, str] = {"24h": "24 h", "7d": "7 days", "30d": "30 days"}
DEFAULT_PERIOD = "7d"
MAX_CUSTOM_DAYS = 366
HOURLY_UP_TO = timedelta(days=3)


class PeriodError(ValueError):
    """The period parameters are not understood; the message says what to send."""


@dataclass(frozen=True)
class Period:
    key: str  # "24h", "7d", "30d" or "custom"
    start: datetime
    end: datetime
    bucket: str  # "hour" or "day"

    @property
    def label(self) -> str:
        if self.key in PRESET_LABELS:
            return f"last {PRESET_LABELS[self.key]}"
        last_day = (self.end - timedelta(microseconds=1)).date()
        return f"{self.start.date().isoformat()} to {last_day.isoformat()}"

    def as_dict(self) -> dict[str, str]:
        return {
            "key": self.key,
            "label": self.label,
            "start": iso(self.start),
            "end": iso(self.end),
            "bucket": self.bucket,
        }

    def buckets(self) -> Iterator[datetime]:
        """Yield the start of every bucket that overlaps the period, oldest first."""
        step = timedelta(hours=1) if self.bucket == "hour" else timedelta(days=1)
        current = truncate(self.start, self.bucket)
        while current < self.end:
            yield current
            current += step

    def as_params(self) -> dict[str, str]:
        """Return the query parameters that select this period again."""
        if self.key == "custom":
            last_day = (self.end - timedelta(microseconds=1)).date()
            return {
                "period": "custom",
                "since": self.start.date().isoformat(),
                "until": last_day.isoformat(),
            }
        return {"period": self.key}

    def runs_params(self) -> dict[str, str]:
        """Return the runs-list filter for exactly this interval (links from figures)."""
        return {"since": iso(self.start), "until": iso(self.end)}


def iso(moment: datetime) -> str:
    """Return *moment* as a compact UTC ISO string (``2026-11-24T15:00:00Z``)."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def truncate(moment: datetime, bucket: str) -> datetime:
    moment = moment.astimezone(UTC)
    if bucket == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def parse_period(params: Mapping[str, Any], now: datetime | None = None) -> Period:
    """Return the period chosen by ``period`` (and ``since``/``until`` for custom).

    Custom ranges are whole UTC days, ``until`` inclusive; raise PeriodError
    for anything else.
    """
    now = now or timezone.now()
    key = str(params.get("period") or DEFAULT_PERIOD).strip()
    if key in PRESETS:
        length = PRESETS[key]
        return Period(key, now - length, now, "hour" if length <= HOURLY_UP_TO else "day")
    if key != "custom":
        raise PeriodError(f"period must be one of 24h, 7d, 30d or custom, not {key!r}")
    days: dict[str, date] = {}
    for name in ("since", "until"):
        raw = str(params.get(name) or "").strip()
        if not raw:
            raise PeriodError(f"a custom period needs {name} as a date like 2026-01-31")
        try:
            days[name] = date.fromisoformat(raw)
        except ValueError:
            raise PeriodError(f"{name} must be a date like 2026-01-31, not {raw!r}") from None
    if days["until"] < days["since"]:
        raise PeriodError("until must be on or after since")
    span = (days["until"] - days["since"]).days + 1
    if span > MAX_CUSTOM_DAYS:
        raise PeriodError(f"a custom period covers at most {MAX_CUSTOM_DAYS} days, not {span}")
    start = _day_start(days["since"])
    end = _day_start(days["until"] + timedelta(days=1))
    return Period("custom", start, end, "hour" if end - start <= HOURLY_UP_TO else "day")

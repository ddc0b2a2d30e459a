"""What a run reads as ``trigger.payload``, and what a dry run gets without one.

A webhook delivers the sender's JSON body. A cron tick, another loop's
completion and a custom event deliver the payloads built here; the web app's
triggers build them with these same functions, so a dry run's sample has the
shape a real run receives. ``sample_payload`` is that sample: a real GitHub
delivery for a webhook event (``loopkit.webhooks``), the cron tick of the
latest due time, a completion or custom event; for anything else (a manual
trigger, an event GitHub does not publish) a ``Placeholder``, which renders
every path read from it as ``<trigger.payload...>``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from loopkit import spec

__all__ = [
    "Placeholder",
    "SampleDict",
    "SampleList",
    "completion_payload",
    "cron_payload",
    "custom_event_payload",
    "due_times",
    "latest_due_time",
    "lenient",
    "sample_payload",
]


class Placeholder:
    """A stand-in for data a dry run does not have (a webhook payload).

    Any attribute or item of it is another placeholder, and it renders as
    its own path in angle brackets: ``<trigger.payload.pull_request.number>``.
    It stands for data a real run has, so it is true (``{% if trigger.payload %}``
    takes the branch a real run would), and an empty list to a ``for`` loop.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def __getattr__(self, name: str) -> Placeholder:
        if name.startswith("_"):
            raise AttributeError(name)
        return Placeholder(f"{self.path}.{name}")

    def __getitem__(self, key: Any) -> Placeholder:
        return Placeholder(f"{self.path}[{key!r}]")

    def __str__(self) -> str:
        return f"<{self.path}>"

    def __iter__(self) -> Any:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __bool__(self) -> bool:
        return True


class SampleDict(dict[str, Any]):
    """A sample payload's object: a key the sample lacks is a ``Placeholder``.

    GitHub's example of one delivery lacks keys other deliveries of the event
    have (``label`` outside a ``labeled`` action, ``changes`` outside ``edited``):
    the loop's references were checked against every variant, so a dry run
    reads what its sample lacks as a placeholder instead of failing.
    """

    __slots__ = ("path",)

    def __init__(self, data: dict[str, Any], path: str) -> None:
        super().__init__(data)
        self.path = path

    def __missing__(self, key: str) -> Placeholder:
        return Placeholder(f"{self.path}.{key}")


class SampleList(list[Any]):
    """A sample payload's array: an index past its end is a ``Placeholder``
    (GitHub's push example has no commits; a real push usually has some)."""

    __slots__ = ("path",)

    def __init__(self, data: list[Any], path: str) -> None:
        super().__init__(data)
        self.path = path

    def __getitem__(self, index: Any) -> Any:
        try:
            return super().__getitem__(index)
        except IndexError:
            return Placeholder(f"{self.path}[{index!r}]")


def lenient(value: Any, path: str = "trigger.payload") -> Any:
    """Return a sample ``value`` whose missing keys, indexes and nulls read as placeholders."""
    if isinstance(value, dict):
        return SampleDict({k: lenient(v, f"{path}.{k}") for k, v in value.items()}, path)
    if isinstance(value, list):
        return SampleList([lenient(v, f"{path}[{i}]") for i, v in enumerate(value)], path)
    if value is None:
        return Placeholder(path)
    return value


def latest_due_time(trigger: spec.CronTrigger, now: datetime) -> datetime:
    """Return the latest due time of ``trigger``'s schedule at or before ``now`` (UTC-aware)."""
    from croniter import croniter

    zone = ZoneInfo(trigger.timezone or "UTC")
    local_now = now.astimezone(zone)
    # croniter's get_prev excludes an exact match: start one second later.
    prev = croniter(trigger.schedule, local_now + timedelta(seconds=1)).get_prev(datetime)
    return prev.astimezone(ZoneInfo("UTC"))


def due_times(trigger: spec.CronTrigger, after: datetime, until: datetime) -> list[datetime]:
    """Return the due times of ``trigger``'s schedule in (``after``, ``until``], oldest first.

    A due time is a wall-clock time in the schedule's zone (UTC-aware here): one
    the autumn change repeats is due at each of its two instants; one the spring
    change skips is due as Python reads it, later by the gap (02:30 → 03:30).
    Assumes at most one change of UTC offset in the day before ``after`` and up to ``until``.
    """
    from croniter import croniter

    zone = ZoneInfo(trigger.timezone or "UTC")
    # Walk the wall-clock times (naive: croniter is exact on them) of every UTC offset in
    # play, a day earlier's too: a time the spring change skipped is due after the change.
    moments = (after - timedelta(days=1), after, until)
    offsets = [moment.astimezone(zone).utcoffset() or timedelta() for moment in moments]
    low = after.astimezone(UTC).replace(tzinfo=None) + min(offsets)
    high = until.astimezone(UTC).replace(tzinfo=None) + max(offsets)
    walls = croniter(trigger.schedule, low)
    found: set[datetime] = set()
    while (wall := walls.get_next(datetime)) <= high:
        first = wall.replace(tzinfo=zone).astimezone(UTC)
        second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
        # A repeated wall time has a later second instant; a skipped one an earlier, unreal one.
        instants = (first, second) if first <= second else (first,)
        found.update(when for when in instants if after < when <= until)
    return sorted(found)


def cron_payload(trigger: spec.CronTrigger, due: datetime) -> dict[str, Any]:
    """Return the payload of the cron tick due at ``due``."""
    return {
        "schedule": trigger.schedule,
        "timezone": trigger.timezone or "UTC",
        "due_time": due.isoformat(),
    }


def completion_payload(loop: str, run_id: Any, status: str, depth: int) -> dict[str, Any]:
    """Return the payload of a run started by the completion of run ``run_id`` of ``loop``.

    ``depth`` counts the runs of the chain so far (1 for a run started by a run
    that no event started), so that a cycle of loops stops.
    """
    return {"loop": loop, "run_id": run_id, "status": status, "depth": depth}


def custom_event_payload(event: str, data: Any, depth: int = 1) -> dict[str, Any]:
    """Return the payload of a run started by the custom event ``event`` carrying ``data``."""
    return {"event": event, "data": data, "depth": depth}


def sample_payload(trigger: spec.Trigger | None, now: datetime | None = None) -> Any:
    """Return a realistic ``trigger.payload`` for a dry run of a loop with ``trigger``.

    A webhook trigger gets GitHub's example delivery of its event (for its
    first listed action; what the example lacks or leaves null reads as a
    ``Placeholder``, see ``lenient``); an event or cron trigger what the web app's trigger
    sends; a manual trigger, or an event without a known example, a
    ``Placeholder``.
    """
    if isinstance(trigger, spec.WebhookTrigger):
        from loopkit.webhooks import sample_payload as github_sample

        found = github_sample(trigger.event, trigger.actions[0] if trigger.actions else None)
        if found is not None:
            return lenient(found)
    elif isinstance(trigger, spec.CronTrigger):
        return cron_payload(trigger, latest_due_time(trigger, now or datetime.now(UTC)))
    elif isinstance(trigger, spec.EventTrigger):
        if trigger.loop is not None:
            status = trigger.status[0] if trigger.status else "succeeded"
            run_id = Placeholder("trigger.payload.run_id")
            return completion_payload(trigger.loop, run_id, status, depth=1)
        return custom_event_payload(str(trigger.event), Placeholder("trigger.payload.data"))
    return Placeholder("trigger.payload")

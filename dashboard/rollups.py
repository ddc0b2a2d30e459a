"""Tally runs per hour, keep finished hours as rollup rows, and read a period back.

Reading a period costs a fixed number of queries whatever the number of runs:
the rollup rows of its closed hours (at most one per loop version and per
model per hour) and the runs of its open parts (the partial first hour, the
hours after ``closed_until``). Runs are tallied in Python, the same way for
both, so a figure is the same whether its hour is rolled up or not.

By model, a run counts once under each model it used, with that model's own
tokens and cost (``runs.RunModel``, recorded per step), so the models' tokens
and costs add up to the totals; what the engine records without a model
(verification rounds, runs that used none) is under "".

A run inserted later with a ``created_at`` inside an hour already rolled up
(an import, a test fixture) is not counted until ``rebuild(team)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import F, Max, Min, Q, QuerySet, Sum
from django.utils import timezone

from dashboard.models import LoopHour, ModelHour, RollupState
from runs.models import Run, RunModel

HOUR = timedelta(hours=1)
# A page request rolls up at most this many hours (the rest is read from the runs
# this time); the periodic task (dashboard/tasks.py) keeps up with the rest.
REQUEST_MAX_HOURS = 48
# An hour is rolled up only this long after it ended: a run finishing right at the
# end of the hour has its totals and status written by then.
GRACE = timedelta(minutes=2)
TERMINAL = ("succeeded", "failed", "verification_failed", "budget_exceeded", "cancelled")
ACTIVE = ("queued", "running", "waiting_for_approval")
STATUS_COUNTERS = {
    "succeeded": "succeeded",
    "failed": "failed",
    "verification_failed": "verification_failed",
    "budget_exceeded": "budget_exceeded",
    "cancelled": "cancelled",
}
RUN_FIELDS = (
    "id",
    "created_at",
    "loop_id",
    "loop_version_id",
    "loop_name",
    "status",
    "verification_rounds",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "cost_known",
)
USAGE_FIELDS = ("run_id", "model", "tokens_in", "tokens_out", "cost_usd")
Usage = dict[int, list[dict[str, Any]]]  # run id -> its RunModel rows


def model_parts(run: dict[str, Any], usage: Usage) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (model, the run with that model's tokens and cost) for each model of *run*.

    A run without RunModel rows (queued, or no model and no tokens) is one part under "".
    """
    rows = usage.get(run["id"])
    if not rows:
        yield "", run
        return
    for row in rows:
        cost = row["cost_usd"]
        yield (
            row["model"],
            {
                **run,
                "tokens_in": row["tokens_in"],
                "tokens_out": row["tokens_out"],
                "cost_usd": cost,
                "cost_known": cost is not None,
            },
        )


def usage_of(rows: Iterable[dict[str, Any]]) -> Usage:
    """Return RunModel rows (``values(*USAGE_FIELDS)``) grouped by run."""
    usage: Usage = {}
    for row in rows:
        usage.setdefault(row["run_id"], []).append(row)
    return usage


@dataclass
class Tally:
    """Counters of a group of runs. ``cost`` sums the known costs only."""

    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    verification_failed: int = 0
    budget_exceeded: int = 0
    cancelled: int = 0
    active: int = 0
    verified_runs: int = 0  # runs with verification rounds
    verified_passed: int = 0  # ...that succeeded
    verified_failed: int = 0  # ...that ended verification_failed
    rounds: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: Decimal = field(default_factory=Decimal)
    known_cost_runs: int = 0
    unknown_cost_runs: int = 0
    peak_cost: Decimal | None = None
    peak_tokens: int | None = None

    def add_run(self, run: dict[str, Any]) -> None:
        status = run["status"]
        self.runs += 1
        if status in STATUS_COUNTERS:
            setattr(self, status, getattr(self, status) + 1)
        elif status in ACTIVE:
            self.active += 1
        if run["verification_rounds"] > 0:
            self.verified_runs += 1
            self.rounds += run["verification_rounds"]
            if status == "succeeded":
                self.verified_passed += 1
            elif status == "verification_failed":
                self.verified_failed += 1
        self.tokens_in += run["tokens_in"]
        self.tokens_out += run["tokens_out"]
        tokens = run["tokens_in"] + run["tokens_out"]
        self.peak_tokens = tokens if self.peak_tokens is None else max(self.peak_tokens, tokens)
        if run["cost_known"] and run["cost_usd"] is not None:
            cost = Decimal(run["cost_usd"])
            self.cost += cost
            self.known_cost_runs += 1
            self.peak_cost = cost if self.peak_cost is None else max(self.peak_cost, cost)
        else:
            self.unknown_cost_runs += 1

    def merge(self, other: Tally) -> None:
        for f in COUNTER_FIELDS:
            setattr(self, f, getattr(self, f) + getattr(other, f))
        for f in ("peak_cost", "peak_tokens"):
            mine, theirs = getattr(self, f), getattr(other, f)
            if theirs is not None and (mine is None or theirs > mine):
                setattr(self, f, theirs)

    @classmethod
    def of(cls, row: dict[str, Any]) -> Tally:
        """Return the tally of a row of summed rollup counters."""
        tally = cls(**{f: row[f] for f in COUNTER_FIELDS})
        tally.cost = Decimal(row["cost"] or 0)
        tally.peak_cost = row.get("peak_cost")
        tally.peak_tokens = row.get("peak_tokens")
        return tally

    def counters(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in COUNTER_FIELDS}


COUNTER_FIELDS = tuple(f.name for f in fields(Tally) if not f.name.startswith("peak_"))

LoopKey = tuple[datetime, Any, Any]  # (bucket start, loop_id, loop_version_id)


@dataclass
class Tallies:
    """Runs tallied per (bucket, loop, version) and per model; buckets are hours or days."""

    bucket: str = "hour"
    by_loop: dict[LoopKey, Tally] = field(default_factory=dict)
    loop_names: dict[Any, str] = field(default_factory=dict)
    by_model: dict[str, Tally] = field(default_factory=dict)

    def bucket_of(self, moment: datetime) -> datetime:
        hour = floor_hour(moment)
        return hour if self.bucket == "hour" else hour.replace(hour=0)

    def add_runs(self, runs: Iterable[dict[str, Any]], usage: Usage | None = None) -> None:
        """Tally *runs* per loop and, given their *usage* (RunModel rows), per model."""
        for run in runs:
            key = (self.bucket_of(run["created_at"]), run["loop_id"], run["loop_version_id"])
            self.by_loop.setdefault(key, Tally()).add_run(run)
            self.loop_names[run["loop_id"]] = run["loop_name"]
            if usage is not None:
                for model, part in model_parts(run, usage):
                    self.by_model.setdefault(model, Tally()).add_run(part)

    def add_rollups(self, loop_rows: Iterable[Any], model_rows: Iterable[Any]) -> None:
        """Add rollup rows already summed per bucket (see ``collect``)."""
        for row in loop_rows:
            start = row["bucket"]
            if not isinstance(start, datetime):
                start = datetime(start.year, start.month, start.day, tzinfo=UTC)
            key = (_aware(start), row["loop_id"], row["loop_version_id"])
            self.by_loop.setdefault(key, Tally()).merge(Tally.of(row))
            self.loop_names.setdefault(row["loop_id"], row["loop_name"])
        for row in model_rows:
            self.by_model.setdefault(row["model"], Tally()).merge(Tally.of(row))


def floor_hour(moment: datetime) -> datetime:
    return _aware(moment).replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    floor = floor_hour(moment)
    return floor if floor == _aware(moment) else floor + HOUR


def _aware(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _run_rows(runs: QuerySet[Run]) -> Iterator[dict[str, Any]]:
    # values() of a field list known only at run time is typed Any by the stubs.
    rows: Iterator[dict[str, Any]] = runs.values(*RUN_FIELDS).iterator(chunk_size=5000)
    return rows


def _usage_rows(team: Any, *ranges: tuple[datetime | None, datetime | None]) -> Usage:
    """Return the RunModel rows of *team*'s runs created in any of *ranges* (one query)."""
    window = Q()
    for start, end in ranges:
        part = Q()
        if start is not None:
            part &= Q(created_at__gte=start)
        if end is not None:
            part &= Q(created_at__lt=end)
        window |= part
    rows = RunModel.objects.for_team(team).filter(window).values(*USAGE_FIELDS)
    return usage_of(rows.iterator(chunk_size=5000))


class _Overtaken(Exception):
    """Another request rolled the same hours up first."""


def advance(
    team: Any, now: datetime | None = None, max_hours: int | None = None
) -> datetime | None:
    """Roll up *team*'s hours that have closed since the last call; return ``closed_until``.

    ``max_hours`` caps the work of one call (a page request rolls up at most
    ``REQUEST_MAX_HOURS``; the periodic task and ``manage.py dashboard_rollup``
    have no cap). Queries: the state row, the first unfinished run, and when
    there is something to roll up, the runs of those hours and two bulk inserts.
    """
    now = now or timezone.now()
    state, _ = RollupState.objects.get_or_create(team_id=_pk(team))
    runs = Run.objects.real().for_team(team)
    start = state.closed_until
    limit = floor_hour(now - GRACE)
    if start is None:
        first_run = runs.aggregate(first=Min("created_at"))["first"]
        if first_run is None:
            return None
        start = floor_hour(first_run)
    # Asked even when nothing can close yet, so a read costs the same queries every time.
    pending = runs.filter(status__in=ACTIVE, created_at__gte=start)
    first_open = pending.aggregate(first=Min("created_at"))["first"]
    end = limit if first_open is None else min(limit, floor_hour(first_open))
    if max_hours is not None:
        end = min(end, start + max_hours * HOUR)
    if end <= start:
        return state.closed_until
    tallies = Tallies(bucket="hour")
    models: dict[tuple[datetime, str], Tally] = {}
    usage = _usage_rows(team, (start, end))
    for run in _run_rows(runs.filter(created_at__gte=start, created_at__lt=end)):
        tallies.add_runs([run])
        hour = floor_hour(run["created_at"])
        for model, part in model_parts(run, usage):
            models.setdefault((hour, model), Tally()).add_run(part)
    try:
        with transaction.atomic():
            LoopHour.objects.bulk_create(
                [
                    LoopHour(
                        team_id=_pk(team),
                        hour=hour,
                        day=hour.date(),
                        loop_id=loop_id,
                        loop_version_id=version_id,
                        loop_name=tallies.loop_names[loop_id],
                        peak_cost=t.peak_cost,
                        peak_tokens=t.peak_tokens,
                        **t.counters(),
                    )
                    for (hour, loop_id, version_id), t in tallies.by_loop.items()
                ],
                batch_size=1000,
            )
            ModelHour.objects.bulk_create(
                [
                    ModelHour(
                        team_id=_pk(team), hour=hour, day=hour.date(), model=model, **t.counters()
                    )
                    for (hour, model), t in models.items()
                ],
                batch_size=1000,
            )
            moved = RollupState.objects.filter(pk=state.pk, closed_until=state.closed_until).update(
                closed_until=end
            )
            if not moved:
                raise _Overtaken
    except _Overtaken:
        return RollupState.objects.get(pk=state.pk).closed_until
    return end


def closed_until(team: Any) -> datetime | None:
    """Return how far *team*'s runs are rolled up (None: not at all)."""
    state = RollupState.objects.filter(team_id=_pk(team)).first()
    return state.closed_until if state else None


def rebuild(team: Any) -> None:
    """Forget *team*'s rollups; the next read rolls its runs up again."""
    LoopHour.objects.filter(team_id=_pk(team)).delete()
    ModelHour.objects.filter(team_id=_pk(team)).delete()
    RollupState.objects.filter(team_id=_pk(team)).delete()


def _pk(team: Any) -> int:
    return int(getattr(team, "pk", team))


def collect(
    team: Any,
    start: datetime,
    end: datetime,
    bucket: str = "hour",
    loop_id: int | None = None,
    now: datetime | None = None,
) -> Tallies:
    """Return the tallies of *team*'s runs created in ``[start, end)`` (of one loop if given).

    Closed hours come from the rollups, summed by the database per bucket and
    loop version (and per model): a bounded number of rows, however many runs.
    """
    closed_until = advance(team, now, max_hours=REQUEST_MAX_HOURS)
    full_start = ceil_hour(start)
    rolled_end = min(closed_until, floor_hour(end)) if closed_until else full_start
    rolled_end = max(rolled_end, full_start)
    runs = Run.objects.real().for_team(team).filter(created_at__gte=start, created_at__lt=end)
    tallies = Tallies(bucket=bucket)
    if rolled_end > full_start:
        window = {"team_id": _pk(team), "hour__gte": full_start, "hour__lt": rolled_end}
        loop_hours = LoopHour.objects.filter(**window)
        if loop_id is not None:
            loop_hours = loop_hours.filter(loop_id=loop_id)
        sums = {f: Sum(f) for f in COUNTER_FIELDS}
        loop_rows = (
            loop_hours.values("loop_id", "loop_version_id", bucket=F(bucket))
            .annotate(
                **sums,
                loop_name=Max("loop_name"),
                peak_cost=Max("peak_cost"),
                peak_tokens=Max("peak_tokens"),
            )
            .order_by()
        )
        model_rows: Any = []
        if loop_id is None:
            model_rows = (
                ModelHour.objects.filter(**window).values("model").annotate(**sums).order_by()
            )
        tallies.add_rollups(loop_rows, model_rows)
    if loop_id is not None:
        runs = runs.filter(loop_id=loop_id)
    if rolled_end > full_start:
        # Two index ranges (the partial first hour, the hours not rolled up yet).
        open_parts = [(start, full_start), (rolled_end, end)]
    else:
        open_parts = [(start, end)]
    # A loop's section shows no breakdown by model: its runs' models are not read.
    usage = _usage_rows(team, *open_parts) if loop_id is None else None
    for part_start, part_end in open_parts:
        part = runs.filter(created_at__gte=part_start, created_at__lt=part_end)
        tallies.add_runs(_run_rows(part), usage)
    return tallies

"""Filtering and sorting the runs list (the page, its CSV export and the API share this).

Query parameters: ``loop`` (id), ``status`` (repeatable), ``trigger`` (trigger
type), ``user`` (username of whoever started the run), ``model``, ``since`` and
``until`` (a date -- whole UTC days, ``until`` inclusive -- or an ISO datetime
-- exact, ``until`` exclusive), ``verified`` (1: runs that had verification
rounds), ``cost`` (``known`` or ``unknown``), ``sort`` (a column name, ``-``
for descending; default ``-created``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from django.db.models import DurationField as _Duration
from django.db.models import ExpressionWrapper, F, QuerySet
from django.utils.dateparse import parse_datetime

from dashboard.services import KNOWN_COST, VERIFIED, model_usage, using_model
from runs.models import Run

STATUSES = (
    "queued",
    "running",
    "waiting_for_approval",
    "succeeded",
    "failed",
    "verification_failed",
    "budget_exceeded",
    "cancelled",
)

# sort key -> the expression it orders by
SORTS: dict[str, str] = {
    "created": "created_at",
    "started": "started_at",
    "duration": "duration",
    "tokens_in": "tokens_in",
    "tokens_out": "tokens_out",
    "cost": "cost_usd",
    "score": "final_score",
    "rounds": "verification_rounds",
    "loop": "loop_name",
    "status": "status",
}
DEFAULT_SORT = "-created"
# Columns whose first click sorts largest / newest first.
DESCENDING_FIRST = frozenset(SORTS) - {"loop", "status"}
FILTER_NAMES = (
    "loop",
    "status",
    "trigger",
    "user",
    "model",
    "since",
    "until",
    "verified",
    "cost",
    "sort",
)


def _params_get(params: Mapping[str, Any], name: str) -> str:
    return str(params.get(name) or "").strip()


def _params_list(params: Mapping[str, Any], name: str) -> list[str]:
    getlist = getattr(params, "getlist", None)
    values = getlist(name) if getlist else params.get(name) or []
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for value in values:
        out.extend(v.strip() for v in str(value).split(",") if v.strip())
    return out


@dataclass
class RunFilter:
    loop: int | None = None
    status: list[str] = field(default_factory=list)
    trigger: str = ""
    user: str = ""
    model: str = ""
    since: datetime | None = None
    until: datetime | None = None
    verified: bool = False
    cost: str = ""
    sort: str = DEFAULT_SORT
    raw: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> RunFilter:
        """Read the filter from query parameters; bad values land in ``errors``."""
        f = cls()
        raw_loop = _params_get(params, "loop")
        if raw_loop:
            if raw_loop.isdigit():
                f.loop = int(raw_loop)
            else:
                f.errors["loop"] = f"loop must be a loop id (a number), not {raw_loop!r}"
        for status in _params_list(params, "status"):
            if status in STATUSES:
                f.status.append(status)
            else:
                f.errors["status"] = f"status must be one of {', '.join(STATUSES)}, not {status!r}"
        f.trigger = _params_get(params, "trigger")
        f.user = _params_get(params, "user")
        f.model = _params_get(params, "model")
        for name in ("since", "until"):
            raw = _params_get(params, name)
            if raw:
                moment = _parse_moment(raw, inclusive_day_end=name == "until")
                if moment is None:
                    f.errors[name] = (
                        f"{name} must be a date like 2026-01-31 or a datetime like "
                        f"2026-01-31T09:00:00Z, not {raw!r}"
                    )
                setattr(f, name, moment)
        f.verified = _params_get(params, "verified") in {"1", "true", "yes"}
        cost = _params_get(params, "cost")
        if cost and cost not in {"known", "unknown"}:
            f.errors["cost"] = f"cost must be known or unknown, not {cost!r}"
        else:
            f.cost = cost
        sort = _params_get(params, "sort") or DEFAULT_SORT
        if sort.lstrip("-") in SORTS:
            f.sort = sort
        else:
            f.errors["sort"] = (
                f"sort must be one of {', '.join(SORTS)} (prefix - to reverse), not {sort!r}"
            )
        f.raw = {
            name: ([_params_get(params, name)] if name != "status" else f.status)
            for name in FILTER_NAMES
        }
        f.raw = {k: [v for v in vs if v] for k, vs in f.raw.items() if any(vs)}
        return f

    def apply(self, qs: QuerySet[Run], team: Any) -> QuerySet[Run]:
        """Return *qs* (runs of *team*) filtered and sorted (filters with errors are left out)."""
        if self.loop is not None:
            qs = qs.filter(loop_id=self.loop)
        if self.status:
            qs = qs.filter(status__in=self.status)
        if self.trigger:
            qs = qs.filter(trigger_type=self.trigger)
        if self.user:
            qs = qs.filter(started_by__username=self.user)
        if self.model:
            qs = using_model(qs, team, self.model, self.since, self.until)
        if self.since is not None:
            qs = qs.filter(created_at__gte=self.since)
        if self.until is not None:
            qs = qs.filter(created_at__lt=self.until)
        if self.verified:
            qs = qs.filter(VERIFIED)
        if self.cost == "known":
            qs = qs.filter(KNOWN_COST)
        elif self.cost == "unknown":
            qs = qs.exclude(KNOWN_COST)
        return self.order(qs)

    def count(self, qs: QuerySet[Run], team: Any) -> int:
        """Return how many runs *qs* (this filter applied to *team*'s runs) holds.

        A model filter with at most dates besides is counted from the RunModel
        index alone (one row per run and model), without reading the runs.
        """
        others = self.loop is not None or self.status or self.trigger or self.user
        if self.model and not (others or self.verified or self.cost):
            return model_usage(team, self.model, self.since, self.until).count()
        return qs.count()

    def order(self, qs: QuerySet[Run]) -> QuerySet[Run]:
        key = self.sort.lstrip("-")
        descending = self.sort.startswith("-")
        target = SORTS[key]
        if key == "duration":
            qs = qs.annotate(
                duration=ExpressionWrapper(
                    F("finished_at") - F("started_at"), output_field=_Duration()
                )
            )
        expr = F(target).desc(nulls_last=True) if descending else F(target).asc(nulls_last=True)
        tiebreak = "-pk" if descending else "pk"
        return qs.order_by(expr, tiebreak)

    def query(self, **changes: Any) -> str:
        """Return the query string of this filter, with *changes* applied (None drops a key)."""
        params = {k: list(v) for k, v in self.raw.items()}
        for key, value in changes.items():
            if value is None:
                params.pop(key, None)
            else:
                params[key] = [str(value)]
        return urlencode([(k, v) for k, vs in params.items() for v in vs], safe=":")

    def sort_query(self, key: str) -> str:
        """Return the query that sorts by *key*, flipping the direction if already sorted by it."""
        current = self.sort.lstrip("-")
        if current == key:
            new = key if self.sort.startswith("-") else f"-{key}"
        else:
            new = f"-{key}" if key in DESCENDING_FIRST else key
        return self.query(sort=new, page=None)


def _parse_moment(raw: str, inclusive_day_end: bool) -> datetime | None:
    if len(raw) == 10:
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            return None
        if inclusive_day_end:
            day += timedelta(days=1)
        return datetime.combine(day, time.min, tzinfo=UTC)
    try:
        moment = parse_datetime(raw.replace(" ", "+"))
    except ValueError:
        return None
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

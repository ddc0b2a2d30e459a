"""CSV exports of the runs list and of the dashboard's tables."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone

from runs.models import Run

RUN_COLUMNS = (
    "id",
    "loop_id",
    "loop",
    "version",
    "status",
    "trigger_type",
    "started_by",
    "dry_run",
    "created_at",
    "started_at",
    "finished_at",
    "duration_seconds",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "cost_known",
    "verification_rounds",
    "final_score",
    "models",
)

# table name -> (columns, key of each row in the figures)
TABLES: dict[str, tuple[str, ...]] = {
    "series": (
        "bucket",
        "runs",
        "succeeded",
        "finished",
        "success_rate",
        "verified_passed",
        "verified_failed",
        "verification_pass_rate",
        "tokens_in",
        "tokens_out",
        "cost",
        "known_cost_runs",
        "unknown_cost_runs",
    ),
    "by_loop": (
        "loop_id",
        "loop_name",
        "runs",
        "succeeded",
        "finished",
        "success_rate",
        "verification_pass_rate",
        "tokens_in",
        "tokens_out",
        "cost",
        "cost_per_run",
        "unknown_cost_runs",
    ),
    "by_model": (
        "model_name",
        "runs",
        "succeeded",
        "finished",
        "success_rate",
        "verification_pass_rate",
        "tokens_in",
        "tokens_out",
        "cost",
        "cost_per_run",
        "unknown_cost_runs",
    ),
    "budgets": (
        "loop_id",
        "loop_name",
        "runs",
        "exceeded",
        "usage",
        "over",
        "peak_cost",
        "max_cost_usd",
        "peak_tokens",
        "max_tokens",
    ),
    "most_expensive": RUN_COLUMNS,
    "low_lrs": ("loop_id", "loop_name", "lrs_score", "lrs_grade"),
}


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    def write(self, value: str) -> str:
        return value


def cell(value: Any) -> str:
    """Return *value* as a CSV cell: unknown is empty, never 0."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    if isinstance(value, str) and value[:1] in FORMULA_STARTS:
        # A spreadsheet would run "=..." as a formula (CSV injection): keep it text.
        return "'" + value
    return str(value)


def run_row(run: Run) -> list[str]:
    duration = None
    if run.started_at and run.finished_at:
        duration = round((run.finished_at - run.started_at).total_seconds(), 3)
    values = (
        run.pk,
        run.loop_id,
        run.loop_name,
        run.version_number,
        run.status,
        run.trigger_type,
        run.started_by_label,
        run.dry_run,
        run.created_at,
        run.started_at,
        run.finished_at,
        duration,
        run.tokens_in,
        run.tokens_out,
        run.cost_usd if run.cost_known else None,
        run.cost_known,
        run.verification_rounds,
        run.final_score,
        " ".join(str(m) for m in run.models_used or []),
    )
    return [cell(v) for v in values]


def table_rows(table: str, rows: Iterable[Any]) -> Iterator[list[str]]:
    if table == "most_expensive":
        yield from (run_row(run) for run in rows)
        return
    columns = TABLES[table]
    for row in rows:
        if table == "low_lrs":
            row = {
                "loop_id": row.pk,
                "loop_name": row.name,
                "lrs_score": row.lrs_score,
                "lrs_grade": row.lrs_grade,
            }
        yield [cell(row.get(c)) for c in columns]


def csv_response(
    header: Iterable[str], rows: Iterable[list[str]], name: str, *, stream: bool = False
) -> HttpResponse | StreamingHttpResponse:
    """Return a CSV download named ``<name>-<UTC stamp>.csv`` (streamed for long lists)."""
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(list(header))
        for row in rows:
            yield writer.writerow(row)

    content_type = "text/csv; charset=utf-8"
    response: HttpResponse | StreamingHttpResponse
    if stream:
        response = StreamingHttpResponse(lines(), content_type=content_type)
    else:
        response = HttpResponse("".join(lines()), content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.csv"'
    return response

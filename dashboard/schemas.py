"""API shapes of the dashboard's figures and of the runs list.

Costs are US dollars as numbers; ``null`` means unknown (no priced run), never 0.
Rates are 0-1, ``null`` when there is nothing to divide by.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import Schema


class PeriodOut(Schema):
    key: str
    label: str
    start: str
    end: str
    bucket: str


class Figures(Schema):
    runs: int
    succeeded: int
    finished: int
    success_rate: float | None
    verified_passed: int
    verified_failed: int
    verification_pass_rate: float | None
    tokens_in: int
    tokens_out: int
    tokens: int
    cost: float | None
    cost_per_run: float | None
    known_cost_runs: int
    unknown_cost_runs: int


class TotalsOut(Figures):
    failed: int
    verification_failed: int
    budget_exceeded: int
    cancelled: int
    active: int
    verified_runs: int
    mean_rounds: float | None


class BucketOut(Figures):
    bucket: str


class LoopRowOut(Figures):
    loop_id: int | None
    loop_name: str | None


class ModelRowOut(Figures):
    model_name: str | None


class BudgetRowOut(Schema):
    loop_id: int | None
    loop_name: str | None
    runs: int
    exceeded: int
    usage: float | None
    over: bool
    peak_cost: float | None
    max_cost_usd: float | None
    peak_tokens: int | None
    max_tokens: int | None


class RunRowOut(Schema):
    id: int
    loop_id: int | None
    loop_name: str
    version_number: int
    status: str
    trigger_type: str
    started_by_label: str
    dry_run: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    tokens_in: int
    tokens_out: int
    cost_usd: float | None
    cost_known: bool
    verification_rounds: int
    final_score: float | None
    models_used: list[str]

    @staticmethod
    def resolve_cost_usd(obj: Any) -> float | None:
        return float(obj.cost_usd) if obj.cost_known and obj.cost_usd is not None else None


class LowLrsOut(Schema):
    id: int
    name: str
    lrs_score: int | None
    lrs_grade: str


class DashboardOut(Schema):
    period: PeriodOut
    totals: TotalsOut
    series: list[BucketOut]
    by_loop: list[LoopRowOut]
    by_model: list[ModelRowOut]
    budgets: list[BudgetRowOut]
    most_expensive: list[RunRowOut]
    low_lrs: list[LowLrsOut]


class LoopFiguresOut(Schema):
    loop_id: int
    loop_name: str
    period: PeriodOut
    totals: Figures
    series: list[BucketOut]
    lrs_score: int | None
    lrs_grade: str


class RunPageOut(Schema):
    count: int
    limit: int
    offset: int
    runs: list[RunRowOut]

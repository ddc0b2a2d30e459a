"""Hourly rollups of finished runs, so the dashboard never scans every run of a period.

An hour is rolled up once every run created in it has finished (and the hour
ended a grace period ago): its runs are tallied per loop version and per model
into ``LoopHour`` and ``ModelHour`` rows, and ``RollupState.closed_until``
moves past it. Figures read the rollups for closed hours and the runs
themselves for the rest (the current hour, the partial hour at the start of
a period, hours with unfinished runs). See dashboard/rollups.py.
"""

from __future__ import annotations

from django.db import models


class Tally(models.Model):
    """The counters of a group of runs (see rollups.Tally for their meaning)."""

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField(help_text="Start of the UTC hour the runs were created in.")
    day = models.DateField(help_text="The UTC day of ``hour`` (daily series group by it).")
    runs = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    verification_failed = models.PositiveIntegerField(default=0)
    budget_exceeded = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)
    active = models.PositiveIntegerField(default=0)
    verified_runs = models.PositiveIntegerField(default=0)
    verified_passed = models.PositiveIntegerField(default=0)
    verified_failed = models.PositiveIntegerField(default=0)
    rounds = models.PositiveIntegerField(default=0)
    tokens_in = models.PositiveBigIntegerField(default=0)
    tokens_out = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(max_digits=18, decimal_places=6, default=0)
    known_cost_runs = models.PositiveIntegerField(default=0)
    unknown_cost_runs = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True


class LoopHour(Tally):
    """One hour of one loop version's finished runs."""

    loop_id = models.BigIntegerField(null=True, help_text="Null for runs of a deleted loop.")
    loop_version_id = models.BigIntegerField(null=True)
    loop_name = models.CharField(max_length=100)
    peak_cost = models.DecimalField(max_digits=14, decimal_places=6, null=True)
    peak_tokens = models.PositiveBigIntegerField(null=True)

    class Meta:
        indexes = [models.Index(fields=["team", "hour"])]


class ModelHour(Tally):
    """One hour of the finished runs that used one model ("" for runs that used none)."""

    model = models.CharField(max_length=200)

    class Meta:
        indexes = [models.Index(fields=["team", "hour"])]


class RollupState(models.Model):
    """How far a team's runs are rolled up: every hour before ``closed_until``."""

    team = models.OneToOneField("teams.Team", on_delete=models.CASCADE, related_name="+")
    closed_until = models.DateTimeField(null=True)

"""Runs of loops, their events, approval gates and trigger bookkeeping.

A run keeps a snapshot of the loop's YAML as it was when the run was created,
so a re-run, a resumed run and the run page all see the same loop even after
the loop has been edited. Status changes go through ``Run.transition`` (a
conditional UPDATE), so a terminal status is never overwritten, whichever
worker or request gets there second.
"""

from __future__ import annotations

import gzip
import hashlib
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from loopkit_web.teams.scoping import TeamScopedQuerySet


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    WAITING = "waiting_for_approval", "Waiting for approval"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    VERIFICATION_FAILED = "verification_failed", "Verification failed"
    BUDGET_EXCEEDED = "budget_exceeded", "Budget exceeded"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL = frozenset(
    {
        Status.SUCCEEDED,
        Status.FAILED,
        Status.VERIFICATION_FAILED,
        Status.BUDGET_EXCEEDED,
        Status.CANCELLED,
    }
)
ACTIVE = frozenset({Status.RUNNING, Status.WAITING})


class TriggerType(models.TextChoices):
    MANUAL = "manual", "Manual"
    CRON = "cron", "Cron"
    WEBHOOK = "webhook", "Webhook"
    EVENT = "event", "Event"
    RERUN = "rerun", "Re-run"


class RunQuerySet(TeamScopedQuerySet["Run"]):
    def active(self) -> RunQuerySet:
        """Return the runs a worker holds (running or waiting for approval)."""
        return self.filter(status__in=ACTIVE)

    def unfinished(self) -> RunQuerySet:
        return self.exclude(status__in=TERMINAL)

    def real(self) -> RunQuerySet:
        """Return the runs of saved loop versions: not the editor's test runs of a draft."""
        return self.filter(is_test=False)


class Run(models.Model):
    """One execution of one version of a loop."""

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="runs")
    loop = models.ForeignKey(
        "builder.Loop", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    loop_version = models.ForeignKey(
        "builder.LoopVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
    )
    loop_name = models.CharField(max_length=100)
    version_number = models.PositiveIntegerField(default=0)
    loop_yaml = models.TextField(help_text="The loop's YAML as it was when the run was created.")

    trigger_type = models.CharField(max_length=10, choices=TriggerType.choices)
    trigger_payload = models.JSONField(
        default=dict, blank=True, help_text="Passed to the loop as trigger.payload."
    )
    inputs = models.JSONField(default=dict, blank=True)
    dry_run = models.BooleanField(default=False)
    #: The model this run was started with, in place of the loop's ``model:`` (empty: the loop's).
    model = models.CharField(max_length=200, blank=True, default="")
    rerun_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns"
    )
    is_test = models.BooleanField(
        default=False,
        help_text="A test run of an unsaved draft from the editor (loop_yaml is the draft; "
        "no version): left out of the run list, the dashboard and completion triggers.",
    )
    pinned = models.JSONField(
        default=dict,
        blank=True,
        help_text="A test run's pinned outputs: step label (or path) → output, "
        "answered without a model call.",
    )
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    started_by_label = models.CharField(
        max_length=150, blank=True, help_text="The user, or what fired the trigger."
    )

    status = models.CharField(max_length=24, choices=Status.choices, default=Status.QUEUED)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    attempt = models.PositiveIntegerField(
        default=0, help_text="How many times a worker has picked the run up (>1: resumed)."
    )
    worker = models.CharField(max_length=200, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    tokens_in = models.PositiveBigIntegerField(default=0)
    tokens_out = models.PositiveBigIntegerField(default=0)
    tokens_cached = models.PositiveBigIntegerField(default=0)
    tokens_reasoning = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(
        max_digits=14,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="The cost of the calls whose usage is recorded; null when a model's price "
        "is unknown: unknown prices stay unknown.",
    )
    cost_known = models.BooleanField(
        default=True,
        help_text="cost_usd is the run's whole cost: no price unknown and no lost call.",
    )
    lost_calls = models.PositiveIntegerField(
        default=0,
        help_text="Model calls in flight when a worker died: paid, then made again on resume; "
        "their usage is unknown (runs.recorder.record_lost_calls).",
    )
    verification_rounds = models.PositiveIntegerField(default=0)
    final_score = models.FloatField(null=True, blank=True)
    models_used = models.JSONField(default=list, blank=True)
    outputs = models.JSONField(default=dict, blank=True)
    last_seq = models.PositiveIntegerField(default=0)
    engine_record = models.JSONField(
        null=True, blank=True, help_text="The engine's own run record (loopkit.memory.RunRecord)."
    )

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["team", "status"]),
            models.Index(fields=["status", "heartbeat_at"]),
            models.Index(fields=["loop", "-created_at"]),
            # The dashboard's runs list and periods (newest first, by cost).
            models.Index(fields=["team", "-created_at"], name="runs_run_team_created"),
            models.Index(fields=["team", "-cost_usd"], name="runs_run_team_cost"),
        ]

    def __str__(self) -> str:
        return f"{self.loop_name} #{self.pk}"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def cost_label(self) -> str:
        """The run's cost in words: ``$0.0123``, ``unknown``, or with lost calls
        ``$0.0123 + 1 lost call (cost unknown)`` (the known part, then what it lacks)."""
        lost = self.lost_calls
        if not lost:
            known = self.cost_known and self.cost_usd is not None
            return f"${self.cost_usd:.4f}" if known else "unknown"
        calls = f"{lost} lost call{'' if lost == 1 else 's'}"
        if self.cost_usd is None:  # a price was unknown too
            return f"unknown (and {calls})"
        return f"${self.cost_usd:.4f} + {calls} (cost unknown)"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or timezone.now()
        return (end - self.started_at).total_seconds()

    def transition(
        self, to: str, *, allowed_from: frozenset[str] | set[str], **fields: Any
    ) -> bool:
        """Move the run to status *to* if it is in one of *allowed_from*; return success.

        One conditional UPDATE: of two workers (or a worker and a cancel
        request) racing, exactly one wins, and a terminal status stays.
        """
        changed = Run.objects.filter(pk=self.pk, status__in=list(allowed_from)).update(
            status=to, **fields
        )
        if changed:
            self.status = to
            for name, value in fields.items():
                setattr(self, name, value)
        return bool(changed)


class RunModelQuerySet(TeamScopedQuerySet["RunModel"]):
    pass


class RunModel(models.Model):
    """What one run spent on one model: an indexed link for filters and per-model figures.

    Kept by the recorder from the engine's ``step_finished`` events (each names
    its model, tokens and cost), so a run's split per model is exact. Tokens and
    cost the engine records without a model (verification rounds) are kept under
    ``model=""``. ``cost_usd`` is null once any of the model's steps had an unknown
    price or a lost call (``Run.lost_calls``). ``team`` and ``created_at`` are copies
    of the run's, so a team's runs of one model are one index range.
    """

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="model_usage")
    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="+")
    model = models.CharField(max_length=200, blank=True)
    tokens_in = models.PositiveBigIntegerField(default=0)
    tokens_out = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    created_at = models.DateTimeField(help_text="The run's created_at.")

    objects = RunModelQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "model"], name="runs_unique_run_model"),
        ]
        indexes = [
            models.Index(fields=["team", "model", "-created_at"], name="runs_runmodel_team_model"),
            models.Index(fields=["team", "-created_at"], name="runs_runmodel_team_created"),
        ]

    def __str__(self) -> str:
        return f"{self.run_id} · {self.model or '(no model)'}"


class RunEventQuerySet(TeamScopedQuerySet["RunEvent"]):
    team_field = "run__team"


class RunEvent(models.Model):
    """One engine event of a run, numbered 1, 2, 3... without gaps per run."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=64)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    objects = RunEventQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "seq"], name="runs_unique_event_seq"),
        ]
        ordering = ["run", "seq"]

    def __str__(self) -> str:
        return f"{self.run_id}#{self.seq} {self.type}"

    def as_message(self) -> dict[str, Any]:
        """Return the event as the live page and the API see it."""
        return {
            "seq": self.seq,
            "type": self.type,
            "payload": self.payload,
            "created_at": self.created_at.isoformat(),
        }


class ApprovalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class ApprovalQuerySet(TeamScopedQuerySet["ApprovalRequest"]):
    team_field = "run__team"


class ApprovalRequest(models.Model):
    """A run waiting at an approval step; stored, so a restart loses nothing."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="approvals")
    step = models.CharField(max_length=200, help_text="The step's label or path.")
    question = models.TextField()
    approvers = models.JSONField(default=list, blank=True)
    status = models.CharField(
        max_length=10, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING
    )
    on_timeout = models.CharField(max_length=10, default="reject")
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by_label = models.CharField(max_length=150, blank=True)
    comment = models.TextField(blank=True)

    objects = ApprovalQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "step"], name="runs_unique_approval_step"),
        ]
        ordering = ["-created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.run} · {self.step} ({self.status})"


class WebhookDelivery(models.Model):
    """A received webhook delivery, kept to refuse replays of the same delivery id.

    The id is kept whole; uniqueness is on its SHA-256 (``delivery_key``), since
    an index cannot hold an id of any length (PostgreSQL's btree stops near
    2.7 kB) and a cut id would make two deliveries that share a prefix one.
    """

    loop = models.ForeignKey("builder.Loop", on_delete=models.CASCADE, related_name="deliveries")
    delivery_id = models.TextField(help_text="The X-GitHub-Delivery header, whole.")
    delivery_key = models.CharField(max_length=64, help_text="SHA-256 of delivery_id (hex).")
    event = models.CharField(max_length=100)
    action = models.CharField(max_length=100, blank=True)
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["loop", "delivery_key"], name="runs_unique_webhook_delivery_key"
            ),
        ]

    @staticmethod
    def key_for(delivery_id: str) -> str:
        return hashlib.sha256(delivery_id.encode()).hexdigest()

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.delivery_key = self.key_for(self.delivery_id)
        super().save(*args, **kwargs)


class CronFiring(models.Model):
    """One due time of one loop's schedule; unique, so several workers fire it once."""

    loop = models.ForeignKey("builder.Loop", on_delete=models.CASCADE, related_name="cron_firings")
    due_time = models.DateTimeField()
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["loop", "due_time"], name="runs_unique_cron_firing"),
        ]


class Checkpoint(models.Model):
    """A finished unit of work of a run (loopkit.memory.Checkpoint): not redone on resume."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="checkpoints")
    key = models.CharField(max_length=300)
    data = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "key"], name="runs_unique_checkpoint"),
        ]


class MemoryRecord(models.Model):
    """One key of a loop's cross-run memory (or of a run's checkpoint), stored as JSON."""

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="+")
    namespace = models.CharField(max_length=200)
    key = models.CharField(max_length=300)
    value = models.JSONField()
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["team", "namespace", "key"], name="runs_unique_memory_key"
            ),
        ]


# ── Loop tests (docs/testing.md, "In the web app") ──────────────────────────


class CassetteQuerySet(TeamScopedQuerySet["RunCassette"]):
    team_field = "run__team"


class RunCassette(models.Model):
    """The cassette of a live run (``loopkit.recording``), gzip-compressed YAML.

    Every live run that ran start to end in one worker is recorded (not dry
    runs, not the editor's test runs of a draft, not a run resumed after a
    suspension): "Keep as test" turns it into a ``LoopTest``.
    """

    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="cassette")
    data = models.BinaryField(help_text="The cassette's YAML, gzip-compressed.")
    calls = models.PositiveIntegerField(default=0, help_text="Model calls recorded.")
    created_at = models.DateTimeField(default=timezone.now)

    objects = CassetteQuerySet.as_manager()

    def __str__(self) -> str:
        return f"cassette of run #{self.run_id}"

    @property
    def text(self) -> str:
        return gzip.decompress(bytes(self.data)).decode("utf-8")


class LoopTestQuerySet(TeamScopedQuerySet["LoopTest"]):
    team_field = "loop__team"


class LoopTest(models.Model):
    """A test of a loop: a test file (its expectations) and the cassette it replays."""

    loop = models.ForeignKey("builder.Loop", on_delete=models.CASCADE, related_name="tests")
    name = models.CharField(max_length=100)
    test_yaml = models.TextField(help_text="The test file (docs/testing.md), as YAML.")
    cassette = models.BinaryField(help_text="The cassette's YAML, gzip-compressed.")
    source_run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="kept_tests"
    )
    source_version = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = LoopTestQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["loop", "name"], name="runs_unique_loop_test_name"),
        ]
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name

    @property
    def team(self) -> Any:
        return self.loop.team

    @property
    def cassette_text(self) -> str:
        return gzip.decompress(bytes(self.cassette)).decode("utf-8")

    def last_result(self) -> LoopTestResult | None:
        return self.results.order_by("-created_at", "-pk").first()


class LoopTestResult(models.Model):
    """One replay of a ``LoopTest`` against one version of its loop."""

    test = models.ForeignKey(LoopTest, on_delete=models.CASCADE, related_name="results")
    version_number = models.PositiveIntegerField()
    passed = models.BooleanField()
    status = models.CharField(max_length=24, blank=True, help_text="The replayed run's status.")
    failures = models.JSONField(
        default=list, blank=True, help_text="[{message, location, diff, kind}]"
    )
    replayed = models.PositiveIntegerField(default=0, help_text="Model calls replayed.")
    duration_s = models.FloatField(default=0.0)
    trigger = models.CharField(max_length=10, default="manual", help_text="manual or save.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.test} v{self.version_number}: {'pass' if self.passed else 'fail'}"

"""The engine's state store (``loopkit.memory.Store``) backed by the Django ORM.

Web runs get the same cross-run memory as the CLI (per team and namespace),
and their checkpoints live beside the run, so a run picked up by another
worker after a crash resumes without redoing finished steps.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from loopkit.memory import Checkpoint as EngineCheckpoint
from loopkit.memory import RunRecord, Store
from runs.models import Checkpoint, MemoryRecord, Run


class OrmStore(Store):
    """A team's store: runs are that team's Run rows (by id), memory is per team."""

    #: The ORM refuses to run in the event loop's thread: the engine offloads calls.
    offload = True

    def __init__(self, team_id: int) -> None:
        self.team_id = team_id

    def _runs(self) -> Any:
        return Run.objects.filter(team_id=self.team_id)

    def save_run(self, run: RunRecord) -> None:
        self._runs().filter(pk=int(run.id)).update(engine_record=run.as_dict())

    def get_run(self, run_id: str) -> RunRecord | None:
        try:
            row = (
                self._runs().filter(pk=int(run_id)).values_list("engine_record", flat=True).first()
            )
        except ValueError:
            return None
        return RunRecord.from_dict(row) if row else None

    def list_runs(self, loop: str | None = None, limit: int = 20) -> list[RunRecord]:
        rows = self._runs().exclude(engine_record=None)
        if loop is not None:
            rows = rows.filter(loop_name=loop)
        records = [RunRecord.from_dict(r) for r in rows.values_list("engine_record", flat=True)]
        records.sort(key=lambda r: r.started_at, reverse=True)
        return records[:limit]

    def save_checkpoint(self, run_id: str, checkpoint: EngineCheckpoint) -> None:
        with transaction.atomic():
            Checkpoint.objects.update_or_create(
                run_id=int(run_id), key=checkpoint.key, defaults={"data": checkpoint.as_dict()}
            )

    def checkpoints(self, run_id: str) -> dict[str, EngineCheckpoint]:
        rows = Checkpoint.objects.filter(run_id=int(run_id), run__team_id=self.team_id)
        return {row.key: EngineCheckpoint.from_dict(row.data) for row in rows}

    def get_memory(self, namespace: str) -> dict[str, Any]:
        rows = MemoryRecord.objects.filter(team_id=self.team_id, namespace=namespace)
        return {row.key: row.value for row in rows}

    def set_memory(self, namespace: str, key: str, value: Any) -> None:
        self.update_memory(namespace, {key: value})

    def update_memory(self, namespace: str, values: dict[str, Any]) -> None:
        now = timezone.now()
        MemoryRecord.objects.bulk_create(
            [
                MemoryRecord(
                    team_id=self.team_id, namespace=namespace, key=key, value=value, updated_at=now
                )
                # In key order: two runs upserting the same keys never deadlock.
                for key, value in sorted(values.items())
            ],
            update_conflicts=True,
            unique_fields=["team", "namespace", "key"],
            update_fields=["value", "updated_at"],
        )

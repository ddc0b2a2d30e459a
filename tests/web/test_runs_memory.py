"""The ORM-backed engine store keeps each team's cross-run memory apart."""

from __future__ import annotations

from typing import Any

import pytest

from runs.models import MemoryRecord
from runs.orm_store import OrmStore

pytestmark = pytest.mark.django_db


def test_update_memory_upserts_a_runs_outputs_in_one_go(make_team: Any) -> None:
    acme, _ = make_team("Acme", roles=["owner"])
    store = OrmStore(acme.pk)
    store.set_memory("pr-review", "Summary", "first")
    store.update_memory("pr-review", {"Summary": "second", "last_run": {"id": "7"}})
    assert store.get_memory("pr-review") == {"Summary": "second", "last_run": {"id": "7"}}
    assert MemoryRecord.objects.filter(team=acme).count() == 2


def test_a_teams_memory_is_its_own(make_team: Any) -> None:
    acme, _ = make_team("Acme", roles=["owner"])
    other, _ = make_team("Other", roles=["owner"])
    OrmStore(acme.pk).update_memory("pr-review", {"Summary": "acme's"})
    OrmStore(other.pk).update_memory("pr-review", {"Summary": "other's"})
    assert OrmStore(acme.pk).get_memory("pr-review") == {"Summary": "acme's"}
    assert OrmStore(other.pk).get_memory("pr-review") == {"Summary": "other's"}

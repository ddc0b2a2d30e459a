"""Optimistic concurrency under a real race, on the real PostgreSQL of this machine.

SQLite serialises write transactions at BEGIN, so the race only exists on
PostgreSQL: there the save's ``select_for_update`` makes a save based on a
version that another save is replacing wait, then answer 409.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from .procs import child_env, fresh_pg_database, shell

pytestmark = pytest.mark.services


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_pg_database("loopkit_race") as url:
        yield url


def test_a_save_racing_another_gets_409_instead_of_overwriting(pg_url: str, tmp_path: Path) -> None:
    env = child_env(DATABASE_URL=pg_url, LOOPKIT_HOME=str(tmp_path), LOOPKIT_CHANNEL_LAYER="memory")
    out = shell(Path(__file__).parent / "scripts" / "builder_race.py", env=env).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    assert result == {
        "contender_waited": True,
        "contender": {"status": 409, "current": 2},
        "versions": [[1, "Created"], [2, "holder"]],
    }

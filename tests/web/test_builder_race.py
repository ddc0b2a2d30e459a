"""Optimistic concurrency under a real race, on the real PostgreSQL of this machine.

SQLite serialises write transactions at BEGIN, so the race only exists on
PostgreSQL: there the save's ``select_for_update`` makes a save based on a
version that another save is replacing wait, then answer 409.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .procs import child_env, shell, skip_or_fail

pytestmark = pytest.mark.services

PG_ADMIN_URL = os.environ.get("LOOPKIT_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def pg_url() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    name = f"loopkit_race_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(
            PG_ADMIN_URL.replace("postgres://", "postgresql://"), autocommit=True, connect_timeout=5
        )
    except psycopg.OperationalError as exc:
        skip_or_fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_save_racing_another_gets_409_instead_of_overwriting(pg_url: str, tmp_path: Path) -> None:
    env = child_env(
        DATABASE_URL=pg_url, LOOPKIT_VAR_DIR=str(tmp_path), LOOPKIT_CHANNEL_LAYER="memory"
    )
    out = shell(Path(__file__).parent / "scripts" / "builder_race.py", env=env).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    assert result == {
        "contender_waited": True,
        "contender": {"status": 409, "current": 2},
        "versions": [[1, "Created"], [2, "holder"]],
    }

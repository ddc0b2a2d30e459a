"""The scale-out settings against the real PostgreSQL and Redis of this machine.

Children run ``manage.py`` with ``DATABASE_URL`` pointing at a fresh database
(created and dropped here) and ``REDIS_URL`` at a Redis database of its own.
Without the services the tests skip loudly on a laptop and fail in CI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import service_urls

from .procs import REPO, child_env, fresh_pg_database, manage, shell, skip_or_fail

pytestmark = pytest.mark.services

SCRIPTS = Path(__file__).parent / "scripts"
REDIS_TEST_URL = os.environ.get("LOOPKIT_TEST_REDIS_URL", service_urls.redis_url("scaleout"))


@pytest.fixture
def pg_url() -> Iterator[str]:
    """Create a fresh PostgreSQL database; yield its URL; drop it."""
    with fresh_pg_database("loopkit_scaleout") as url:
        yield url


@pytest.fixture
def redis_url() -> Iterator[str]:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis is not reachable at {REDIS_TEST_URL}: {exc}")
    client.flushdb()
    yield REDIS_TEST_URL
    client.flushdb()


def test_scale_out_settings_migrate_serve_and_run_tasks(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = child_env(
        DATABASE_URL=pg_url,
        REDIS_URL=redis_url,
        LOOPKIT_HOME=str(tmp_path / "var"),
        LOOPKIT_HUEY_IMMEDIATE="false",
        CHANNEL_NAME=f"scaleout-{uuid.uuid4().hex}",
    )
    manage("migrate", "--no-input", env=env)

    # A worker and a channel receiver in processes of their own, as in production.
    worker = subprocess.Popen(
        [sys.executable, str(REPO / "manage.py"), "run_huey", "--max-delay", "0.5", "-w", "1"],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    receiver = subprocess.Popen(
        [sys.executable, str(REPO / "manage.py"), "shell", "-c", (SCRIPTS / "channel_receive.py").read_text()],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        proc = shell(SCRIPTS / "scaleout_check.py", env=env)
        received, errors = receiver.communicate(timeout=30)
    finally:
        for child in (worker, receiver):
            child.terminate()
            child.wait(timeout=10)

    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    assert result["team"] == ["Scale Team", "owner"]
    status, health = result["health"]
    assert status == 200, health
    assert {name: (c["ok"], c["backend"]) for name, c in health["checks"].items()} == {
        "database": (True, "postgresql"),
        "huey": (True, "RedisHuey"),
        "channel_layer": (True, "RedisChannelLayer"),
    }
    # The database itself refuses to change the audit log, whatever the client.
    assert [r and r.split(":")[0] for r in result["raw_sql"]] == [
        "audit events are append-only",
        "audit events are append-only",
    ]
    assert result["raw_sql"][0] == "audit events are append-only: UPDATE is refused"
    assert result["raw_sql"][1] == "audit events are append-only: DELETE is refused"
    assert result["audit_action"] == "team.created"
    assert result["task"]["payload"] == "scaled"
    assert result["task"]["pid"] == worker.pid != result["pid"]
    assert "RECEIVED" in received, errors
    message = json.loads(received.split("RECEIVED ", 1)[1])
    assert message == {"type": "test.message", "text": "across processes"}

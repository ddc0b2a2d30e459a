"""Real Huey worker processes: a worker killed mid-run, and workers racing on one schedule.

Each scenario runs in the embedded default (SQLite, SqliteHuey, channels-lite)
and on the real PostgreSQL + Redis of this machine (skipped loudly on a
laptop without them, failing in CI). Children get production-like settings
(tests/web/procs.py); the test reads their database directly.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import service_urls

from loopkit import yamlio

from .procs import REPO, child_env, fresh_pg_database, manage, shell, skip_or_fail

SCRIPTS = Path(__file__).parent / "scripts"
REDIS_RUNS_URL = os.environ.get(
    "LOOPKIT_TEST_RUNS_REDIS_URL", service_urls.redis_url("runs_workers")
)

CRASH_LOOP = yamlio.dump(
    yamlio.loop_from_data(
        {
            "name": "crash-test",
            "pipeline": [
                {"prompt": "Step one", "label": "One"},
                {"prompt": "Step two", "label": "Two"},
                {"prompt": "Step three", "label": "Three"},
            ],
            "verify": {"maker": ["One", "Two", "Three"], "checker": "Adversarial Verifier"},
            "dryRun": {"latencyMs": 1200},
        }
    )
)
MANY_LOOP = CRASH_LOOP.replace("latencyMs: 1200", "latencyMs: 2000")
GATED_LOOP = yamlio.dump(
    yamlio.loop_from_data(
        {
            "name": "gated",
            "pipeline": [
                {"prompt": "Draft", "label": "Draft"},
                {
                    "approve": "Ship it?",
                    "label": "Gate",
                    "timeoutMinutes": 0.05,
                    "onTimeout": "approve",
                },
                {"prompt": "Ship", "label": "Ship"},
            ],
        }
    )
)
CRON_LOOP = yamlio.dump(
    yamlio.loop_from_data(
        {
            "name": "every-minute",
            "trigger": {"type": "cron", "schedule": "* * * * *"},
            "pipeline": [{"prompt": "Tick", "label": "Tick"}],
        }
    )
)


class Db:
    """Read the children's database (SQLite file or PostgreSQL) with plain SQL."""

    def __init__(self, url: str | None, sqlite_path: Path | None) -> None:
        self.url = url
        self.sqlite_path = sqlite_path

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if self.sqlite_path is not None:
            with sqlite3.connect(self.sqlite_path, timeout=20) as conn:
                return list(conn.execute(sql.replace("%s", "?"), params).fetchall())
        import psycopg

        with psycopg.connect(str(self.url).replace("postgres://", "postgresql://")) as conn:
            return list(conn.execute(sql, params).fetchall())  # type: ignore[arg-type]

    def one(self, sql: str, *params: Any) -> Any:
        rows = self.rows(sql, *params)
        return rows[0][0] if rows else None


@pytest.fixture(params=["embedded", "postgres+redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[dict[str, str], Db]]:
    """Yield (child environment, database reader) for one deployment setting."""
    common = {
        "LOOPKIT_HOME": str(tmp_path / "var"),
        "LOOPKIT_HUEY_IMMEDIATE": "false",
        "LOOPKIT_RUN_HEARTBEAT_SECONDS": "0.3",
        "LOOPKIT_RUN_STALE_SECONDS": "2",
        "LOOPKIT_RUNS_DRY_RUN_ONLY": "true",
    }
    if request.param == "embedded":
        yield child_env(**common), Db(None, tmp_path / "var" / "loopkit.sqlite3")
        return
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_RUNS_URL, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis is not reachable at {REDIS_RUNS_URL}: {exc}")
    # A queue of this test's own: test sessions running side by side share the database.
    name = f"loopkit-test-{uuid.uuid4().hex[:8]}"
    with fresh_pg_database("loopkit_runs") as url:
        try:
            env = child_env(
                DATABASE_URL=url, REDIS_URL=REDIS_RUNS_URL, LOOPKIT_HUEY_NAME=name, **common
            )
            yield env, Db(url, None)
        finally:
            for key in client.scan_iter(match=f"*{name}*"):
                client.delete(key)


def start_worker(env: dict[str, str], log: Path, *options: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, str(REPO / "manage.py"), "run_huey", "-w", "2", "-m", "0.3", *options],
            env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    """Poll *check* until it returns something truthy; fail naming *what*."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def result_of(proc: subprocess.CompletedProcess[str]) -> Any:
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def stop(*procs: subprocess.Popen[bytes]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _payload(raw: Any) -> dict[str, Any]:
    return json.loads(raw) if isinstance(raw, str) else dict(raw)


def _labels(db: Db, run_id: int, type_: str) -> list[str]:
    rows = db.rows(
        "SELECT payload FROM runs_runevent WHERE run_id = %s AND type = %s ORDER BY seq",
        run_id,
        type_,
    )
    return [str(p.get("label")) for p in map(_payload, (r[0] for r in rows))]


@pytest.mark.services
def test_a_run_whose_worker_is_killed_resumes_on_another_without_redoing_finished_steps(
    backend: tuple[dict[str, str], Db], tmp_path: Path
) -> None:
    """...and the call in flight at the kill, paid and made again, is one lost call."""
    env, db = backend
    manage("migrate", "--no-input", env=env)
    run_id = result_of(shell(SCRIPTS / "runs_setup.py", env={**env, "RUNS_LOOP_YAML": CRASH_LOOP}))[
        "run"
    ]
    log = tmp_path / "workers.log"
    first = start_worker(env, log)
    second = None
    try:
        # Kill the worker as soon as step Two has started (One is finished): Two's call
        # (1.2 s) is in flight.
        wait_for("step Two to start", lambda: "Two" in _labels(db, run_id, "step_started"))
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        assert db.one("SELECT status FROM runs_run WHERE id = %s", run_id) == "running"
        done = _labels(db, run_id, "step_finished")
        in_flight = [s for s in _labels(db, run_id, "step_started") if s not in done]
        assert len(in_flight) == 1, in_flight  # Two, unless the kill came late

        second = start_worker(env, log)
        # The periodic recovery task of the new worker may take the run over by itself
        # once its heartbeat is stale; otherwise enqueue the same task now.
        wait_for(
            "the heartbeat to go stale (or the run to be taken over)",
            lambda: (
                _stale(db, run_id)
                or db.one("SELECT attempt FROM runs_run WHERE id = %s", run_id) == 2
            ),
            timeout=30,
        )
        if db.one("SELECT attempt FROM runs_run WHERE id = %s", run_id) == 1:
            recovered = result_of(shell(SCRIPTS / "runs_recover.py", env=env))
            assert recovered["resumed"] in ([run_id], []), recovered
        status = wait_for(
            "the resumed run to finish",
            lambda: db.one(
                "SELECT status FROM runs_run WHERE id = %s AND finished_at IS NOT NULL", run_id
            ),
        )
    finally:
        stop(first, *(p for p in [second] if p is not None))
    assert status == "succeeded", log.read_text()[-3000:]

    assert_resumed_once(db, run_id)
    assert db.one("SELECT attempt FROM runs_run WHERE id = %s", run_id) == 2

    # The call in flight at the kill: recorded once, right after the take-over.
    events = db.rows(
        "SELECT type, payload FROM runs_runevent WHERE run_id = %s ORDER BY seq", run_id
    )
    payloads = [(t, _payload(p)) for t, p in events]
    types = [t for t, _ in payloads]
    assert types.count("calls_lost") == 1
    assert types[types.index("run_recovered") + 1] == "calls_lost"
    lost = next(p for t, p in payloads if t == "calls_lost")
    assert (lost["calls"], lost["attempt"]) == (1, 1)
    assert [s["label"] for s in lost["steps"]] == in_flight
    assert payloads[-1][1]["lost_calls"] == 1  # the engine counted it as a call made
    lost_calls, cost_known = db.rows(
        "SELECT lost_calls, cost_known FROM runs_run WHERE id = %s", run_id
    )[0]
    assert (lost_calls, bool(cost_known)) == (1, False)
    api = result_of(shell(SCRIPTS / "runs_api_run.py", env={**env, "RUNS_RUN_ID": str(run_id)}))
    assert api["status"] == 200, api
    body = api["body"]
    assert (body["lost_calls"], body["cost_known"]) == (1, False)
    assert body["cost_label"].endswith(" + 1 lost call (cost unknown)"), body["cost_label"]


def assert_resumed_once(db: Db, run_id: int) -> None:
    """A run resumed after its worker was killed: nothing lost, duplicated or paid twice."""
    events = db.rows(
        "SELECT seq, type, payload FROM runs_runevent WHERE run_id = %s ORDER BY seq", run_id
    )
    seqs = [e[0] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), "events must be numbered without gaps"
    payloads = [(t, json.loads(p) if isinstance(p, str) else p) for _, t, p in events]
    finished = [p for t, p in payloads if t == "step_finished" and p.get("kind") == "agent"]
    # Each step finished once: a step finished before the kill is answered from its
    # checkpoint (not paid again), and its replay is stored only if its event was lost.
    assert sorted(p["label"] for p in finished) == ["One", "Three", "Two"], finished
    types = [t for t, _ in payloads]
    assert types.count("run_recovered") == 1
    assert types.count("run_finished") == 1 and types[-1] == "run_finished"
    assert types.count("verification_round") == 1
    checkpoints = db.rows("SELECT key FROM runs_checkpoint WHERE run_id = %s", run_id)
    assert len([k for (k,) in checkpoints if "pipeline" in k]) == 3

    # A call in flight at the kill is recorded once, right after the take-over.
    assert types.count("calls_lost") <= 1


@pytest.mark.services
def test_a_worker_killed_with_100_runs_in_flight_leaves_every_one_to_the_other_worker(
    backend: tuple[dict[str, str], Db], tmp_path: Path
) -> None:
    env, db = backend
    env = {**env, "LOOPKIT_RUN_CONCURRENCY_PER_TEAM": "1000"}
    manage("migrate", "--no-input", env=env)
    setup = {**env, "RUNS_LOOP_YAML": MANY_LOOP, "RUNS_COUNT": "100"}
    runs = result_of(shell(SCRIPTS / "runs_setup.py", env=setup))["runs"]
    log = tmp_path / "workers.log"
    first = start_worker(env, log)
    second = None
    try:
        # All 100 in flight at once in one process, each past its first step.
        wait_for(
            "every run to finish step One",
            lambda: (
                db.one(
                    "SELECT count(DISTINCT run_id) FROM runs_runevent WHERE type = 'step_finished'"
                )
                == 100
            ),
        )
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        assert db.one("SELECT count(*) FROM runs_run WHERE status = 'running'") == 100
        # Without its periodic tasks, so this test's recovery sweep is the one taking over.
        second = start_worker(env, log, "--no-periodic")
        wait_for("the heartbeats to go stale", lambda: _stale(db, runs[-1]), timeout=30)
        recovered = result_of(shell(SCRIPTS / "runs_recover.py", env=env))
        assert sorted(recovered["resumed"]) == sorted(runs), recovered
        wait_for(
            "every resumed run to finish",
            lambda: db.one("SELECT count(*) FROM runs_run WHERE finished_at IS NOT NULL") == 100,
            timeout=120,
        )
    finally:
        stop(first, *(p for p in [second] if p is not None))
    statuses = db.rows("SELECT status, attempt, count(*) FROM runs_run GROUP BY status, attempt")
    assert statuses == [("succeeded", 2, 100)], log.read_text()[-3000:]
    for run_id in runs:
        assert_resumed_once(db, run_id)


@pytest.mark.services
def test_a_waiting_run_holds_no_worker_and_resumes_on_its_decision_or_its_deadline(
    backend: tuple[dict[str, str], Db], tmp_path: Path
) -> None:
    env, db = backend
    manage("migrate", "--no-input", env=env)
    setup = {**env, "RUNS_LOOP_YAML": GATED_LOOP, "RUNS_COUNT": "2"}
    decided, timed_out = result_of(shell(SCRIPTS / "runs_setup.py", env=setup))["runs"]
    log = tmp_path / "workers.log"
    # No periodic tasks: only the deadline's own scheduled task can wake the second run.
    worker = start_worker(env, log, "--no-periodic")
    try:
        for run_id in (decided, timed_out):
            wait_for(
                f"run {run_id} to suspend",
                lambda run_id=run_id: db.one(
                    "SELECT 1 FROM runs_run WHERE id = %s AND status = 'waiting_for_approval'"
                    " AND worker = ''",
                    run_id,
                ),
            )
        result = result_of(
            shell(SCRIPTS / "runs_decide.py", env={**env, "RUNS_RUN_ID": str(decided)})
        )
        assert len(result["decided"]) == 1
        for run_id in (decided, timed_out):
            wait_for(
                f"run {run_id} to finish",
                lambda run_id=run_id: db.one(
                    "SELECT status FROM runs_run WHERE id = %s AND finished_at IS NOT NULL", run_id
                ),
            )
    finally:
        stop(worker)
    for run_id, by in ((decided, "runner"), (timed_out, "timeout")):
        assert db.one("SELECT status FROM runs_run WHERE id = %s", run_id) == "succeeded"
        assert (
            db.one("SELECT decided_by_label FROM runs_approvalrequest WHERE run_id = %s", run_id)
            == by
        )
        types = [
            t
            for (t,) in db.rows(
                "SELECT type FROM runs_runevent WHERE run_id = %s ORDER BY seq", run_id
            )
        ]
        assert types.count("approval_requested") == 1
        assert types.count("run_suspended") == 1
        assert types.index("run_suspended") < types.index("approval_resolved")
        labels = [
            json.loads(p)["label"] if isinstance(p, str) else p["label"]
            for (p,) in db.rows(
                "SELECT payload FROM runs_runevent WHERE run_id = %s AND type = 'step_finished'",
                run_id,
            )
        ]
        assert sorted(labels) == ["Draft", "Gate", "Ship"]  # Draft ran (and was paid) once


def _stale(db: Db, run_id: int) -> bool:
    heartbeat = db.one("SELECT heartbeat_at FROM runs_run WHERE id = %s", run_id)
    if heartbeat is None:
        return False
    if isinstance(heartbeat, str):
        from datetime import datetime

        heartbeat = datetime.fromisoformat(heartbeat)
    from datetime import UTC, datetime

    if heartbeat.tzinfo is None:
        heartbeat = heartbeat.replace(tzinfo=UTC)
    return (datetime.now(UTC) - heartbeat).total_seconds() > 2.5


@pytest.mark.services
def test_two_workers_and_one_cron_schedule_make_one_run_per_due_time(
    backend: tuple[dict[str, str], Db], tmp_path: Path
) -> None:
    env, db = backend
    manage("migrate", "--no-input", env=env)
    result_of(
        shell(
            SCRIPTS / "runs_setup.py", env={**env, "RUNS_LOOP_YAML": CRON_LOOP, "RUNS_NO_RUN": "1"}
        )
    )
    log = tmp_path / "workers.log"
    workers = [start_worker(env, log), start_worker(env, log)]
    try:
        ticks = result_of(shell(SCRIPTS / "runs_cron_race.py", env=env))
    finally:
        stop(*workers)
    # Each worker's own scheduler also ticks at start: every tick of every worker races.
    fired = [run for tick in ticks["ticks"] for run in tick["runs"]]
    assert len(ticks["ticks"]) == 8
    firings = db.rows("SELECT due_time, run_id FROM runs_cronfiring ORDER BY due_time")
    due_times = [_aware(due).isoformat() for due, _ in firings]
    assert len(set(due_times)) == len(due_times)
    assert set(ticks["due"]) <= set(due_times)
    assert set(fired) <= {run for _, run in firings}
    assert db.one("SELECT count(*) FROM runs_run") == len(firings)
    assert {tick["pid"] for tick in ticks["ticks"]} <= {w.pid for w in workers}


def _aware(value: Any) -> Any:
    from datetime import UTC, datetime

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)

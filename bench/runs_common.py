"""Shared plumbing of the runs benchmarks: child processes with deployment settings.

Each benchmark starts LoopKit the way a deployment does (``manage.py`` with
environment variables, ``run_huey`` workers, Daphne) in a fresh var/ folder
and, for the scale-out setting, a throw-away PostgreSQL database and a Redis
database of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("LOOPKIT_BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
sys.path.insert(0, str(REPO / "tests"))
from service_urls import redis_url  # noqa: E402  (the Redis databases, named in one place)

REDIS_URL = os.environ.get("LOOPKIT_BENCH_REDIS_URL", redis_url("bench"))
_STRIPPED = ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "LOOPKIT_HOME",
             "LOOPKIT_HUEY_IMMEDIATE", "LOOPKIT_CHANNEL_LAYER")  # fmt: skip

SETUP = """
import json, os
from django.contrib.auth import get_user_model
from builder.services import create_loop
from loopkit_web.teams.services import create_team
user = get_user_model().objects.create_user("bench", password="bench-password-123")
team = create_team(None, user, "Bench Team")
loop, _ = create_loop(None, team, os.environ["BENCH_LOOP_YAML"])
print("RESULT " + json.dumps({"team": team.pk, "loop": loop.pk}))
"""


@contextlib.contextmanager
def deployment(setting: str, redis: str = REDIS_URL, **extra: str) -> Iterator[dict[str, str]]:
    """Yield the environment of a fresh deployment: ``embedded`` or ``redis`` (PostgreSQL + Redis).

    *redis*: the Redis database to use (and flush), by default the benchmarks' own.
    """
    var = tempfile.mkdtemp(prefix="loopkit-bench-")
    env = {k: v for k, v in os.environ.items() if k not in _STRIPPED}
    env.update(
        DJANGO_SETTINGS_MODULE="loopkit_web.settings",
        DEBUG=os.environ.get("DEBUG", "true"),  # the development mode, as `make run`
        LOOPKIT_HOME=var,
        LOOPKIT_HUEY_IMMEDIATE="false",
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="WARNING",
        **extra,
    )
    try:
        if setting == "embedded":
            yield env
            return
        import psycopg
        import redis as redis_client

        name = f"loopkit_bench_{uuid.uuid4().hex[:8]}"
        url = PG_ADMIN_URL.replace("postgres://", "postgresql://")
        admin = psycopg.connect(url, autocommit=True)
        client = redis_client.Redis.from_url(redis)
        client.flushdb()
        admin.execute(f'CREATE DATABASE "{name}"')
        env.update(DATABASE_URL=PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name, REDIS_URL=redis)
        try:
            yield env
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.close()
            client.flushdb()
    finally:
        shutil.rmtree(var, ignore_errors=True)


def manage(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, str(REPO / "manage.py"), *args],
        env=env, cwd=REPO, capture_output=True, text=True, input=stdin, timeout=600,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"manage.py {args[0]} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def result(output: str) -> Any:
    return json.loads(next(ln for ln in output.splitlines() if ln.startswith("RESULT "))[7:])


def setup(env: dict[str, str], loop_yaml: str) -> dict[str, int]:
    """Migrate and create a user ``bench``, a team and the loop; return their ids."""
    manage(env, "migrate", "--no-input")
    return result(manage({**env, "BENCH_LOOP_YAML": loop_yaml}, "shell", "-c", SETUP))  # type: ignore[no-any-return]


def spawn(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *args], env=env, cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def worker(env: dict[str, str], threads: int | None = 1) -> subprocess.Popen[bytes]:
    """Start ``manage.py run_huey`` (``-w threads``; None: the settings' LOOPKIT_HUEY_WORKERS)."""
    workers = [] if threads is None else ["-w", str(threads)]
    return spawn(env, str(REPO / "manage.py"), "run_huey", *workers, "-m", "0.1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(*procs: subprocess.Popen[bytes]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_http(url: str, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer in {timeout} s")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


SETUP_TEAM = """
import json, os
from django.contrib.auth import get_user_model
from builder.services import create_loop
from loopkit_web.accounts.models import ApiToken
from loopkit_web.teams.services import create_team
from providers import services as providers
user = get_user_model().objects.create_user("bench", password="bench-password-123")
team = create_team(None, user, "Bench Team")
if os.environ.get("BENCH_API_BASE"):
    providers.create(None, team, {"name": "bench", "model": "openai/bench-model", "default": True,
                                  "api_base": os.environ["BENCH_API_BASE"], "api_key": "sk-bench-0000"})
loops = {name: create_loop(None, team, text)[0].pk
         for name, text in json.loads(os.environ["BENCH_LOOPS"]).items()}
_, token = ApiToken.issue(user=user, team=team, name="bench")
print("RESULT " + json.dumps({"team": team.pk, "loops": loops, "token": token}))
"""

ENQUEUE = """
import json, os, time
from django.db import transaction
from builder.models import Loop
from runs.lifecycle import start_run
loop = Loop.objects.get(pk=int(os.environ["BENCH_LOOP"]))
started = time.perf_counter()
# One transaction: every run is enqueued at its commit (start_run enqueues on commit), at once.
with transaction.atomic():
    ids = [start_run(loop, trigger_type="manual", dry_run=os.environ["BENCH_DRY"] == "1",
                     label="bench").pk for _ in range(int(os.environ["BENCH_RUNS"]))]
print("RESULT " + json.dumps({"first": min(ids), "last": max(ids), "committed_at": time.time(),
                              "enqueue_s": time.perf_counter() - started}))
"""


def setup_team(
    env: dict[str, str], loops: dict[str, str], api_base: str | None = None
) -> dict[str, Any]:
    """Migrate; create user ``bench``, a team (with a default provider ``team:bench`` at
    *api_base* when given), the *loops* (name -> YAML) and an API token of the user."""
    manage(env, "migrate", "--no-input")
    extra = {"BENCH_LOOPS": json.dumps(loops), "BENCH_API_BASE": api_base or ""}
    return result(manage({**env, **extra}, "shell", "-c", SETUP_TEAM))  # type: ignore[no-any-return]


def enqueue(env: dict[str, str], loop: int, runs: int, *, dry_run: bool) -> dict[str, Any]:
    """Create *runs* runs of *loop* in one transaction (all enqueued at its commit)."""
    extra = {"BENCH_LOOP": str(loop), "BENCH_RUNS": str(runs), "BENCH_DRY": "1" if dry_run else "0"}
    return result(manage({**env, **extra}, "shell", "-c", ENQUEUE))  # type: ignore[no-any-return]


class Db:
    """Read the deployment's database from the bench (PostgreSQL, or the embedded SQLite)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.postgres = bool(env.get("DATABASE_URL"))
        if self.postgres:
            import psycopg

            url = env["DATABASE_URL"].replace("postgres://", "postgresql://")
            self._conn: Any = psycopg.connect(url, autocommit=True)
        else:
            import sqlite3

            path = Path(env["LOOPKIT_HOME"]) / "loopkit.sqlite3"
            self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
            self._conn.execute("PRAGMA busy_timeout = 20000")

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if not self.postgres:
            sql = sql.replace("%s", "?")
        return list(self._conn.execute(sql, params).fetchall())

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...]:
        return self.rows(sql, params)[0]

    def close(self) -> None:
        self._conn.close()


def timestamp(value: Any) -> float | None:
    """Seconds since the epoch of a datetime column (psycopg gives datetimes, SQLite text)."""
    if value is None:
        return None
    if isinstance(value, str):
        from datetime import UTC, datetime

        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    return float(value.timestamp())


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (kB) and Threads of process *pid* (from /proc; {} once it is gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "Threads"):
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) process *pid* has used."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_quiet(pids: list[int], timeout: float = 120, cpu_per_s: float = 0.05) -> float:
    """Wait until each process uses under *cpu_per_s* of a core over a second (started up)."""
    started = time.monotonic()
    last = {pid: proc_cpu(pid) for pid in pids}
    while time.monotonic() - started < timeout:
        time.sleep(1.0)
        now = {pid: proc_cpu(pid) for pid in pids}
        if all(now[pid] - last[pid] < cpu_per_s for pid in pids):
            break
        last = now
    return time.monotonic() - started


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())

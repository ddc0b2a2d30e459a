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
    if setting == "embedded":
        yield env
        return
    import psycopg
    import redis as redis_client

    name = f"loopkit_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(PG_ADMIN_URL.replace("postgres://", "postgresql://"), autocommit=True)
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


def worker(env: dict[str, str], threads: int = 1) -> subprocess.Popen[bytes]:
    return spawn(env, str(REPO / "manage.py"), "run_huey", "-w", str(threads), "-m", "0.1")


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

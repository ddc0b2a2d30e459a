"""Run manage.py in child processes with production-like settings (not the test settings)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import service_urls

REPO = Path(__file__).resolve().parents[2]

#: Where the scale-out tests make (and drop) their throw-away PostgreSQL databases.
PG_ADMIN_URL = service_urls.PG_ADMIN_URL

# Variables of the test process that must not leak into a child's settings.
_STRIPPED = (
    "DJANGO_SETTINGS_MODULE",
    "DATABASE_URL",
    "REDIS_URL",
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "LOOPKIT_HOME",
    "LOOPKIT_VAR_DIR",
    "LOOPKIT_HUEY_IMMEDIATE",
    "LOOPKIT_CHANNEL_LAYER",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
)


def child_env(**overrides: str) -> dict[str, str]:
    """Return an environment for a child process: the machine's, minus test settings.

    ``LOOPKIT_CHILD_SETTINGS`` picks another settings module for children
    (default ``loopkit_web.settings``). Children run in the development mode
    (``DEBUG=true``, as ``make run``) with their files in the test process's
    temporary ``LOOPKIT_HOME`` unless *overrides* say otherwise.
    """
    env = {k: v for k, v in os.environ.items() if k not in _STRIPPED}
    env["DJANGO_SETTINGS_MODULE"] = os.environ.get("LOOPKIT_CHILD_SETTINGS", "loopkit_web.settings")
    env["DEBUG"] = "true"
    env["LOOPKIT_HOME"] = os.environ.get("LOOPKIT_HOME") or os.environ.get("LOOPKIT_VAR_DIR", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


def manage(
    *args: str, env: dict[str, str], cwd: Path = REPO, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py *args`` and return the finished process (output captured)."""
    proc = subprocess.run(
        [sys.executable, str(cwd / "manage.py"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"manage.py {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def shell(script: Path, env: dict[str, str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a Python file inside ``manage.py shell``."""
    return manage("shell", "-c", script.read_text(), env=env, **kwargs)


def clone_like_copy(dest: Path) -> Path:
    """Copy the files a clone of this working tree would have into *dest*."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in listed:
        if not raw:
            continue
        rel = raw.decode()
        source = REPO / rel
        if not source.is_file():
            continue  # deleted in the working tree
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_loopkit(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """Run ``manage.py loopkit_start`` (server and worker) until healthy; yield its URL."""
    port = free_port()
    log = log_path.open("wb")
    server = subprocess.Popen(
        [sys.executable, str(REPO / "manage.py"), "loopkit_start", "--no-demo", "--port", str(port)],
        env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.terminate()
            pytest.fail("LoopKit did not start:\n" + log_path.read_text()[-3000:])
        time.sleep(0.2)
    try:
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()


def services_required() -> bool:
    """True in CI: a missing service is a failure there, not a skip."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def skip_or_fail(reason: str) -> None:
    if services_required():
        pytest.fail(f"{reason} (CI=true: the real services must be running)")
    pytest.skip(
        f"SKIPPED LOUDLY: {reason}. Start the service (see DEVELOPERS.md) to run this test."
    )


@contextmanager
def fresh_pg_database(prefix: str) -> Iterator[str]:
    """Create an empty PostgreSQL database; yield its URL; drop it (skip or fail if unreachable)."""
    psycopg = pytest.importorskip("psycopg")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
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

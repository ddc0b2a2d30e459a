"""The database under load: bounded connections, and 503 (never 500) when it refuses.

Against the real PostgreSQL of this machine (skipped loudly on a laptop without
it, failing in CI). The HTTP tests run Daphne in a child process with the
deployment's settings, as a user reaches it, connected as a role of their own:
the test reads that role's connections in ``pg_stat_activity`` and, with
``ALTER ROLE ... CONNECTION LIMIT 0``, makes the server refuse it.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db import DatabaseError
from django.db import OperationalError as DjangoOperationalError
from django.db.utils import ConnectionHandler

from loopkit import yamlio
from loopkit_web.db import RETRY_AFTER_SECONDS, is_refusal

from .procs import (
    PG_ADMIN_URL,
    REPO,
    child_env,
    free_port,
    fresh_pg_database,
    manage,
    shell,
    skip_or_fail,
)

psycopg = pytest.importorskip("psycopg")
psycopg_pool = pytest.importorskip("psycopg_pool")

pytestmark = pytest.mark.services

SCRIPTS = Path(__file__).parent / "scripts"
ADMIN_URL = PG_ADMIN_URL.replace("postgres://", "postgresql://")
SERVER = ADMIN_URL.rsplit("/", 1)[0].split("@", 1)[1]  # host:port
LOOP = yamlio.dump(
    yamlio.loop_from_data({"name": "load-test", "pipeline": [{"prompt": "Hi", "label": "Hi"}]})
)
POOL_MIN, POOL_MAX = 1, 3


@pytest.fixture
def admin() -> Iterator[Any]:
    """A superuser connection (autocommit): makes roles, reads pg_stat_activity."""
    try:
        conn = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        skip_or_fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}")
    with conn:
        yield conn


@contextmanager
def login_role(admin: Any, limit: int = -1) -> Iterator[str]:
    """Create a login role with a connection limit (-1: none); yield its name; drop it."""
    role = f"loopkit_load_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT {limit}')
    try:
        yield role
    finally:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [role]
        )
        admin.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture
def unblocked(django_db_blocker: Any) -> Iterator[None]:
    """Let Django connect to databases of the test's own (pytest-django blocks it)."""
    with django_db_blocker.unblock():
        yield


def django_connection(alias: str, user: str, **extra: Any) -> Any:
    """A Django PostgreSQL connection (not yet connected) of its own settings."""
    host, port = SERVER.rsplit(":", 1)
    db = {"ENGINE": "django.db.backends.postgresql", "NAME": "postgres", "USER": user}
    handler = ConnectionHandler({"default": {}, alias: {**db, "HOST": host, "PORT": port, **extra}})
    return handler[alias]


def caught(action: Callable[[], Any], kind: type[BaseException] = Exception) -> BaseException:
    with pytest.raises(kind) as info:
        action()
    return info.value


# ── is_refusal, on errors the real database raises ────────────────────────


def test_a_role_at_its_connection_limit_is_refused_raw_and_through_django(
    admin: Any, unblocked: None
) -> None:
    with login_role(admin, limit=0) as role:
        raw = caught(lambda: psycopg.connect(f"postgresql://{role}@{SERVER}/postgres"))
        wrapped = caught(django_connection("refusal_raw", role).ensure_connection)

    assert "too many connections for role" in str(raw)
    assert isinstance(wrapped, DjangoOperationalError)
    assert is_refusal(raw) and is_refusal(wrapped)


def test_a_pool_that_cannot_connect_in_time_is_a_refusal(admin: Any, unblocked: None) -> None:
    with login_role(admin, limit=0) as role:
        conn = django_connection(
            "refusal_pool", role, OPTIONS={"pool": {"min_size": 0, "max_size": 1, "timeout": 0.5}}
        )
        try:
            error = caught(conn.ensure_connection)
        finally:
            conn.close_pool()

    assert isinstance(error, DjangoOperationalError)
    assert isinstance(error.__cause__, psycopg_pool.PoolTimeout)
    assert is_refusal(error)


def test_a_pool_whose_connections_are_all_busy_is_a_refusal(admin: Any) -> None:
    pool = psycopg_pool.ConnectionPool(ADMIN_URL, min_size=0, max_size=1, timeout=0.3)
    with pool, pool.connection():  # its only connection, taken
        error = caught(pool.getconn)

    assert isinstance(error, psycopg_pool.PoolTimeout)
    assert is_refusal(error)


def test_a_server_that_does_not_listen_is_a_refusal() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        error = caught(lambda: psycopg.connect(f"postgresql://x@127.0.0.1:{port}/x"))

    assert is_refusal(error)


def test_a_locked_sqlite_database_is_a_refusal(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        locked = caught(lambda: other.execute("BEGIN IMMEDIATE"))
        missing = caught(lambda: other.execute("SELECT * FROM nowhere"))
    finally:
        other.close()
        holder.close()

    assert is_refusal(locked)
    assert not is_refusal(missing)


def test_broken_queries_and_bad_credentials_are_not_refusals(admin: Any, unblocked: None) -> None:
    conn = django_connection("refusal_queries", "postgres")
    try:
        with conn.cursor() as cursor:
            cursor.execute("CREATE TEMP TABLE t (id int PRIMARY KEY)")
            cursor.execute("INSERT INTO t VALUES (1)")
            duplicate = caught(lambda: cursor.execute("INSERT INTO t VALUES (1)"), DatabaseError)
            syntax = caught(lambda: cursor.execute("SELEC 1"), DatabaseError)
            cursor.execute("SET statement_timeout = 1")
            timeout = caught(lambda: cursor.execute("SELECT pg_sleep(1)"), DatabaseError)
    finally:
        conn.close()
    no_role = caught(lambda: psycopg.connect(f"postgresql://no_such_role_x@{SERVER}/postgres"))

    assert type(duplicate).__name__ == "IntegrityError"
    assert type(syntax).__name__ == "ProgrammingError"
    # A cancelled statement is an OperationalError too, but retrying it would not help.
    assert isinstance(timeout, DjangoOperationalError)
    assert not any(is_refusal(e) for e in (duplicate, syntax, timeout, no_role))


# ── Through Daphne: the pool's bound, and 503 when the server refuses ─────


class ActivitySampler(threading.Thread):
    """Count *role*'s connections to *database* every 20 ms; keep the peak."""

    def __init__(self, database: str, role: str) -> None:
        super().__init__(daemon=True)
        self.database, self.role = database, role
        self.peak = 0
        self.stopping = threading.Event()

    def count(self, conn: Any) -> int:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND usename = %s",
            [self.database, self.role],
        ).fetchone()
        return int(row[0])

    def run(self) -> None:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            while not self.stopping.is_set():
                self.peak = max(self.peak, self.count(conn))
                time.sleep(0.02)

    def stop(self) -> int:
        self.stopping.set()
        self.join(timeout=10)
        return self.peak


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


DAPHNE = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", "{port}",
          "loopkit_web.asgi:application"]  # fmt: skip
SERVE = [sys.executable, str(REPO / "manage.py"), "loopkit_start", "--no-demo", "--no-worker",
         "--port", "{port}"]  # fmt: skip


@contextmanager
def serving(env: dict[str, str], log_path: Path, command: list[str] = DAPHNE) -> Iterator[str]:
    """Run *command* (Daphne by default) on a free port until it answers; yield its URL."""
    port = free_port()
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [part.format(port=port) for part in command],
            env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:

            def healthy() -> bool:
                if server.poll() is not None:
                    pytest.fail("the server exited:\n" + log_path.read_text()[-3000:])
                try:
                    return httpx.get(f"{url}/api/health", timeout=5).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for("the server to answer", healthy)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=20)


def logged_in(url: str, user: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=60)
    client.get("/accounts/login/")
    client.post(
        "/accounts/login/",
        data={"username": user, "password": password,
              "csrfmiddlewaretoken": client.cookies["csrftoken"]},
        headers={"Referer": url + "/accounts/login/"},
    )  # fmt: skip
    assert "sessionid" in client.cookies
    return client


@contextmanager
def deployment(admin: Any, tmp_path: Path) -> Iterator[tuple[str, str, dict[str, str]]]:
    """A fresh database owned by a role of its own; yield (database, role, child environment)."""
    with login_role(admin) as role, fresh_pg_database("loopkit_dbload") as admin_db_url:
        database = admin_db_url.rsplit("/", 1)[1]
        admin.execute(f'ALTER DATABASE "{database}" OWNER TO "{role}"')
        yield (
            database,
            role,
            child_env(
                DATABASE_URL=f"postgres://{role}@{SERVER}/{database}",
                LOOPKIT_HOME=str(tmp_path / "var"),
                LOOPKIT_HUEY_IMMEDIATE="false",  # no worker: the runs stay queued
                LOOPKIT_CHANNEL_LAYER="memory",
                LOOPKIT_RUNS_DRY_RUN_ONLY="true",
                LOOPKIT_DB_POOL_MIN=str(POOL_MIN),
                LOOPKIT_DB_POOL_MAX=str(POOL_MAX),
                # Long enough for the burst on a busy machine; each refusal takes this long.
                LOOPKIT_DB_POOL_TIMEOUT="15",
                LOOPKIT_DB_POOL_MAX_IDLE="0.5",
            ),
        )


def test_loopkit_serve_holds_no_connection_of_its_own_while_it_serves(
    admin: Any, tmp_path: Path
) -> None:
    with deployment(admin, tmp_path) as (database, role, env):
        sampler = ActivitySampler(database, role)
        # The parent migrates and makes the first admin, then only watches Daphne.
        with serving(env, tmp_path / "serve.log", SERVE):
            # Daphne keeps its pool's minimum (1) after the health check; the parent none.
            wait_for("only Daphne's idle connection to be left",
                     lambda: sampler.count(admin) == POOL_MIN)  # fmt: skip


def test_daphne_holds_at_most_its_pool_and_answers_503_while_the_database_refuses(
    admin: Any, tmp_path: Path
) -> None:
    with deployment(admin, tmp_path) as (database, role, env):
        manage("migrate", "--no-input", env=env)
        world = json.loads(
            shell(SCRIPTS / "dbload_setup.py", env={**env, "DBLOAD_LOOP_YAML": LOOP}).stdout.split(
                "RESULT ", 1
            )[1]
        )
        bearer = {"Authorization": f"Bearer {world['token']}"}
        sampler = ActivitySampler(database, role)

        with serving(env, tmp_path / "daphne.log") as url:
            session = logged_in(url, world["user"], world["password"])
            api = httpx.Client(base_url=url, timeout=60, headers=bearer)

            def start_run() -> httpx.Response:
                return api.post("/api/runs", json={"loop_id": world["loop"], "dry_run": True})

            def connections() -> int:
                return sampler.count(admin)

            # A burst: 40 run starts and 10 pages at once, on a pool of 3.
            sampler.start()
            with ThreadPoolExecutor(50) as pool:
                starts = [pool.submit(start_run) for _ in range(40)]
                pages = [pool.submit(session.get, "/loops/") for _ in range(10)]
                start_codes = [f.result().status_code for f in starts]
                page_codes = [f.result().status_code for f in pages]
            peak = sampler.stop()

            assert start_codes == [201] * 40
            assert page_codes == [200] * 10
            # The burst needed more than one connection, and never got more than the pool's.
            assert peak == POOL_MAX
            # Unused connections above the pool's minimum are closed (one per max_idle).
            wait_for("the idle connections to shrink to the pool's minimum",
                     lambda: connections() <= POOL_MIN)  # fmt: skip

            # The server refuses the role any connection, and drops the ones it has.
            admin.execute(f'ALTER ROLE "{role}" CONNECTION LIMIT 0')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [role]
            )
            with ThreadPoolExecutor(2) as pool:
                refused_start = pool.submit(start_run)
                refused_page = pool.submit(session.get, "/loops/")
                api_answer, page_answer = refused_start.result(), refused_page.result()

            assert api_answer.status_code == 503
            assert api_answer.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
            assert api_answer.json() == {
                "code": "database_busy",
                "message": f"the database is busy: try again in {RETRY_AFTER_SECONDS} seconds",
                "details": [],
                "retry_after": RETRY_AFTER_SECONDS,
            }
            assert page_answer.status_code == 503
            assert page_answer.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
            assert page_answer.headers["Content-Type"].startswith("text/html")
            assert "The database is busy" in page_answer.text
            assert "Traceback" not in page_answer.text

            # Once the server accepts connections again, so does the app: no restart.
            admin.execute(f'ALTER ROLE "{role}" CONNECTION LIMIT -1')
            wait_for("a run start to succeed again", lambda: start_run().status_code == 201)
            assert session.get("/loops/").status_code == 200

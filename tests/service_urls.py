"""The real services the tests and benchmarks use, named in one place.

``scripts/ensure-test-services.py`` (run by ``.ci/run``) creates what is
missing (the PostgreSQL ``test`` database) and checks that Redis answers.
Each user of Redis gets a database number of its own, so parallel suites never
flush each other's keys.
"""

from __future__ import annotations

import os

#: A maintenance connection: tests create and drop throw-away databases through it.
PG_ADMIN_URL = os.environ.get("LOOPKIT_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
#: The database the SQL connector's tests read and write (created by CI when missing).
PG_TEST_DB_NAME = "test"
PG_TEST_DB_URL = os.environ.get(
    "LOOPKIT_TEST_PG_DB_URL",
    PG_ADMIN_URL.replace("postgres://", "postgresql://").rsplit("/", 1)[0] + "/" + PG_TEST_DB_NAME,
)

REDIS_SERVER_URL = os.environ.get("LOOPKIT_TEST_REDIS_SERVER", "redis://127.0.0.1:6379")
#: Redis database numbers by user (0 is left to the developer's own app).
REDIS_DATABASES = {
    "scaleout": 12,  # tests/web/test_scaleout.py
    "runs_workers": 13,  # tests/web/test_runs_workers.py
    "bench": 14,  # bench/runs_common.py
    "bench_starts": 10,  # bench/starts.py
    "watchers": 11,  # tests/web/test_runs_watchers.py
}


def redis_url(user: str) -> str:
    """Return the Redis URL of *user*'s database (a key of REDIS_DATABASES)."""
    return f"{REDIS_SERVER_URL}/{REDIS_DATABASES[user]}"

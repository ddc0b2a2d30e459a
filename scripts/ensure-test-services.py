#!/usr/bin/env python3
"""Create what the test suite needs on the real services (run by .ci/run before make test).

The PostgreSQL ``test`` database when it is missing; a ping of each Redis
database the suite uses. The names are in tests/service_urls.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import psycopg
import redis
from service_urls import (
    PG_ADMIN_URL,
    PG_TEST_DB_NAME,
    REDIS_DATABASES,
    redis_url,
)


def main() -> int:
    admin_url = PG_ADMIN_URL.replace("postgres://", "postgresql://")
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as admin:
        found = admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [PG_TEST_DB_NAME]
        ).fetchone()
        if found is None:
            admin.execute(f'CREATE DATABASE "{PG_TEST_DB_NAME}"')
            print(f"PostgreSQL: created the database {PG_TEST_DB_NAME!r}")
        else:
            print(f"PostgreSQL: the database {PG_TEST_DB_NAME!r} exists")
    for user in REDIS_DATABASES:
        redis.Redis.from_url(redis_url(user), socket_connect_timeout=10).ping()
    print(f"Redis: databases {sorted(REDIS_DATABASES.values())} answer")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The SQL connector against a real SQLite file and the real PostgreSQL."""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from service_urls import PG_TEST_DB_URL

from loopkit import spec
from loopkit.connectors import ConnectorError, build
from loopkit.connectors.sql import SqlConnector

PG_URL = PG_TEST_DB_URL


def connector(url: str, **options: Any) -> SqlConnector:
    config = spec.SqlConnector(type="sql", url=url, **options)
    made = build("db", config, root=Path.cwd())
    assert isinstance(made, SqlConnector)
    return made


async def call(conn: SqlConnector, sql: str) -> tuple[bool, Any]:
    tools = {t.tool: t for t in conn.tools()}
    result = await tools["query"].call({"sql": sql})
    if result.is_error:
        return True, result.content
    return False, json.loads(result.content)


# ── SQLite ───────────────────────────────────────────────────────────────


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL)")
        db.executemany(
            "INSERT INTO items (name, price) VALUES (?, ?)",
            [(f"item {i}", i * 1.5) for i in range(500)],
        )
    return path


@pytest.fixture
async def sqlite_db(sqlite_file: Path) -> AsyncIterator[SqlConnector]:
    conn = connector(f"sqlite:///{sqlite_file}", row_limit=50, timeout_seconds=0.5)
    await conn.start()
    yield conn
    await conn.stop()


async def test_it_answers_a_select_with_columns_and_rows(sqlite_db: SqlConnector) -> None:
    is_error, data = await call(sqlite_db, "SELECT id, name FROM items WHERE id <= 2 ORDER BY id")

    assert not is_error
    assert data == {
        "columns": ["id", "name"],
        "rows": [[1, "item 0"], [2, "item 1"]],
        "row_count": 2,
    }


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO items (name, price) VALUES ('x', 1)",
        "UPDATE items SET price = 0",
        "DELETE FROM items",
        "DROP TABLE items",
        "CREATE TABLE evil (a)",
        "ATTACH DATABASE ':memory:' AS other",
        "PRAGMA writable_schema = 1",
        "BEGIN IMMEDIATE",
    ],
)
async def test_it_refuses_writes_on_sqlite(
    sqlite_db: SqlConnector, sqlite_file: Path, sql: str
) -> None:
    is_error, message = await call(sqlite_db, sql)

    assert is_error
    assert message.startswith("refused: "), message
    with sqlite3.connect(sqlite_file) as db:
        assert db.execute("SELECT count(*), sum(price) FROM items").fetchone() == (500, 187125.0)
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["items"]


async def test_it_refuses_a_second_statement_on_sqlite(sqlite_db: SqlConnector) -> None:
    is_error, message = await call(sqlite_db, "SELECT 1; DELETE FROM items")

    assert is_error
    assert "one statement" in message


async def test_it_cuts_sqlite_results_at_the_row_limit(sqlite_db: SqlConnector) -> None:
    is_error, data = await call(sqlite_db, "SELECT id FROM items ORDER BY id")

    assert not is_error
    assert data["row_count"] == 50
    assert data["rows"][-1] == [50]
    assert data["truncated"] is True
    assert data["note"] == "only the first 50 rows are shown (the row limit)"


async def test_it_stops_a_sqlite_query_at_the_statement_timeout(sqlite_db: SqlConnector) -> None:
    endless = (
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n"
    )

    is_error, message = await call(sqlite_db, endless)

    assert is_error
    assert message == "the query was stopped after the statement timeout of 0.5 s"
    # The connection is still usable afterwards.
    assert (await call(sqlite_db, "SELECT count(*) FROM items")) == (
        False,
        {"columns": ["count(*)"], "rows": [[500]], "row_count": 1},
    )


async def test_it_lists_the_tables_and_their_columns(sqlite_db: SqlConnector) -> None:
    tables = {t.tool: t for t in sqlite_db.tools()}["tables"]

    result = await tables.call({})

    assert not result.is_error
    assert json.loads(result.content) == {"items": ["id", "name", "price"]}


async def test_a_missing_sqlite_file_fails_at_start_with_the_path(tmp_path: Path) -> None:
    conn = connector(f"sqlite:///{tmp_path}/nope.db")

    with pytest.raises(ConnectorError) as caught:
        await conn.start()

    assert str(caught.value) == (
        f"connector 'db': could not open the database: no SQLite database at {tmp_path}/nope.db"
    )
    assert not (tmp_path / "nope.db").exists()


async def test_an_unknown_scheme_is_refused_at_start() -> None:
    conn = connector("mysql://root@localhost/db")

    with pytest.raises(ConnectorError, match="unsupported database URL scheme 'mysql'"):
        await conn.start()


# ── PostgreSQL ───────────────────────────────────────────────────────────


def _postgres_or_skip() -> None:
    import psycopg

    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is not reachable at {PG_URL}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(f"SKIPPED LOUDLY: {message}")


@pytest.fixture
def pg_table() -> Iterator[str]:
    _postgres_or_skip()
    import psycopg

    table = f"lk_sql_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as db:
        db.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name text)")
        db.execute(f"INSERT INTO {table} SELECT g, 'row ' || g FROM generate_series(1, 300) g")
    yield table
    with psycopg.connect(PG_URL, autocommit=True) as db:
        db.execute(f"DROP TABLE IF EXISTS {table}")
        db.execute(f"DROP TABLE IF EXISTS {table}_evil")


@pytest.fixture
async def pg_db(pg_table: str) -> AsyncIterator[SqlConnector]:
    conn = connector(PG_URL, row_limit=25, timeout_seconds=0.5)
    await conn.start()
    yield conn
    await conn.stop()


def _pg_state(table: str) -> tuple[Any, ...]:
    import psycopg

    with psycopg.connect(PG_URL) as db:
        count = db.execute(f"SELECT count(*), max(name) FROM {table}").fetchone()
        evil = db.execute("SELECT to_regclass(%s)", (f"{table}_evil",)).fetchone()
    return (count, evil)


async def test_it_answers_a_select_on_postgresql(pg_db: SqlConnector, pg_table: str) -> None:
    is_error, data = await call(pg_db, f"SELECT id, name FROM {pg_table} WHERE id < 3 ORDER BY id")

    assert not is_error
    assert data == {"columns": ["id", "name"], "rows": [[1, "row 1"], [2, "row 2"]], "row_count": 2}


@pytest.mark.parametrize(
    "template",
    [
        "INSERT INTO {t} VALUES (1000, 'x')",
        "UPDATE {t} SET name = 'gone'",
        "DELETE FROM {t}",
        "CREATE TABLE {t}_evil (a int)",
        "WITH gone AS (DELETE FROM {t} RETURNING id) SELECT count(*) FROM gone",
        "SELECT 1; DELETE FROM {t}",
        "COMMIT; SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE; COMMIT; CREATE TABLE {t}_evil (a int)",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
        "COPY {t} TO STDOUT",
    ],
)
async def test_it_refuses_writes_on_postgresql(
    pg_db: SqlConnector, pg_table: str, template: str
) -> None:
    before = _pg_state(pg_table)

    is_error, message = await call(pg_db, template.format(t=pg_table))
    # A write attempted right after must still be refused.
    again, _ = await call(pg_db, f"CREATE TABLE {pg_table}_evil (a int)")

    assert is_error, message
    assert again
    assert _pg_state(pg_table) == before == ((300, "row 99"), (None,))


async def test_it_cuts_postgresql_results_at_the_row_limit(
    pg_db: SqlConnector, pg_table: str
) -> None:
    is_error, data = await call(pg_db, f"SELECT id FROM {pg_table} ORDER BY id")

    assert not is_error
    assert (data["row_count"], data["rows"][-1], data["truncated"]) == (25, [25], True)


async def test_it_stops_a_postgresql_query_at_the_statement_timeout(pg_db: SqlConnector) -> None:
    is_error, message = await call(pg_db, "SELECT pg_sleep(5)")

    assert is_error
    assert message == "the query was stopped after the statement timeout of 0.5 s"
    assert await call(pg_db, "SELECT 1 AS one") == (
        False,
        {"columns": ["one"], "rows": [[1]], "row_count": 1},
    )


async def test_a_literal_percent_sign_is_plain_sql_on_postgresql(
    pg_db: SqlConnector, pg_table: str
) -> None:
    is_error, data = await call(
        pg_db, f"SELECT count(*) AS n FROM {pg_table} WHERE name LIKE 'row 1%'"
    )

    assert not is_error
    assert data["rows"] == [[111]]

"""SQL databases as read-only tools: ``<name>__query`` and ``<name>__tables``.

Read-only is enforced by the database, not by reading the SQL:

- SQLite (``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``):
  the file is opened with ``mode=ro`` and an authorizer that allows reading
  and nothing else (no writes, no ATTACH, no PRAGMA that changes state).
- PostgreSQL (``postgresql://...``): through psycopg, every query runs in its
  own ``READ ONLY`` transaction (the session default is read-only too) that
  is rolled back afterwards, with ``statement_timeout`` set; psycopg's
  extended protocol takes one statement per call, so a second statement
  cannot end the read-only transaction.

Give the connector a database role that can only read, all the same.

A query returns at most ``rowLimit`` rows (default 200) and is stopped after
``timeoutSeconds`` (default 10 s); both outcomes are told to the model.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from loopkit import secrets, spec
from loopkit.connectors.base import (
    Connector,
    ConnectorError,
    ConnectorTool,
    as_json,
    clip,
    tool_name,
)
from loopkit.tools import ToolResult

DEFAULT_ROW_LIMIT = 200
DEFAULT_TIMEOUT = 10.0

_QUERY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"sql": {"type": "string", "description": "One read-only SQL statement."}},
    "required": ["sql"],
    "additionalProperties": False,
}
_TABLES_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}

_SQLITE_ALLOWED = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    sqlite3.SQLITE_RECURSIVE,
}
# PRAGMAs that only read (the authorizer sees a pragma's argument: none means read).
_SQLITE_READ_PRAGMAS = {"table_info", "table_xinfo", "index_list", "index_info", "foreign_key_list"}


class QueryRefused(Exception):
    """The database refused a statement because it is not a read."""


class SqlTool(ConnectorTool):
    def __init__(
        self, owner: SqlConnector, tool: str, description: str, parameters: dict[str, Any]
    ) -> None:
        self._owner = owner
        self.connector = owner.name
        self.tool = tool
        self.name = tool_name(owner.name, tool)
        self.description = description
        self.parameters = parameters

    async def call(self, arguments: dict[str, Any]) -> ToolResult:
        if self.tool == "tables":
            return await self._owner.tables()
        sql = arguments.get("sql")
        if not isinstance(sql, str) or not sql.strip():
            return ToolResult("'sql' must be one SQL statement (a non-empty string)", is_error=True)
        return await self._owner.query(sql)


class SqlConnector(Connector):
    """Read-only SQL queries with a row limit and a statement timeout."""

    def __init__(
        self,
        name: str,
        config: spec.SqlConnector,
        *,
        env: dict[str, str] | None = None,
        root: Path | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._env = env
        self._root = root or Path.cwd()
        self.row_limit = config.row_limit or DEFAULT_ROW_LIMIT
        self.timeout = float(config.timeout_seconds or DEFAULT_TIMEOUT)
        self._db: _Database | None = None
        kind = "the database"
        self._tools: list[ConnectorTool] = [
            SqlTool(
                self,
                "query",
                f"Run one read-only SQL query against {kind} '{name}'"
                f"{' (' + config.description + ')' if config.description else ''}. "
                f"At most {self.row_limit} rows come back; a query is stopped after {self.timeout:g} s.",
                _QUERY_SCHEMA,
            ),
            SqlTool(
                self, "tables", f"List the tables of '{name}' with their columns.", _TABLES_SCHEMA
            ),
        ]

    async def start(self) -> None:
        url = secrets.resolve(self.config.url, f"connector '{self.name}' url", self._env)
        scheme = urlsplit(url).scheme.lower()
        try:
            if scheme == "sqlite":
                self._db = _Sqlite(_sqlite_path(url, self._root), self.timeout)
            elif scheme in ("postgresql", "postgres", "postgresql+psycopg"):
                self._db = await _Postgres.connect(url.replace("+psycopg", "", 1), self.timeout)
            else:
                raise ConnectorError(
                    self.name,
                    f"unsupported database URL scheme '{scheme}' (use sqlite:/// or postgresql://)",
                )
        except ConnectorError:
            raise
        except ImportError:
            raise ConnectorError(
                self.name, "PostgreSQL needs psycopg: pip install 'psycopg[binary]'"
            ) from None
        except Exception as exc:
            raise ConnectorError(
                self.name, f"could not open the database: {secrets.redact(str(exc))}"
            ) from None

    async def stop(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await db.close()

    def tools(self) -> list[ConnectorTool]:
        return list(self._tools)

    async def query(self, sql: str) -> ToolResult:
        if self._db is None:
            return ToolResult(f"the database '{self.name}' is not open", is_error=True)
        try:
            columns, rows, more = await self._db.query(sql, self.row_limit)
        except QueryRefused as exc:
            return ToolResult(f"refused: {exc} (this connection is read-only)", is_error=True)
        except TimeoutError:
            return ToolResult(
                f"the query was stopped after the statement timeout of {self.timeout:g} s",
                is_error=True,
            )
        except Exception as exc:
            return ToolResult(
                f"the query failed: {secrets.redact(str(exc)).strip()}", is_error=True
            )
        payload: dict[str, Any] = {"columns": columns, "rows": rows, "row_count": len(rows)}
        if more:
            payload["truncated"] = True
            payload["note"] = f"only the first {self.row_limit} rows are shown (the row limit)"
        return ToolResult(clip(as_json(payload)), data={"row_count": len(rows), "truncated": more})

    async def tables(self) -> ToolResult:
        if self._db is None:
            return ToolResult(f"the database '{self.name}' is not open", is_error=True)
        try:
            return ToolResult(clip(as_json(await self._db.tables())))
        except Exception as exc:
            return ToolResult(f"listing tables failed: {secrets.redact(str(exc))}", is_error=True)


def _sqlite_path(url: str, root: Path) -> Path:
    rest = url.split(":", 1)[1]
    if not rest.startswith("///"):
        raise ValueError(
            "a SQLite URL is sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    path = Path(unquote(rest[3:].split("?", 1)[0]))
    return path if path.is_absolute() else root / path


_PG_READ_KEYWORDS = frozenset({"SELECT", "WITH", "VALUES", "TABLE", "EXPLAIN", "SHOW"})
_COMMENTS = re.compile(r"(--[^\n]*(\n|$))|(/\*.*?\*/)", re.DOTALL)


def _first_keyword(sql: str) -> str:
    text = _COMMENTS.sub(" ", sql).lstrip(" \t\r\n(")
    match = re.match(r"[A-Za-z]+", text)
    return match.group(0).upper() if match else ""


class _Database:
    async def query(self, sql: str, limit: int) -> tuple[list[str], list[list[Any]], bool]:
        raise NotImplementedError

    async def tables(self) -> dict[str, list[str]]:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | memoryview):
        return f"<{len(bytes(value))} bytes>"
    return str(value)


class _Sqlite(_Database):
    def __init__(self, path: Path, timeout: float) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"no SQLite database at {path}")
        self._timeout = timeout
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False, timeout=timeout
        )
        self._conn.set_authorizer(self._authorize)
        self._deadline = 0.0

    @staticmethod
    def _authorize(
        action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None
    ) -> int:
        if action in _SQLITE_ALLOWED:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA and arg1 in _SQLITE_READ_PRAGMAS:
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY

    def _progress(self) -> int:
        return 1 if time.monotonic() > self._deadline else 0

    def _run(self, sql: str, limit: int) -> tuple[list[str], list[list[Any]], bool]:
        with self._lock:
            self._deadline = time.monotonic() + self._timeout
            self._conn.set_progress_handler(self._progress, 1000)
            try:
                cursor = self._conn.execute(sql)
                rows = cursor.fetchmany(limit + 1)
                columns = [d[0] for d in cursor.description or []]
                cursor.close()
            except sqlite3.DatabaseError as exc:
                message = str(exc)
                if "not authorized" in message:
                    raise QueryRefused(message) from None
                if "interrupted" in message:
                    raise TimeoutError from None
                if "readonly" in message or "read-only" in message:
                    raise QueryRefused(message) from None
                raise
            finally:
                self._conn.set_progress_handler(None, 0)
                if self._conn.in_transaction:
                    self._conn.rollback()
        return columns, [[_jsonable(v) for v in row] for row in rows[:limit]], len(rows) > limit

    async def query(self, sql: str, limit: int) -> tuple[list[str], list[list[Any]], bool]:
        return await asyncio.to_thread(self._run, sql, limit)

    async def tables(self) -> dict[str, list[str]]:
        def run() -> dict[str, list[str]]:
            _, names, _ = self._run(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name", 1000
            )
            out: dict[str, list[str]] = {}
            for (name,) in names:
                quoted = '"' + name.replace('"', '""') + '"'
                # The PRAGMA, not the pragma_table_info() table: the authorizer allows it.
                _, cols, _ = self._run(f"PRAGMA table_info({quoted})", 1000)
                out[name] = [c[1] for c in cols]
            return out

        return await asyncio.to_thread(run)

    async def close(self) -> None:
        await asyncio.to_thread(self._conn.close)


class _Postgres(_Database):
    def __init__(self, conn: Any, timeout: float) -> None:
        self._conn = conn
        self._timeout = timeout
        self._lock = asyncio.Lock()

    @classmethod
    async def connect(cls, url: str, timeout: float) -> _Postgres:
        import psycopg

        conn = await psycopg.AsyncConnection.connect(
            url,
            autocommit=False,
            connect_timeout=max(1, int(timeout)),
            options="-c default_transaction_read_only=on",
        )
        await conn.set_read_only(True)
        return cls(conn, timeout)

    async def _run(
        self, sql: str, params: Any, limit: int
    ) -> tuple[list[str], list[list[Any]], bool]:
        import psycopg
        from psycopg import errors

        async with self._lock:
            try:
                async with self._conn.cursor() as cursor:
                    await cursor.execute(
                        "SELECT set_config('statement_timeout', %s, true)",
                        (f"{int(self._timeout * 1000)}ms",),
                    )
                    await cursor.execute(sql, params, prepare=True)
                    columns = [d.name for d in cursor.description or []]
                    rows = await cursor.fetchmany(limit + 1) if cursor.description else []
            except errors.QueryCanceled:
                raise TimeoutError from None
            except (errors.ReadOnlySqlTransaction, errors.InsufficientPrivilege) as exc:
                raise QueryRefused(str(exc).strip()) from None
            except psycopg.ProgrammingError as exc:
                if "multiple commands" in str(exc) or "cannot insert multiple" in str(exc):
                    raise QueryRefused("one statement per query") from None
                raise
            finally:
                await self._conn.rollback()
        return columns, [[_jsonable(v) for v in row] for row in rows[:limit]], len(rows) > limit

    async def query(self, sql: str, limit: int) -> tuple[list[str], list[list[Any]], bool]:
        keyword = _first_keyword(sql)
        if keyword not in _PG_READ_KEYWORDS:
            # The transaction would refuse a write anyway; this also keeps out what a
            # read-only transaction allows but a reader should not do (COPY, SET, COMMIT).
            raise QueryRefused(f"'{keyword or sql.strip()[:20]}' statements are not queries")
        # A prepared statement holds exactly one command: a second one (after a
        # COMMIT that would end the read-only transaction) is refused by the server.
        return await self._run(sql, None, limit)

    async def tables(self) -> dict[str, list[str]]:
        _, rows, _ = await self._run(
            "SELECT table_schema || '.' || table_name, string_agg(column_name, ',' ORDER BY ordinal_position) "
            "FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
            "GROUP BY 1 ORDER BY 1",
            None,
            1000,
        )
        return {str(name): str(cols).split(",") for name, cols in rows}

    async def close(self) -> None:
        await self._conn.close()

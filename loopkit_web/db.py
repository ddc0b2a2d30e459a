"""When the database refuses work: what counts as a refusal, and the 503 that answers it.

A refusal is the database (or this process's connection pool) turning a
connection away for now: PostgreSQL's "too many clients already" / "too many
connections for role", a server starting up or shutting down, a refused TCP
connection, the pool's ``PoolTimeout`` when every pooled connection stayed busy
for ``LOOPKIT_DB_POOL_TIMEOUT`` seconds, or SQLite's "database is locked".
Retrying later can succeed. A broken query (``IntegrityError``, a syntax
error, a statement timeout) is not a refusal.

``is_refusal`` is public: background tasks use it to retry instead of failing
(e.g. the task that claims a run). Requests that meet a refusal are answered
503 with ``Retry-After`` in one place, ``refusal_response``: the API with the
``database_busy`` error of loopkit_web/errors.py (webhooks too), pages with a short page that
needs neither templates nor the database. ``DatabaseRefusalMiddleware`` calls it
for page views; loopkit_web/api.py's exception handler for the API's.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable, Iterator

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.db import OperationalError as DjangoOperationalError
from django.db import close_old_connections, connection
from django.http import HttpRequest, HttpResponse, JsonResponse

from loopkit_web.errors import DatabaseBusy

logger = logging.getLogger(__name__)

try:  # psycopg is the PostgreSQL driver; a SQLite-only install may lack it.
    import psycopg
except ImportError:  # pragma: no cover - psycopg is a dependency of the web extra
    psycopg = None  # type: ignore[assignment]
try:
    from psycopg_pool import PoolTimeout, TooManyRequests
except ImportError:  # pragma: no cover - psycopg-pool is a dependency of the web extra
    PoolTimeout = TooManyRequests = None  # type: ignore[assignment,misc]

#: What a refused client is told to wait before trying again (the ``Retry-After`` header).
RETRY_AFTER_SECONDS = 2

#: SQLSTATEs of a server that turns connections away: too_many_connections,
#: cannot_connect_now (starting up, shutting down, in recovery).
REFUSAL_SQLSTATES = frozenset({"53300", "57P03"})

#: The same refusals in the words of a failed connection (libpq reports a
#: refused connection with its text, not always with a SQLSTATE), and SQLite's.
REFUSAL_MESSAGES = (
    "too many clients",
    "too many connections",
    "remaining connection slots are reserved",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "connection refused",
    "connection timeout expired",
    "database is locked",
)

_OPERATIONAL: tuple[type[BaseException], ...] = (
    DjangoOperationalError,
    sqlite3.OperationalError,
    *((psycopg.OperationalError,) if psycopg is not None else ()),
)

PAGE = (
    '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
    "<title>503 Service unavailable</title></head>\n<body><h1>Service unavailable</h1>\n"
    "<p>The database is busy. Please try again in a few seconds.</p></body></html>\n"
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """Yield *exc* and the exceptions it was raised from or during (Django wraps the driver's)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_refusal(exc: BaseException) -> bool:
    """Return True if *exc* is the database refusing a connection for now (retry later).

    True for a pool that found no free connection in time (``PoolTimeout``,
    ``TooManyRequests``), a server at its connection limit or not accepting
    connections, a refused or timed-out TCP connection, and a locked SQLite
    database; also when Django's ``OperationalError`` wraps one of these.
    False for everything else, e.g. ``IntegrityError`` or a cancelled statement.
    """
    for error in _chain(exc):
        if PoolTimeout is not None and isinstance(error, PoolTimeout | TooManyRequests):
            return True
        if not isinstance(error, _OPERATIONAL):
            continue
        if getattr(error, "sqlstate", None) in REFUSAL_SQLSTATES:
            return True
        text = str(error).lower()
        if any(words in text for words in REFUSAL_MESSAGES):
            return True
    return False


def answers_json(request: HttpRequest) -> bool:
    """The API and the webhooks answer JSON; everything else is a page."""
    return request.path.startswith(("/api/", "/hooks/"))


def refusal_response(request: HttpRequest, exc: BaseException) -> HttpResponse:
    """Answer a request the database refused: 503 with ``Retry-After``, JSON for the API."""
    logger.warning("database refused %s %s: %s", request.method, request.path, exc)
    response: HttpResponse
    if answers_json(request):
        error = DatabaseBusy(
            f"the database is busy: try again in {RETRY_AFTER_SECONDS} seconds",
            retry_after=RETRY_AFTER_SECONDS,
        )
        response = JsonResponse(error.body(), status=error.status)
    else:
        response = HttpResponse(PAGE, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DatabaseRefusalMiddleware:
    """Turn a refusal raised by a page view (or its template) into ``refusal_response``.

    The API's views never get here: ninja answers their errors itself, through
    the handler loopkit_web/api.py registers, which calls the same function.
    """

    sync_capable = True
    async_capable = True

    def __init__(
        self, get_response: Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]
    ):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if is_refusal(exception):
            return refusal_response(request, exception)
        return None


def pooled() -> bool:
    """Whether this process borrows its connections from a pool (PostgreSQL)."""
    return bool(settings.DATABASES["default"].get("OPTIONS", {}).get("pool"))


def give_back() -> None:
    """End a unit of work of a long-lived thread: return its connection to the pool.

    Without a pool (SQLite) the thread keeps its connection (opening one costs
    more than keeping it) unless the database closed it meanwhile.
    """
    if pooled():
        connection.close()
    else:
        close_old_connections()

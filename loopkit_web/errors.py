"""The API's refusal vocabulary: one base error, one JSON envelope (docs/api.md).

Services raise these (or a subclass that names the rule, e.g. the builder's
``StaleVersion``); loopkit_web/api.py turns every one into a response in one
handler. The envelope is always::

    {"code": "not_found", "message": "not found", "details": [...], ...extra}

``code`` is stable and lowercase; ``message`` is a lowercase sentence that
says what was refused and how to fix it; ``details`` lists request fields
that failed validation (``loc``, ``msg``, ``type``); a kind may add keys of
its own (an invalid loop's positioned ``errors``, a conflict's ``current``).
"""

from __future__ import annotations

from typing import Any

from ninja import Schema

# The largest id a row can have (a signed 64-bit primary key) and the largest
# offset or number a query may carry (beyond it SQLite raises OverflowError and
# PostgreSQL a DataError).
MAX_ID = 2**63 - 1

INVALID_TOKEN_MESSAGE = "invalid or revoked API token"


class ApiError(Exception):
    """A request the API refuses: an HTTP status, a stable code and a message.

    Keyword arguments become keys of the JSON body beside ``code``, ``message``
    and ``details`` (their names and shapes are documented in docs/api.md).
    """

    status = 400
    code = "bad_request"

    def __init__(
        self, message: str, status: int | None = None, *, code: str | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
            self.code = code_for(status)
        if code is not None:
            self.code = code
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": [], **self.extra}


class BadRequest(ApiError):
    """Input that is well-formed but refused (an empty upload, a zip with unsafe paths)."""


class Unauthorized(ApiError):
    status = 401
    code = "unauthenticated"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    """The request clashes with the current state (a name taken, a stale version)."""

    status = 409
    code = "conflict"


class TooLarge(ApiError):
    status = 413
    code = "too_large"


class Invalid(ApiError):
    """Input that breaks a rule; an invalid loop adds its positioned ``errors``."""

    status = 422
    code = "invalid"


class UpstreamFailed(ApiError):
    """A service the request needs failed (git: an unreachable remote, a rejected push)."""

    status = 502
    code = "upstream_failed"


class DatabaseBusy(ApiError):
    """The database refused a connection for now (at its connection limit, the pool
    exhausted): answered with ``Retry-After`` and ``retry_after`` (seconds), see
    loopkit_web/db.py."""

    status = 503
    code = "database_busy"


# The code of an error raised with a bare status (ninja's HttpError, a kind's status=...).
CODES: dict[int, str] = {
    400: BadRequest.code,
    401: Unauthorized.code,
    403: Forbidden.code,
    404: NotFound.code,
    405: "method_not_allowed",
    409: Conflict.code,
    413: TooLarge.code,
    422: Invalid.code,
    500: "internal_error",
    502: UpstreamFailed.code,
}


def code_for(status: int) -> str:
    return CODES.get(status, "error")


# ── Response schemas (OpenAPI) ────────────────────────────────────────────


class ErrorDetail(Schema):
    """One request field that failed validation: where (``loc``), what and which rule."""

    loc: list[str | int] = []
    msg: str
    type: str = "error"


class ProblemOut(Schema):
    """A problem in a loop file, at its position (the same as the validate API's)."""

    message: str
    path: str = ""
    line: int | None = None
    column: int | None = None
    code: str = "invalid"
    hint: str | None = None
    file: str | None = None


class ErrorOut(Schema):
    """The body of every error response."""

    code: str
    message: str
    details: list[ErrorDetail] = []


class InvalidOut(ErrorOut):
    """422: request fields in ``details``; an invalid loop's problems in ``errors``."""

    errors: list[ProblemOut] | None = None
    file: str | None = None


class ConflictOut(ErrorOut):
    """409: a stale version carries the ``current`` one and the ``changes`` since the
    caller's base; a name clash the ``name`` or the clashing names (``conflicts``)."""

    current: dict[str, Any] | None = None
    changes: list[dict[str, Any]] | None = None
    name: str | None = None
    conflicts: list[str] | None = None


def errors(*statuses: int) -> dict[int, type[Schema]]:
    """Return the ``response=`` entries for these error statuses, and 401.

    Every operation that needs a login answers 401 (no session, or a bad token);
    list the others it can answer: ``response={200: LoopOut, **errors(403, 404, 409)}``.
    tests/web/test_api_errors.py provokes each declared status.
    """
    schemas: dict[int, type[Schema]] = {401: ErrorOut}
    for status in statuses:
        special: dict[int, type[Schema]] = {409: ConflictOut, 422: InvalidOut}
        schemas[status] = special.get(status, ErrorOut)
    return dict(sorted(schemas.items()))

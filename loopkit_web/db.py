"""The database's refusals: errors that say "not now" (too many clients, pool exhausted)."""

from __future__ import annotations

from django.db import InterfaceError, OperationalError

_REFUSALS = (
    "too many clients",
    "too many connections",
    "remaining connection slots",
    "couldn't get a connection",
    "database is locked",
    "connection refused",
)


def is_refusal(exc: BaseException) -> bool:
    """Return True if *exc* is the database refusing work for now (retry later)."""
    seen: BaseException | None = exc
    while seen is not None:
        if type(seen).__name__ == "PoolTimeout":
            return True
        if isinstance(seen, OperationalError | InterfaceError) and any(
            text in str(seen).lower() for text in _REFUSALS
        ):
            return True
        seen = seen.__cause__ or seen.__context__
        if seen is exc:
            break
    return False

"""The ``{id:...}`` path converter of the API's routes (``/api/loops/{id:loop_id}``).

Django's ``int`` converter answers its own HTML 404 page for ``/api/loops/abc``
(before the API sees the request) and passes ``/api/loops/99999999999999999999``
on to a query the database cannot run (``OverflowError`` on SQLite, a
``DataError`` on PostgreSQL). This converter takes any path segment and turns
one that cannot be a row's id into 0, an id no row has: the view looks it up,
finds nothing and answers the API's JSON 404 like for any other unknown id.
"""

from __future__ import annotations

from django.urls import register_converter

from loopkit_web.errors import MAX_ID

NO_SUCH_ID = 0


class IdConverter:
    regex = "[^/]+"

    def to_python(self, value: str) -> int:
        if not (value.isascii() and value.isdigit()) or len(value) > 19:
            return NO_SUCH_ID
        number = int(value)
        return number if number <= MAX_ID else NO_SUCH_ID

    def to_url(self, value: int) -> str:
        return str(value)


_registered = False


def register_id_converter() -> None:
    """Register the converter as ``id`` (once; Django refuses a second registration)."""
    global _registered
    if not _registered:
        register_converter(IdConverter, "id")
        _registered = True

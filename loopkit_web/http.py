"""Request types the views rely on (types only: Django builds the requests)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class AuthenticatedHttpRequest(HttpRequest):
    """A request whose user signed in: behind ``login_required`` or the API's auth."""

    user: User

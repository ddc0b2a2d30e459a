"""``download_view``: a file download (CSV, JSON, zip, YAML) for browsers and scripts alike."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponseBase, JsonResponse

from loopkit_web.accounts.models import ApiToken
from loopkit_web.errors import INVALID_TOKEN_MESSAGE, Unauthorized


def download_view(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Decorate a download: a signed-in session, or ``Authorization: Bearer <token>``.

    A token acts as its user in its team only, as in the API, so the view's own
    team and role checks apply unchanged. A token that is unknown, expired or
    revoked is a JSON 401 (not a redirect to the login page a script cannot
    follow). Without the header this is ``login_required``.
    """
    for_session = login_required(view)

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return for_session(request, *args, **kwargs)
        token = ApiToken.authenticate(raw.strip())
        if token is None:
            refusal = Unauthorized(INVALID_TOKEN_MESSAGE, code="invalid_token")
            return JsonResponse(refusal.body(), status=refusal.status)
        request.user = token.user
        # Django's request declares no api_token; request_token() reads it back.
        request.api_token = token  # type: ignore[attr-defined]
        return view(request, *args, **kwargs)

    return wrapper

"""The root django-ninja API, mounted at /api/ (OpenAPI docs at /api/docs).

Authentication: the browser's session (with CSRF on unsafe methods) or
``Authorization: Bearer <token>`` with an API token, which acts inside its
team only. Every error is JSON ``{"message": ..., "details": [...]}``.

Apps mount their router with one line (done for every app in
``settings.LOOPKIT_APPS`` that has an ``api.py`` with ``router``)::

    api.add_router("/loops", "builder.api.router")
"""

from __future__ import annotations

import logging
from importlib import import_module
from importlib.util import find_spec
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, AuthorizationError, HttpError, ValidationError
from ninja.security import HttpBearer, SessionAuth

from loopkit_web.accounts.models import ApiToken

logger = logging.getLogger(__name__)


INVALID_TOKEN_MESSAGE = "invalid or revoked API token"


class BearerTokenAuth(HttpBearer):
    """``Authorization: Bearer lk_...``: an API token bound to one team.

    A request that presents a bearer token which is unknown, expired or revoked is
    refused here with 401, rather than falling through to session auth (whose CSRF
    check would answer a misleading 403 to a script).
    """

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        api_token = ApiToken.authenticate(token)
        if api_token is None:
            raise HttpError(401, INVALID_TOKEN_MESSAGE)
        request.user = api_token.user
        request.api_token = api_token  # type: ignore[attr-defined]
        return api_token.user


class ErrorDetail(Schema):
    loc: list[str | int] = []
    msg: str
    type: str = "error"


class ErrorOut(Schema):
    """The body of every error response."""

    message: str
    details: list[ErrorDetail] = []


AUTH = [BearerTokenAuth(), SessionAuth(csrf=True)]

api = NinjaAPI(
    title="LoopKit API",
    version="1",
    description=(
        "Session auth (with CSRF) for the browser, `Authorization: Bearer <token>` for "
        "scripts and CI. Errors are JSON: `{message, details}`."
    ),
    auth=AUTH,
    urls_namespace="api",
    docs_url="/docs",
)

# Error responses every operation can return, for the OpenAPI schema.
ERRORS: dict[int, type[Schema]] = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut}


def error_response(
    request: HttpRequest, status: int, message: str, details: list[dict[str, Any]] | None = None
) -> HttpResponse:
    """Return the JSON error body used by the whole API."""
    return api.create_response(
        request, {"message": message, "details": details or []}, status=status
    )


def _validation_details(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "loc": [p for p in e.get("loc", []) if isinstance(p, str | int)],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "value_error")),
        }
        for e in errors
    ]


@api.exception_handler(ValidationError)
def on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    return error_response(request, 422, "invalid input", _validation_details(exc.errors))


@api.exception_handler(AuthenticationError)
def on_authentication_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return error_response(request, 401, "authentication required")


@api.exception_handler(AuthorizationError)
def on_authorization_error(request: HttpRequest, exc: AuthorizationError) -> HttpResponse:
    return error_response(request, 403, str(exc) or "forbidden")


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return error_response(request, exc.status_code, str(exc))


@api.exception_handler(Http404)
def on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error_response(request, 404, "not found")


@api.exception_handler(PermissionDenied)
def on_permission_denied(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return error_response(request, 403, str(exc) or "forbidden")


@api.exception_handler(RequestDataTooBig)
def on_request_too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0
    return error_response(request, 413, f"the request body is larger than {limit:,} bytes")


@api.exception_handler(Exception)
def on_unexpected_error(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("unhandled error in %s %s", request.method, request.path, exc_info=exc)
    return error_response(request, 500, "internal server error")


def mount_app_routers() -> None:
    """Mount ``<app>.api.router`` at ``/<app>`` for every app in settings.LOOPKIT_APPS."""
    for app in settings.LOOPKIT_APPS:
        if find_spec(f"{app}.api") is None:
            continue
        module = import_module(f"{app}.api")
        prefix = getattr(module, "API_PREFIX", f"/{app}")
        api.add_router(prefix, module.router)


api.add_router("", "loopkit_web.health.router")
api.add_router("", "loopkit_web.accounts.api.router")
api.add_router("/teams", "loopkit_web.teams.api.router")
api.add_router("/audit", "loopkit_web.audit.api.router")
mount_app_routers()

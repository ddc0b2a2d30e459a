"""The root django-ninja API, mounted at /api/ (OpenAPI docs at /api/docs).

Authentication: the browser's session (with CSRF on unsafe methods) or
``Authorization: Bearer <token>`` with an API token, which acts inside its
team only. Every error is JSON ``{"code": ..., "message": ..., "details": [...]}``,
raised as a loopkit_web.errors.ApiError and answered by one handler here.

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
from django.http.multipartparser import MultiPartParserError
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, AuthorizationError, HttpError, ValidationError
from ninja.security import HttpBearer, SessionAuth

from loopkit_web.accounts.models import ApiToken
from loopkit_web.db import is_refusal, refusal_response
from loopkit_web.errors import INVALID_TOKEN_MESSAGE, ApiError, Unauthorized, code_for
from loopkit_web.paths import register_id_converter

register_id_converter()

logger = logging.getLogger(__name__)


CSRF_MESSAGE = "csrf check failed: send the X-CSRFToken header, or use an API token"


class BearerTokenAuth(HttpBearer):
    """``Authorization: Bearer lk_...``: an API token bound to one team.

    A request that presents a bearer token which is unknown, expired or revoked is
    refused here with 401, rather than falling through to session auth (whose CSRF
    check would answer a misleading 403 to a script).
    """

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        api_token = ApiToken.authenticate(token)
        if api_token is None:
            raise Unauthorized(INVALID_TOKEN_MESSAGE, code="invalid_token")
        request.user = api_token.user
        # Django's request declares no api_token; request_token() reads it back.
        request.api_token = api_token  # type: ignore[attr-defined]
        return api_token.user


AUTH = [BearerTokenAuth(), SessionAuth(csrf=True)]

api = NinjaAPI(
    title="LoopKit API",
    version="1",
    description=(
        "Session auth (with CSRF) for the browser, `Authorization: Bearer <token>` for "
        "scripts and CI. Errors are JSON: `{code, message, details}` (docs/api.md)."
    ),
    auth=AUTH,
    urls_namespace="api",
    docs_url="/docs",
)


def error_response(
    request: HttpRequest,
    status: int,
    message: str,
    details: list[dict[str, Any]] | None = None,
    *,
    code: str | None = None,
) -> HttpResponse:
    """Return the JSON error body used by the whole API."""
    body = {"code": code or code_for(status), "message": message, "details": details or []}
    return api.create_response(request, body, status=status)


def _validation_details(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "loc": [p for p in e.get("loc", []) if isinstance(p, str | int)],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "value_error")),
        }
        for e in errors
    ]


@api.exception_handler(ApiError)
def on_api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
    return api.create_response(request, exc.body(), status=exc.status)


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
    message = str(exc)
    if message.startswith("Cannot parse request body"):  # ninja's words for malformed JSON
        message = "the request body is not valid JSON"
    elif message == "CSRF check Failed":  # ninja's session auth
        message = CSRF_MESSAGE
    return error_response(request, exc.status_code, message)


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


@api.exception_handler(MultiPartParserError)
def on_unreadable_multipart(request: HttpRequest, exc: MultiPartParserError) -> HttpResponse:
    return error_response(request, 400, f"the multipart body cannot be read: {exc}")


@api.exception_handler(Exception)
def on_unexpected_error(request: HttpRequest, exc: Exception) -> HttpResponse:
    if is_refusal(exc):  # the database refused a connection: 503 with Retry-After
        return refusal_response(request, exc)
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

"""ASGI entry point (daphne): HTTP through Django, WebSockets through Channels,
and ``/mcp`` through the MCP SDK's streamable HTTP transport (runs.mcp_endpoint).

Apps add WebSocket routes by exposing ``websocket_urlpatterns`` in a
``routing`` module of an app listed in ``settings.LOOPKIT_APPS``.
"""

from __future__ import annotations

import gc
import os
from importlib import import_module
from importlib.util import find_spec
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loopkit_web.settings")

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from runs.mcp_endpoint import WithMcp  # noqa: E402


def websocket_urlpatterns() -> list[Any]:
    """Collect ``routing.websocket_urlpatterns`` from the LoopKit apps."""
    patterns: list[Any] = []
    for app in settings.LOOPKIT_APPS:
        if find_spec(f"{app}.routing") is not None:
            patterns += getattr(import_module(f"{app}.routing"), "websocket_urlpatterns", [])
    return patterns


application = ProtocolTypeRouter(
    {
        # /mcp: the team's loops as MCP tools (runs.mcp_endpoint); the rest is Django's.
        "http": WithMcp(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns()))
        ),
    }
)


def _settle() -> None:
    """Import every view and API module now, then keep the start-up heap out of the GC.

    The URLconf (and with it the API's schemas and the engine's models) is
    otherwise loaded by the first request. Freezing what exists after that
    spares every later full collection from walking hundreds of thousands of
    long-lived objects: with a 500-step loop being edited, such a collection
    took 70-100 ms of a validate request.
    """
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - the import is the point
    gc.freeze()


_settle()

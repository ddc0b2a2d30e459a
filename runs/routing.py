"""WebSocket routes of the runs app (collected by loopkit_web.asgi)."""

from __future__ import annotations

from django.urls import path

from runs.consumers import RunConsumer

websocket_urlpatterns = [
    # Channels routes ASGI apps with django.urls.path, whose stubs expect a view.
    path("ws/runs/<int:run_id>/", RunConsumer.as_asgi()),  # type: ignore[arg-type]
]

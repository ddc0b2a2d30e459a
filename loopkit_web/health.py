"""Reachability of the database, the Huey queue and the channel layer (GET /api/health)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import HttpRequest
from ninja import Router, Schema, Status

router = Router(tags=["health"])

CHANNEL_TIMEOUT_SECONDS = 3.0


class Check(Schema):
    ok: bool
    backend: str
    latency_ms: float
    error: str = ""


class HealthOut(Schema):
    status: str
    checks: dict[str, Check]


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


def check_huey() -> str:
    from huey.contrib.djhuey import HUEY

    HUEY.storage.queue_size()
    mode = " (immediate)" if HUEY.immediate else ""
    return f"{type(HUEY).__name__}{mode}"


async def _channel_round_trip() -> str:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer is configured (settings.CHANNEL_LAYERS)")
    # A plain (not process-specific "!") channel: channels-lite serves those by direct
    # polling, while a process channel starts a background poller that would outlive
    # async_to_sync's event loop and log errors forever.
    channel = f"loopkit-health.{uuid.uuid4().hex}"
    nonce = uuid.uuid4().hex
    await layer.send(channel, {"type": "health.ping", "nonce": nonce})
    message = await asyncio.wait_for(layer.receive(channel), CHANNEL_TIMEOUT_SECONDS)
    if message.get("nonce") != nonce:
        raise RuntimeError("the channel layer returned another message than the one sent")
    return type(layer).__name__


def check_channel_layer() -> str:
    return async_to_sync(_channel_round_trip)()


CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "huey": check_huey,
    "channel_layer": check_channel_layer,
}


def run_checks() -> dict[str, dict[str, Any]]:
    """Run every check; return ``{name: {ok, backend, latency_ms, error}}``."""
    results: dict[str, dict[str, Any]] = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            backend, ok, error = check(), True, ""
        except Exception as exc:  # a failing service must show up here, not as a 500
            backend, ok = "", False
            error = f"{type(exc).__name__}: {exc}" if settings.DEBUG else type(exc).__name__
        results[name] = {
            "ok": ok,
            "backend": backend,
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
            "error": error,
        }
    return results


@router.get("/health", auth=None, response={200: HealthOut, 503: HealthOut})
def health(request: HttpRequest) -> Status[Any]:
    """Report whether the database, Huey and the channel layer are reachable."""
    checks = run_checks()
    healthy = all(c["ok"] for c in checks.values())
    body = {"status": "ok" if healthy else "unhealthy", "checks": checks}
    return Status(200 if healthy else 503, body)

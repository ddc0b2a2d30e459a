"""Pushing stored run events to the browsers watching the run (Channels groups)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


def group_name(run_id: int) -> str:
    """Return the Channels group of the sockets watching run *run_id*."""
    return f"run-{run_id}"


def message(event: dict[str, Any]) -> dict[str, Any]:
    """Return the channel-layer message carrying one stored event."""
    return {"type": "run.event", "event": event}


_local = threading.local()


def _thread_loop() -> asyncio.AbstractEventLoop:
    """Return this thread's own event loop, kept for the thread's life.

    channels-redis keeps its connections per event loop: ``async_to_sync``
    would make a new loop, hence a new Redis connection, for every event.
    """
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _local.loop = loop
    return loop


def push(run_id: int, event: dict[str, Any]) -> None:
    """Send one stored event to the run's group (sync callers: workers, views).

    A failed push loses nothing: the event is stored, and a socket that
    notices a gap (or reconnects) reads it back from the database.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        try:
            asyncio.get_running_loop()
            in_loop = True
        except RuntimeError:
            in_loop = False
        # A sync view served over ASGI runs in a thread that sync_to_async made: the
        # layer's own sync_to_async calls must go back through the server's loop
        # (async_to_sync), not a loop of this thread, whose executor they would block on.
        if in_loop or getattr(SyncToAsync.threadlocal, "main_event_loop", None) is not None:
            async_to_sync(layer.group_send)(group_name(run_id), message(event))
        else:  # a worker's thread: its own loop, kept for the thread's life
            _thread_loop().run_until_complete(layer.group_send(group_name(run_id), message(event)))
    except Exception:  # the channel layer is a best-effort accelerator
        logger.warning("could not push event %s of run %s", event.get("seq"), run_id, exc_info=True)


async def apush(run_id: int, event: dict[str, Any]) -> None:
    """Send one stored event to the run's group (async callers: the engine's loop)."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(group_name(run_id), message(event))
    except Exception:
        logger.warning("could not push event %s of run %s", event.get("seq"), run_id, exc_info=True)

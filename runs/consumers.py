"""The live run socket: replay stored events after the client's last seq, then stream.

``ws/runs/<id>/?after=<seq>``. The socket joins the run's group *before*
reading the database, and forwards only events numbered after the last one
it sent: an event both replayed and pushed is sent once, and an event the
channel layer dropped (a gap in the numbers) is read back from the database.
So a client sees every event exactly once, in order.

A push can also be lost at the end, with no later event to reveal the gap
(a channel layer at capacity, a socket that joined its group a moment late):
so while the run is not finished, a socket that has had no push for
``QUIET_SECONDS`` reads the database again, and it stops once it has sent
``run_finished`` or the run has ended. A watcher therefore always reaches the
run's last stored event.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from loopkit_web.errors import MAX_ID
from runs import live
from runs.models import TERMINAL, Run, RunEvent

#: Close codes: the run does not exist for this user / not logged in.
CLOSE_NOT_FOUND = 4404
CLOSE_UNAUTHENTICATED = 4401
REPLAY_BATCH = 500
#: Seconds without a push after which a socket of a running run re-reads the database.
QUIET_SECONDS = 1.0
QUIET_MAX_SECONDS = 8.0


class RunConsumer(AsyncJsonWebsocketConsumer):
    run_id: int
    last_seq: int
    group: str
    finished: bool = False
    last_push: float = 0.0
    pushes: int = 0
    _lock: asyncio.Lock
    _watch: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        if self.run_id > MAX_ID or not await self._visible(user):  # no row has a larger id
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.last_seq = _after(self.scope.get("query_string", b""))
        self.group = live.group_name(self.run_id)
        self._lock = asyncio.Lock()
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        self.last_push = time.monotonic()
        await self._catch_up(None)
        if not self.finished:
            self._watch = asyncio.ensure_future(self._watch_quiet())

    async def _watch_quiet(self) -> None:
        """Re-read the database after each quiet period until the run has finished.

        The period starts at ``QUIET_SECONDS`` after each push and doubles (up
        to ``QUIET_MAX_SECONDS``) while re-reads find nothing: a run waiting at
        an approval gate with hundreds of sockets open costs few queries.
        """
        # Spread the sockets of one run over the period: not all re-read at once.
        await asyncio.sleep(QUIET_SECONDS * random.uniform(0.5, 1.0))
        period = QUIET_SECONDS
        pushes = self.pushes
        while not self.finished:
            if self.pushes != pushes:  # pushes came: the period starts again
                pushes, period = self.pushes, QUIET_SECONDS
            idle = time.monotonic() - self.last_push
            if idle >= period:
                before = self.last_seq
                await self._catch_up(None)
                if self.last_seq == before and not self.finished:
                    if await self._ended():
                        await self._catch_up(None)  # what was stored before it ended
                        self.finished = True
                    period = min(period * 2, QUIET_MAX_SECONDS)
                self.last_push = time.monotonic()
                idle = 0.0
            await asyncio.sleep(period - idle)

    async def disconnect(self, code: int) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        group = getattr(self, "group", None)
        if group:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # The client may ask for a replay after a seq it holds (e.g. after a gap it saw).
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong", "last_seq": self.last_seq})

    async def run_event(self, message: dict[str, Any]) -> None:
        self.last_push = time.monotonic()
        self.pushes += 1
        event = message["event"]
        seq = int(event["seq"])
        if seq <= self.last_seq:
            return
        if seq > self.last_seq + 1:
            await self._catch_up(seq)
        async with self._lock:
            await self._send(event)

    async def _send(self, event: dict[str, Any]) -> None:
        if int(event["seq"]) <= self.last_seq:  # sent already (a push and a re-read crossed)
            return
        await self.send_json({"type": "event", "event": event})
        self.last_seq = int(event["seq"])
        if event.get("type") == "run_finished":
            self.finished = True

    async def _catch_up(self, before: int | None) -> None:
        """Send the stored events after ``last_seq`` (and before *before*, if given)."""
        async with self._lock:
            while True:
                events = await self._stored(self.last_seq, before)
                for event in events:
                    await self._send(event)
                if len(events) < REPLAY_BATCH:
                    return

    @database_sync_to_async
    def _visible(self, user: Any) -> bool:
        return Run.objects.for_user(user).filter(pk=self.run_id).exists()

    @database_sync_to_async
    def _ended(self) -> bool:
        return Run.objects.filter(pk=self.run_id, status__in=TERMINAL).exists()

    @database_sync_to_async
    def _stored(self, after: int, before: int | None) -> list[dict[str, Any]]:
        rows = RunEvent.objects.filter(run_id=self.run_id, seq__gt=after)
        if before is not None:
            rows = rows.filter(seq__lt=before)
        return [e.as_message() for e in rows.order_by("seq")[:REPLAY_BATCH]]


def _after(query_string: bytes) -> int:
    from urllib.parse import parse_qs

    values = parse_qs(query_string.decode("latin-1")).get("after", ["0"])
    try:
        return min(max(int(values[0]), 0), MAX_ID)
    except ValueError:
        return 0

"""Many WebSocket watchers of one run (tests/web/test_runs_watchers.py, bench/watchers.py).

``watch_run`` starts a dry run of a loop that opens with an approval gate,
opens *count* sockets on it at once and, once every socket holds the gate's
event, approves, so that the rest of the run is pushed live to all of them.
Each reads until ``run_finished`` or until it has heard nothing for *quiet*
seconds. It returns what each socket saw, with the run's
stored events counted from the API afterwards.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

#: How often a watcher reconnects after a refused or reset connection.
RECONNECTS = 5


@dataclass
class Watcher:
    seqs: list[int] = field(default_factory=list)
    finished_at: float | None = None  # when it received run_finished (time.time())
    error: str | None = None
    reconnects: int = 0


@dataclass
class Watched:
    run_id: int
    stored: int  # events stored for the run
    watchers: list[Watcher]
    started: float
    elapsed: float
    ended_at: float | None  # the run_finished event's ``at``

    @property
    def reached_end(self) -> int:
        return sum(
            1 for w in self.watchers if w.seqs and w.seqs[-1] == self.stored and w.finished_at
        )

    @property
    def reconnects(self) -> int:
        return sum(w.reconnects for w in self.watchers)

    @property
    def errors(self) -> list[str]:
        return sorted({w.error for w in self.watchers if w.error})


def login(base: str, username: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    client.get("/accounts/login/")
    client.post(
        "/accounts/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        },
        headers={"Referer": base + "/accounts/login/"},
    )
    if "sessionid" not in client.cookies:
        raise RuntimeError(f"could not log in as {username}")
    return client


async def _watch(
    base: str, cookies: str, run_id: int, quiet: float, out: Watcher, gated: asyncio.Queue[None]
) -> None:
    """Read one socket until run_finished; reconnect after the last seq held, as the page does."""
    import aiohttp

    for attempt in range(RECONNECTS + 1):
        after = out.seqs[-1] if out.seqs else 0
        url = base.replace("http", "ws", 1) + f"/ws/runs/{run_id}/?after={after}"
        try:
            async with (
                aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=30)
                ) as session,
                session.ws_connect(url, headers={"Cookie": cookies, "Origin": base}) as socket,
            ):
                while True:
                    try:
                        message = await socket.receive(timeout=quiet)
                    except TimeoutError:
                        out.error = (
                            f"nothing for {quiet} s after seq {out.seqs[-1] if out.seqs else 0}"
                        )
                        return
                    if message.type != aiohttp.WSMsgType.TEXT:
                        raise ConnectionError(f"socket closed ({message.type.name})")
                    event = json.loads(message.data).get("event") or {}
                    out.seqs.append(int(event["seq"]))
                    if event.get("type") == "approval_requested":
                        gated.put_nowait(None)
                    if event.get("type") == "run_finished":
                        out.finished_at = time.time()
                        out.error = None
                        return
        except (aiohttp.ClientError, ConnectionError, OSError) as exc:
            # A listen queue full for a moment (hundreds of sockets at once): try again.
            out.reconnects = attempt + 1
            out.error = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.2 * (attempt + 1))


async def _watch_all(client: httpx.Client, run_id: int, count: int, quiet: float) -> list[Watcher]:
    base = str(client.base_url).rstrip("/")
    cookies = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    watchers = [Watcher() for _ in range(count)]
    gated: asyncio.Queue[None] = asyncio.Queue()
    tasks = [
        asyncio.ensure_future(_watch(base, cookies, run_id, quiet, w, gated)) for w in watchers
    ]
    # Every socket is open and holds the gate's event: the rest is pushed live to all.
    for _ in range(count):
        await asyncio.wait_for(gated.get(), timeout=60)
    await asyncio.to_thread(approve, client, run_id)
    await asyncio.gather(*tasks)
    return watchers


def approve(client: httpx.Client, run_id: int) -> None:
    base = str(client.base_url).rstrip("/")
    headers = {"X-CSRFToken": client.cookies["csrftoken"], "Referer": base + "/"}
    deadline = time.monotonic() + 30
    while True:  # the approval row is written just after its event
        pending = [
            a
            for a in client.get(f"/api/runs/{run_id}").json()["approvals"]
            if a["status"] == "pending"
        ]
        if pending:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {run_id} has no pending approval")
        time.sleep(0.1)
    url = f"/api/runs/{run_id}/approvals/{pending[0]['id']}/approve"
    client.post(url, json={"comment": "go"}, headers=headers).raise_for_status()


#: How long a watcher waits for its next event before giving up: past the longest period
#: between a socket's re-reads of a waiting run (runs.consumers.QUIET_MAX_SECONDS, 8 s),
#: with room for a loaded machine. A push lost after a long wait is read back within it.
QUIET = 20.0


def watch_run(client: httpx.Client, loop_id: int, count: int, quiet: float = QUIET) -> Watched:
    """Start a dry run of *loop_id* (whose first step is an approval gate), open *count*
    sockets on it, approve once all hold the gate's event; return what they saw."""
    base = str(client.base_url).rstrip("/")
    headers = {"X-CSRFToken": client.cookies["csrftoken"], "Referer": base + "/"}
    response = client.post("/api/runs", json={"loop_id": loop_id, "dry_run": True}, headers=headers)
    response.raise_for_status()
    run_id = int(response.json()["id"])
    started = time.time()
    watchers = asyncio.run(_watch_all(client, run_id, count, quiet))
    elapsed = time.time() - started
    deadline = time.monotonic() + 30
    while True:  # the run's stored events, once it has ended
        run: dict[str, Any] = client.get(f"/api/runs/{run_id}").json()
        if run["status"] in (
            "succeeded",
            "failed",
            "cancelled",
            "budget_exceeded",
            "verification_failed",
        ):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {run_id} did not end: {run['status']}")
        time.sleep(0.2)
    events = client.get(f"/api/runs/{run_id}/events", params={"after": 0, "limit": 1000}).json()
    items = events["items"] if isinstance(events, dict) else events
    stored = max(int(e["seq"]) for e in items)
    ended = [e["payload"].get("at") for e in items if e["type"] == "run_finished"]
    return Watched(run_id, stored, watchers, started, elapsed, ended[0] if ended else None)

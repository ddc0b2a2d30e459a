"""Latency from an engine event to a browser's WebSocket: p50 / p95, embedded and Redis.

Starts LoopKit as deployed (Daphne and a ``run_huey`` worker in their own
processes) and runs dry runs of a loop of many short sequential steps. A
WebSocket client (aiohttp) logged in as a team member watches each run; for
every event emitted after the socket was open, the latency is the time the
client received it minus the event's ``at`` (the engine's wall-clock time
when it created the event; same machine, same clock). The path measured:
engine -> sink thread -> RunEvent row committed -> channel layer -> Daphne
consumer -> socket.

Targets: p95 under 100 ms with Redis (channels-redis), under 300 ms embedded
(SQLite with channels-lite, which polls every 0.1 s).

    .venv/bin/python bench/ws_latency.py [--settings embedded,redis] [--runs 3] [--steps 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runs_common import (
    REPO,
    deployment,
    free_port,
    percentile,
    setup,
    spawn,
    stop,
    wait_http,
    worker,
)

from loopkit import yamlio


def loop_yaml(steps: int) -> str:
    return yamlio.dump(
        yamlio.loop_from_data(
            {
                "name": "latency",
                "pipeline": [{"prompt": f"Step {i}", "label": f"S{i}"} for i in range(steps)],
                "dryRun": {"latencyMs": 20},
            }
        )
    )


# (engine -> row committed, row -> socket) per event, in ms.
SPLIT: list[tuple[float, float]] = []


def login(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    client.get("/accounts/login/")
    token = client.cookies["csrftoken"]
    response = client.post(
        "/accounts/login/",
        data={"username": "bench", "password": "bench-password-123", "csrfmiddlewaretoken": token},
        headers={"Referer": base + "/accounts/login/"},
    )
    if "sessionid" not in client.cookies:
        raise SystemExit(f"login failed ({response.status_code})")
    return client


async def watch(base: str, cookies: str, run_id: int, connected_at: list[float]) -> list[float]:
    import aiohttp

    latencies: list[float] = []
    url = base.replace("http", "ws") + f"/ws/runs/{run_id}/?after=0"
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, headers={"Cookie": cookies, "Origin": base}) as socket,
    ):
        connected_at.append(time.time())
        async for message in socket:
            received = time.time()
            data = json.loads(message.data)
            event = data.get("event", {})
            at = event.get("payload", {}).get("at")
            if at is not None and at > connected_at[0]:
                latencies.append((received - float(at)) * 1000)
                stored = datetime.fromisoformat(event["created_at"]).timestamp()
                SPLIT.append(((stored - float(at)) * 1000, (received - stored) * 1000))
            if event.get("type") == "run_finished":
                break
    return latencies


def measure(setting: str, runs: int, steps: int) -> dict[str, Any]:
    with deployment(setting) as env:
        ids = setup(env, loop_yaml(steps))
        port = free_port()
        server = spawn(
            env, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "loopkit_web.asgi:application"
        )
        workers = [worker(env, threads=2)]
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(base + "/api/health")
            client = login(base)
            cookies = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
            latencies: list[float] = []
            for _ in range(runs):
                response = client.post(
                    "/api/runs",
                    json={"loop_id": ids["loop"], "dry_run": True},
                    headers={"X-CSRFToken": client.cookies["csrftoken"], "Referer": base + "/"},
                )
                response.raise_for_status()
                latencies += asyncio.run(watch(base, cookies, response.json()["id"], []))
        finally:
            stop(server, *workers)
    split = list(SPLIT)
    SPLIT.clear()
    return {
        "setting": setting,
        "stored_p50_ms": round(statistics.median(a for a, _ in split), 1),
        "pushed_p50_ms": round(statistics.median(b for _, b in split), 1),
        "events": len(latencies),
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "max_ms": round(max(latencies), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", default="embedded,redis")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [measure(s, args.runs, args.steps) for s in args.settings.split(",")]
    for r in results:
        if args.json:
            print(json.dumps(r))
        else:
            target = 100 if r["setting"] == "redis" else 300
            print(
                f"ws latency [{r['setting']}]: p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, "
                f"max {r['max_ms']} ms over {r['events']} events (target p95 < {target} ms); "
                f"median engine->stored {r['stored_p50_ms']} ms, stored->socket {r['pushed_p50_ms']} ms"
            )


if __name__ == "__main__":
    _ = REPO
    main()

"""Many watchers of one run: how many reach run_finished, and how long after the run ended.

Starts LoopKit as deployed (Daphne and a ``run_huey`` worker in their own
processes), starts a dry run of an 8-step loop and opens N WebSockets on it at
once (tests/web/watchers.py: each reconnects after the last seq it holds when
refused, as the run page does). Prints, per setting: watchers that reached the
run's last stored event, reconnects, and the delay from the run's
``run_finished`` event to each watcher receiving it (p50, p95, max).

Target: every watcher reaches run_finished (embedded: 200, Redis: 500).

    .venv/bin/python bench/watchers.py [--settings embedded,redis] [--embedded 200] [--redis 500]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

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

sys.path.insert(0, str(REPO))
from loopkit import yamlio
from tests.web.watchers import login, watch_run

LOOP = yamlio.dump(
    yamlio.loop_from_data(
        {
            "name": "watched",
            "pipeline": [
                {"approve": "Go?", "label": "Gate", "approvers": ["owner"]},
                *({"prompt": f"Step {i}", "label": f"S{i}"} for i in range(8)),
            ],
            "dryRun": {"latencyMs": 150},
        }
    )
)


def measure(setting: str, count: int) -> dict[str, Any]:
    with deployment(setting) as env:
        ids = setup(env, LOOP)
        port = free_port()
        server = spawn(
            env, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "loopkit_web.asgi:application"
        )
        workers = [worker(env, threads=2)]
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(base + "/api/health")
            watched = watch_run(login(base, "bench", "bench-password-123"), ids["loop"], count)
        finally:
            stop(server, *workers)
    delays = [
        (w.finished_at - watched.ended_at) * 1000
        for w in watched.watchers
        if w.finished_at is not None and watched.ended_at is not None
    ]
    return {
        "setting": setting,
        "watchers": count,
        "reached_end": watched.reached_end,
        "reconnects": watched.reconnects,
        "errors": watched.errors,
        "stored_events": watched.stored,
        "delay_p50_ms": round(statistics.median(delays), 1) if delays else None,
        "delay_p95_ms": round(percentile(delays, 95), 1) if delays else None,
        "delay_max_ms": round(max(delays), 1) if delays else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--settings", default="embedded,redis")
    parser.add_argument("--embedded", type=int, default=200)
    parser.add_argument("--redis", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for setting in args.settings.split(","):
        r = measure(setting, getattr(args, setting))
        if args.json:
            print(json.dumps(r))
        else:
            print(
                f"watchers [{setting}]: {r['reached_end']}/{r['watchers']} reached run_finished "
                f"(seq {r['stored_events']}), {r['reconnects']} reconnects; run end -> watcher "
                f"p50 {r['delay_p50_ms']} ms, p95 {r['delay_p95_ms']} ms, max {r['delay_max_ms']} ms"
                + (f"; errors {r['errors']}" if r["errors"] else "")
            )


if __name__ == "__main__":
    main()

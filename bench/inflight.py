"""N live runs in flight at once in one worker process, against a model answering in 2 s.

The loop is a 3-maker loop: three agent steps in one parallel group, verified
by the built-in adversarial checker (``verify``), so a run makes two model
calls one after the other (the makers at once, then the checker): its floor
time is 2 x the model's latency. The model is the real OpenAI-compatible test
server (tests/engine/llm_server.py) in this process, answering every request
after ``--latency`` seconds, reached through the team's default provider
(``openai/bench-model`` at the server's URL) and LiteLLM, as a live run in
production.

For each N: a fresh deployment (PostgreSQL + Redis by default), one
``manage.py run_huey`` process (``LOOPKIT_RUN_HOST_CONCURRENCY`` = max(N,
256); ``LOOPKIT_HUEY_WORKERS`` left at its default unless ``--huey-workers``)
warmed up with one live run, then N live runs created in one transaction (all
enqueued at its commit). It prints runs per minute (N / (last finished_at -
first started_at)), the peak of runs in flight (status running or waiting,
sampled from the database every 0.25 s, with the deployment's PostgreSQL
connections), the worker's peak RSS (VmHWM) and
RSS per in-flight run ((peak - idle after the warm-up) / peak in flight), and
the throughput against the floor (N runs all at once take the floor time:
floor / span in %).

Targets (issue 14): 500 in flight in one process, < 2 MB RSS per in-flight
run, throughput within 10 % of the floor (>= 90 %).

    .venv/bin/python bench/inflight.py [--sizes 50,200,500] [--latency 2] [--setting redis] [--json]
    .venv/bin/python bench/inflight.py --quick      # N = 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runs_common import (
    REPO,
    Db,
    deployment,
    enqueue,
    load_average,
    proc_status,
    setup_team,
    stop,
    timestamp,
    wait_quiet,
    worker,
)

sys.path.insert(0, str(REPO))
from loopkit import yamlio
from tests.engine.llm_server import LLMServer, Reply, verdict

MAKERS = ["Maker A", "Maker B", "Maker C"]
#: Model calls one after the other in a run: the makers' group, then the checker.
SEQUENTIAL_CALLS = 2
LOOP = yamlio.dump(
    yamlio.loop_from_data(
        {
            "name": "inflight",
            "model": "team:bench",
            "pipeline": [
                {"parallel": [{"prompt": f"Write part {m[-1]}.", "label": m} for m in MAKERS]}
            ],
            "verify": {"maker": MAKERS, "checker": "Adversarial Verifier", "maxRounds": 1},
        }
    )
)
ACTIVE_SQL = (
    "SELECT count(*) FILTER (WHERE status IN ('running', 'waiting_for_approval')), "
    "count(*) FILTER (WHERE finished_at IS NOT NULL) FROM runs_run WHERE id >= %s"
)

CONNECTIONS_SQL = (
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid != pg_backend_pid()"
)


def model_server(latency: float) -> LLMServer:
    """The test server: the checker gets a passing verdict, makers a short text; both late."""

    def respond(body: dict[str, Any]) -> Reply:
        text = "\n".join(str(m.get("content") or "") for m in body.get("messages", []))
        if "adversarial verifier" in text.lower():
            return verdict(True, 0.9, delay=latency)
        return Reply("A short piece of work.", delay=latency)

    return LLMServer(respond).start()


def peak_concurrent(server: LLMServer) -> int:
    """The most model requests the server held at once."""
    edges = sorted(
        [(r.started, 1) for r in server.requests]
        + [(r.finished or r.started, -1) for r in server.requests]
    )
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def wait_finished(db: Db, first: int, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.one(ACTIVE_SQL, (first,))[1] >= count:
            return
        time.sleep(0.25)


def measure(size: int, args: argparse.Namespace) -> dict[str, Any]:
    floor = args.latency * SEQUENTIAL_CALLS
    extra = {
        "LOOPKIT_RUN_CONCURRENCY_PER_TEAM": "100000",
        "LOOPKIT_RUN_HOST_CONCURRENCY": str(max(size, 256)),
    }
    if args.huey_workers:
        extra["LOOPKIT_HUEY_WORKERS"] = str(args.huey_workers)
    server = model_server(args.latency)
    try:
        with deployment(args.setting, **extra) as env:
            env["DEBUG"] = "false"  # production: no query log kept per connection
            ids = setup_team(env, {"inflight": LOOP}, api_base=server.url)
            loop = ids["loops"]["inflight"]
            proc = worker(env, threads=None)
            db = Db(env)
            try:
                wait_quiet([proc.pid])
                warm = enqueue(env, loop, 1, dry_run=False)
                wait_finished(db, warm["first"], 1, 180)
                wait_quiet([proc.pid])
                idle = proc_status(proc.pid)
                server.requests.clear()
                load_before = load_average()
                batch = enqueue(env, loop, size, dry_run=False)
                first = batch["first"]
                deadline = time.monotonic() + args.timeout
                peak_active = peak_threads = peak_rss = peak_conns = 0
                while time.monotonic() < deadline:
                    active, done = db.one(ACTIVE_SQL, (first,))
                    if db.postgres:  # the deployment's connections (this one not counted)
                        peak_conns = max(peak_conns, int(db.one(CONNECTIONS_SQL)[0]))
                    status = proc_status(proc.pid)
                    peak_active = max(peak_active, int(active))
                    peak_threads = max(peak_threads, status.get("Threads", 0))
                    peak_rss = max(peak_rss, status.get("VmRSS", 0))
                    if done >= size or proc.poll() is not None:
                        break
                    time.sleep(0.25)
                end_status = proc_status(proc.pid)
                hwm = end_status.get("VmHWM", peak_rss)
                load_after = load_average()
                rows = db.rows(
                    "SELECT status, started_at, finished_at FROM runs_run WHERE id >= %s", (first,)
                )
                errors = [
                    str(e)[:300]
                    for (e,) in db.rows(
                        "SELECT DISTINCT error FROM runs_run WHERE id >= %s AND error != ''",
                        (first,),
                    )
                ]
            finally:
                db.close()
                stop(proc)
    finally:
        model_requests, model_peak = len(server.requests), peak_concurrent(server)
        server.stop()
    starts = [t for t in (timestamp(r[1]) for r in rows) if t is not None]
    ends = [t for t in (timestamp(r[2]) for r in rows) if t is not None]
    durations = [e - s for s, e in ((timestamp(r[1]), timestamp(r[2])) for r in rows) if s and e]
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row[0]] = statuses.get(row[0], 0) + 1
    span = (max(ends) - min(starts)) if starts and ends else None
    idle_kb = idle.get("VmRSS", 0)
    per_run_kb = (hwm - idle_kb) / peak_active if peak_active else None
    return {
        "setting": args.setting,
        "runs": size,
        "finished": len(ends),
        "statuses": statuses,
        "latency_s": args.latency,
        "floor_s": floor,
        "span_s": round(span, 2) if span else None,
        "runs_per_min": round(len(ends) / span * 60, 1) if span else None,
        "floor_runs_per_min": round(size / floor * 60, 1),
        "throughput_vs_floor_pct": round(floor / span * 100, 1)
        if span and len(ends) == size
        else None,
        "run_duration_p50_s": round(statistics.median(durations), 2) if durations else None,
        "run_duration_max_s": round(max(durations), 2) if durations else None,
        "peak_in_flight": peak_active,
        "peak_model_requests_at_once": model_peak,
        "model_requests": model_requests,
        "idle_rss_mb": round(idle_kb / 1024, 1),
        "peak_rss_mb": round(hwm / 1024, 1),
        # Kept after the runs ended: memory that grows with runs done, not with runs in flight.
        "end_rss_mb": round(end_status.get("VmRSS", 0) / 1024, 1),
        "rss_per_in_flight_mb": round(per_run_kb / 1024, 2) if per_run_kb is not None else None,
        "peak_db_connections": peak_conns if db.postgres else None,
        "idle_threads": idle.get("Threads"),
        "peak_threads": peak_threads,
        "enqueue_s": round(batch["enqueue_s"], 2),
        "errors": errors,
        "load_before": load_before,
        "load_after": load_after,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default="50,200,500")
    parser.add_argument("--quick", action="store_true", help="N = 20 only")
    parser.add_argument("--latency", type=float, default=2.0, help="model latency, seconds")
    parser.add_argument("--setting", default="redis", choices=["redis", "embedded"])
    parser.add_argument("--huey-workers", type=int, default=0, help="LOOPKIT_HUEY_WORKERS")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per size")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [20] if args.quick else [int(n) for n in args.sizes.split(",")]
    for size in sizes:
        r = measure(size, args)
        if args.json:
            print(json.dumps(r), flush=True)
            continue
        print(
            f"inflight [{r['setting']}] N={r['runs']}: {r['finished']}/{r['runs']} finished "
            f"{r['statuses']} in {r['span_s']} s = {r['runs_per_min']} runs/min "
            f"(floor {r['floor_runs_per_min']}/min: {r['throughput_vs_floor_pct']} % of it; "
            f"run p50 {r['run_duration_p50_s']} s, floor {r['floor_s']} s); "
            f"peak in flight {r['peak_in_flight']} (model requests at once "
            f"{r['peak_model_requests_at_once']}); worker RSS idle {r['idle_rss_mb']} MB, peak "
            f"{r['peak_rss_mb']} MB = {r['rss_per_in_flight_mb']} MB per in-flight run, at the end "
            f"{r['end_rss_mb']} MB; threads "
            f"{r['idle_threads']} -> {r['peak_threads']}, PostgreSQL connections "
            f"{r['peak_db_connections']}; load {r['load_before']} -> {r['load_after']}"
            + (f"; errors {r['errors']}" if r["errors"] else ""),
            flush=True,
        )


if __name__ == "__main__":
    main()

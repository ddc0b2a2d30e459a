"""Drain dry runs of pr-review with 1 and with 4 worker processes on PostgreSQL + Redis.

For each worker count: a fresh PostgreSQL database and Redis database, the
seed's ``loops/pr-review.yaml`` (4 parallel reviewers and an adversarial
checker). Throughput is runs / (last finished_at - first started_at), so
worker start-up is not counted; the ratio is the 4-worker throughput over the
1-worker one. Two modes:

* **CPU-bound** (the default, ``--latency-ms 0``): ``--runs`` (500) dry runs
  enqueued (RedisHuey) before any worker starts, then N ``run_huey -w 1``
  processes drain the queue.
* **I/O-bound** (``--latency-ms MS``, e.g. 1000): the dry runs' model answers
  after MS ms (``dryRun: {latencyMs: MS}``, two calls one after the other: the
  reviewers at once, then the checker), so a run mostly waits. Each process
  executes ``--per-process`` runs at once (default 4: ``run_huey -w 4`` and
  ``LOOPKIT_RUN_HOST_CONCURRENCY=4``); the N processes are started and idle
  before ``--runs`` (default 160) runs are created in one transaction. The
  floor throughput is N x per-process / (2 x MS). Target (issue 14): 4
  processes >= 3.5x one.

    .venv/bin/python bench/drain.py [--runs 500] [--workers 1,4] [--json]
    .venv/bin/python bench/drain.py --latency-ms 1000 [--per-process 4] [--runs 160]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runs_common import (
    REPO,
    deployment,
    load_average,
    manage,
    proc_cpu,
    result,
    setup,
    stop,
    wait_quiet,
    worker,
)

ENQUEUE = """
import json, os, time
from django.db import transaction
from builder.models import Loop
from runs.lifecycle import start_run
loop = Loop.objects.get()
payload = {"action": "opened", "pull_request": {"number": 1, "title": "Bench", "diff_url": "https://example.com/1.diff"},
           "repository": {"name": "api", "full_name": "acme/api", "owner": {"login": "acme"}}}
started = time.perf_counter()
with transaction.atomic():  # every run enqueued at the commit, at once
    for _ in range(int(os.environ["BENCH_RUNS"])):
        start_run(loop, trigger_type="webhook", payload=payload, dry_run=True, label="bench")
print("RESULT " + json.dumps({"enqueue_s": time.perf_counter() - started}))
"""


def finished(env: dict[str, str]) -> tuple[int, float | None]:
    import psycopg

    url = env["DATABASE_URL"].replace("postgres://", "postgresql://")
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE finished_at IS NOT NULL), "
            "EXTRACT(EPOCH FROM max(finished_at) - min(started_at)) FROM runs_run"
        ).fetchone()
    if row is None:
        return 0, None
    return int(row[0]), None if row[1] is None else float(row[1])


def run_seconds(env: dict[str, str]) -> float | None:
    """The median run's own time (finished_at - started_at)."""
    import psycopg

    url = env["DATABASE_URL"].replace("postgres://", "postgresql://")
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT EXTRACT(EPOCH FROM percentile_cont(0.5) WITHIN GROUP "
            "(ORDER BY finished_at - started_at)) FROM runs_run WHERE finished_at IS NOT NULL"
        ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def drain(runs: int, workers: int, latency_ms: int = 0, per_process: int = 1) -> dict[str, Any]:
    loop_yaml = (REPO / "loops" / "pr-review.yaml").read_text()
    extra = {"LOOPKIT_RUN_CONCURRENCY_PER_TEAM": "100000"}
    if latency_ms:
        loop_yaml += f"dryRun:\n  latencyMs: {latency_ms}\n"
        extra["LOOPKIT_RUN_HOST_CONCURRENCY"] = str(per_process)
    with deployment("redis", **extra) as env:
        setup(env, loop_yaml)
        cpu_before = 0.0
        if latency_ms:  # the workers are up and idle before the runs exist
            procs = [worker(env, threads=per_process) for _ in range(workers)]
            wait_quiet([p.pid for p in procs])
            cpu_before = sum(proc_cpu(p.pid) for p in procs)
        load_before = load_average()
        enqueued = result(manage({**env, "BENCH_RUNS": str(runs)}, "shell", "-c", ENQUEUE))
        if not latency_ms:
            procs = [worker(env, threads=per_process) for _ in range(workers)]
        try:
            deadline = time.monotonic() + 1800
            while True:
                done, span = finished(env)
                if done >= runs or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            cpu = sum(proc_cpu(p.pid) for p in procs)
        finally:
            stop(*procs)
        import psycopg

        with psycopg.connect(env["DATABASE_URL"].replace("postgres://", "postgresql://")) as conn:
            statuses: dict[str, int] = dict(
                conn.execute("SELECT status, count(*) FROM runs_run GROUP BY status").fetchall()
            )
            errors = [e for (e,) in conn.execute(
                "SELECT DISTINCT left(error, 300) FROM runs_run WHERE error <> '' LIMIT 3"
            ).fetchall()]  # fmt: skip
        median_run = run_seconds(env)
    out: dict[str, Any] = {
        "workers": workers,
        "runs": runs,
        "finished": done,
        "statuses": statuses,
        "errors": errors,
        "seconds": round(span or 0.0, 2),
        "runs_per_s": round(done / span, 2) if span else None,
        "enqueue_s": round(enqueued["enqueue_s"], 2),
        "run_p50_s": round(median_run, 2) if median_run is not None else None,
        "load_before": load_before,
        "load_after": load_average(),
    }
    if latency_ms:
        floor = 2 * latency_ms / 1000
        cpu_per_run = (cpu - cpu_before) / max(done, 1)
        out.update(
            latency_ms=latency_ms,
            per_process=per_process,
            floor_runs_per_s=round(workers * per_process / floor, 2),
            # What the workers' CPU allows on this machine: its cores / CPU per run.
            worker_cpu_per_run_s=round(cpu_per_run, 3),
            cpu_ceiling_runs_per_s=round((os.cpu_count() or 1) / cpu_per_run, 1)
            if cpu_per_run
            else None,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, help="default 500, or 160 with --latency-ms")
    parser.add_argument("--workers", default="1,4")
    parser.add_argument(
        "--latency-ms", type=int, default=0, help="I/O-bound mode: the dry-run model's latency"
    )
    parser.add_argument(
        "--per-process",
        type=int,
        help="runs a process executes at once (-w and LOOPKIT_RUN_HOST_CONCURRENCY); "
        "default 1, or 4 with --latency-ms",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runs = args.runs or (160 if args.latency_ms else 500)
    per_process = args.per_process or (4 if args.latency_ms else 1)
    results = []
    for n in args.workers.split(","):
        r = drain(runs, int(n), args.latency_ms, per_process)
        results.append(r)
        if args.json:
            print(json.dumps(r), flush=True)
            continue
        mode = (
            f", model latency {r['latency_ms']} ms, {r['per_process']} at once per process"
            if args.latency_ms
            else ""
        )
        floor = (
            f"; floor {r['floor_runs_per_s']} runs/s ({r['runs_per_s'] / r['floor_runs_per_s']:.0%}); "
            f"workers' CPU {r['worker_cpu_per_run_s']} s per run: {os.cpu_count()} cores allow "
            f"{r['cpu_ceiling_runs_per_s']:.1f} runs/s"
            if args.latency_ms and r["runs_per_s"]
            else ""
        )
        print(
            f"drain [{r['workers']} worker(s){mode}]: {r['finished']}/{r['runs']} dry runs of "
            f"pr-review in {r['seconds']} s = {r['runs_per_s']} runs/s {r['statuses']} "
            f"(run p50 {r['run_p50_s']} s{floor}; enqueued in {r['enqueue_s']} s; "
            f"load {r['load_before']} -> {r['load_after']})",
            flush=True,
        )
    if len(results) >= 2 and results[0]["runs_per_s"] and results[-1]["runs_per_s"]:
        ratio = results[-1]["runs_per_s"] / results[0]["runs_per_s"]
        print(f"drain ratio {results[-1]['workers']}/{results[0]['workers']} workers: {ratio:.2f}x")


if __name__ == "__main__":
    main()

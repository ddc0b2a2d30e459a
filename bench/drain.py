"""Drain 500 dry runs of pr-review with 1 and with 4 workers on PostgreSQL + Redis.

For each worker count: a fresh PostgreSQL database and Redis database, the
seed's ``loops/pr-review.yaml`` (4 parallel reviewers and an adversarial
checker), then ``--runs`` dry runs enqueued (RedisHuey) before any worker
starts. Then N ``run_huey -w 1`` processes drain the queue. Throughput is
runs / (last finished_at - first started_at), so worker start-up is not
counted; the ratio is the 4-worker throughput over the 1-worker one.

    .venv/bin/python bench/drain.py [--runs 500] [--workers 1,4] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runs_common import REPO, deployment, manage, result, setup, stop, worker

ENQUEUE = """
import json, os, time
from builder.models import Loop
from runs.lifecycle import start_run
loop = Loop.objects.get()
payload = {"action": "opened", "pull_request": {"number": 1, "title": "Bench", "diff_url": "https://example.com/1.diff"}}
started = time.perf_counter()
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


def drain(runs: int, workers: int) -> dict[str, Any]:
    loop_yaml = (REPO / "loops" / "pr-review.yaml").read_text()
    with deployment("redis", LOOPKIT_RUN_CONCURRENCY_PER_TEAM="1000") as env:
        setup(env, loop_yaml)
        enqueued = result(manage({**env, "BENCH_RUNS": str(runs)}, "shell", "-c", ENQUEUE))
        procs = [worker(env, threads=1) for _ in range(workers)]
        try:
            deadline = time.monotonic() + 1800
            while True:
                done, span = finished(env)
                if done >= runs or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        finally:
            stop(*procs)
        import psycopg

        with psycopg.connect(env["DATABASE_URL"].replace("postgres://", "postgresql://")) as conn:
            statuses = dict(
                conn.execute("SELECT status, count(*) FROM runs_run GROUP BY status").fetchall()
            )
    return {
        "workers": workers,
        "runs": runs,
        "finished": done,
        "statuses": statuses,
        "seconds": round(span or 0.0, 2),
        "runs_per_s": round(done / span, 2) if span else None,
        "enqueue_s": round(enqueued["enqueue_s"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--workers", default="1,4")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [drain(args.runs, int(n)) for n in args.workers.split(",")]
    for r in results:
        if args.json:
            print(json.dumps(r))
        else:
            print(
                f"drain [{r['workers']} worker(s)]: {r['finished']}/{r['runs']} dry runs of pr-review "
                f"in {r['seconds']} s = {r['runs_per_s']} runs/s {r['statuses']} "
                f"(enqueued in {r['enqueue_s']} s)"
            )
    if len(results) >= 2 and results[0]["runs_per_s"] and results[-1]["runs_per_s"]:
        ratio = results[-1]["runs_per_s"] / results[0]["runs_per_s"]
        print(f"drain ratio {results[-1]['workers']}/{results[0]['workers']} workers: {ratio:.2f}x")


if __name__ == "__main__":
    main()

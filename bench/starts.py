"""Start N runs at once over HTTP on PostgreSQL + Redis; count the database connections.

For each size: a fresh PostgreSQL database and Redis database, a user, a team,
the seed's ``loops/pr-review.yaml`` and an API token; then Daphne and two
``run_huey`` worker processes (4 threads each) as deployed, every run a dry
run (``LOOPKIT_RUNS_DRY_RUN_ONLY=true``), DEBUG off. N ``POST /api/runs``
are sent at once (one HTTP connection each) and the script waits until every
run it started has finished. Meanwhile ``pg_stat_activity`` is sampled every
100 ms for the bench database (the sampler's own connection excluded), and
each connection is traced to the process that holds it through its client
port (``/proc``).

Prints, per size: HTTP status counts, errors (exceptions and non-201
answers), HTTP latency p50/p95/max, the start burst's wall time, runs
finished / failed, the time until the last run finished, the peak of
connections in all and per process against the documented budget
(docs/deploy.md: at most ``LOOPKIT_DB_POOL_MAX`` per process, so
``(1 + workers) * LOOPKIT_DB_POOL_MAX``), the connections left when the runs
were done, errors in the processes' logs, and the load average.

Target: 0 errors, 0 failed runs, peak connections within the budget.

    .venv/bin/python bench/starts.py [--sizes 100,300] [--workers 2] [--threads 4] [--json]

Pool sizes come from the environment as in a deployment (LOOPKIT_DB_POOL_MAX=...).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runs_common import REPO, deployment, free_port, manage, percentile, result, stop, wait_http

sys.path.insert(0, str(REPO / "tests"))
from service_urls import redis_url

SETUP = (REPO / "tests" / "web" / "scripts" / "dbload_setup.py").read_text()
#: The bench's own connections (the sampler, the poller) are not counted.
BENCH_APP = "loopkit-bench-starts"
TERMINAL = ("succeeded", "failed", "cancelled", "rejected", "timed_out")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process *pid* so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def socket_owners(pids: dict[str, int]) -> dict[int, str]:
    """Map local TCP ports to the name of the process (of *pids*) that owns the socket."""
    inode_owner: dict[str, str] = {}
    for name, pid in pids.items():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inode_owner[target[8:-1]] = name
    owners: dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            inode = fields[9]
            if inode in inode_owner:
                owners[int(fields[1].rsplit(":", 1)[1], 16)] = inode_owner[inode]
    return owners


class Sampler(threading.Thread):
    """Sample the bench database's connections every 100 ms: total and per process."""

    def __init__(self, url: str, database: str, pids: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.url, self.database, self.pids = url, database, pids
        self.peak = 0
        self.peak_by_process: Counter[str] = Counter()
        self.samples = 0
        self.last: Counter[str] = Counter()
        self.stopping = threading.Event()

    def sample(self, conn: Any) -> Counter[str]:
        rows = conn.execute(
            "SELECT client_port, state FROM pg_stat_activity "
            "WHERE datname = %s AND application_name <> %s",
            [self.database, BENCH_APP],
        ).fetchall()
        owners = socket_owners(self.pids)
        by_process: Counter[str] = Counter()
        for port, _state in rows:
            by_process[owners.get(port, "other")] += 1
        by_process["total"] = len(rows)
        return by_process

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True, application_name=BENCH_APP) as conn:
            while not self.stopping.is_set():
                counts = self.sample(conn)
                self.samples += 1
                self.last = counts
                self.peak = max(self.peak, counts["total"])
                for name, n in counts.items():
                    self.peak_by_process[name] = max(self.peak_by_process[name], n)
                self.stopping.wait(0.1)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


async def burst(base: str, token: str, loop_id: int, count: int) -> dict[str, Any]:
    """Send *count* run starts at once; return statuses, errors, latencies and run ids."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    headers = {"Authorization": f"Bearer {token}"}
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    run_ids: list[int] = []
    gate = asyncio.Event()
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=300
    ) as client:

        async def one() -> None:
            await gate.wait()
            started = time.perf_counter()
            try:
                response = await client.post(
                    "/api/runs", json={"loop_id": loop_id, "dry_run": True}
                )
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] += 1
                return
            finally:
                latencies.append(time.perf_counter() - started)
            statuses[str(response.status_code)] += 1
            if response.status_code == 201:
                run_ids.append(response.json()["id"])
            else:
                errors[f"{response.status_code} {response.text[:120]}"] += 1

        tasks = [asyncio.create_task(one()) for _ in range(count)]
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        gate.set()
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - started
    return {
        "statuses": dict(statuses),
        "errors": dict(errors),
        "latency_ms": {
            "p50": round(percentile(latencies, 50) * 1000),
            "p95": round(percentile(latencies, 95) * 1000),
            "max": round(max(latencies) * 1000),
        },
        "wall_s": round(wall, 2),
        "run_ids": run_ids,
    }


def log_problems(paths: list[Path]) -> list[str]:
    """Lines of the processes' logs that report an error (LOG_LEVEL=WARNING)."""
    lines = []
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            if any(word in line for word in ("Traceback", "ERROR", "Error:", "refused")):
                lines.append(f"{path.name}: {line[:200]}")
    return lines


def measure(count: int, workers: int, threads: int, timeout: float) -> dict[str, Any]:
    loop_yaml = (REPO / "loops" / "pr-review.yaml").read_text()
    pool_max = int(os.environ.get("LOOPKIT_DB_POOL_MAX", "10") or 10)
    with deployment(
        "redis",
        redis=redis_url("bench_starts"),
        LOOPKIT_RUNS_DRY_RUN_ONLY="true",
        LOOPKIT_HUEY_WORKERS=str(threads),
    ) as env:
        env["DEBUG"] = "false"  # as deployed (the development mode keeps every query in memory)
        manage(env, "migrate", "--no-input")
        world = result(manage({**env, "DBLOAD_LOOP_YAML": loop_yaml}, "shell", "-c", SETUP))
        database = env["DATABASE_URL"].rsplit("/", 1)[1]
        admin_url = env["DATABASE_URL"].replace("postgres://", "postgresql://")
        logs = Path(tempfile.mkdtemp(prefix="loopkit-starts-"))
        port = free_port()
        procs: dict[str, subprocess.Popen[bytes]] = {}

        def spawn(name: str, *args: str) -> None:
            with (logs / f"{name}.log").open("wb") as out:
                procs[name] = subprocess.Popen(
                    [sys.executable, *args], env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
                )

        spawn("daphne", "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
              "loopkit_web.asgi:application")  # fmt: skip
        for i in range(workers):
            spawn(f"worker{i + 1}", str(REPO / "manage.py"), "run_huey", "-w", str(threads),
                  "-m", "0.1")  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        sampler = Sampler(admin_url, database, {name: p.pid for name, p in procs.items()})
        import psycopg

        # Opened before the burst: a server out of connections must not refuse the bench.
        poller = psycopg.connect(admin_url, autocommit=True, application_name=BENCH_APP)
        try:
            wait_http(base + "/api/health")
            time.sleep(3)  # the workers' start-up (imports) is not part of the figures
            sampler.start()
            daphne_cpu = cpu_seconds(procs["daphne"].pid)
            started = time.perf_counter()
            sent = asyncio.run(burst(base, world["token"], world["loop"], count))
            daphne_cpu = cpu_seconds(procs["daphne"].pid) - daphne_cpu
            deadline = time.monotonic() + timeout
            while True:
                done = poller.execute(
                    "SELECT count(*) FROM runs_run WHERE status = ANY(%s)", [list(TERMINAL)]
                ).fetchone()[0]
                if done >= len(sent["run_ids"]) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            all_done_s = time.perf_counter() - started
            time.sleep(1)
            left = dict(sampler.last)
            statuses = dict(
                poller.execute("SELECT status, count(*) FROM runs_run GROUP BY status").fetchall()
            )
        finally:
            poller.close()
            sampler.stop()
            stop(*procs.values())
    problems = log_problems(sorted(logs.glob("*.log")))
    return {
        "runs": count,
        "http": {k: v for k, v in sent.items() if k != "run_ids"},
        "daphne_cpu_ms_per_start": round(daphne_cpu * 1000 / count, 1),
        "runs_started": len(sent["run_ids"]),
        "run_statuses": statuses,
        "failed_runs": sum(n for s, n in statuses.items() if s != "succeeded"),
        "runs_finished": done,
        "all_finished_s": round(all_done_s, 1),
        "peak_connections": sampler.peak,
        "peak_by_process": {k: v for k, v in sampler.peak_by_process.items() if k != "total"},
        "budget": {"per_process": pool_max, "total": (1 + workers) * pool_max},
        "connections_after": left,
        "samples": sampler.samples,
        "log_problems": len(problems),
        "log_problem_lines": problems[:10],
        "logs": str(logs),
        "load": load(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,300")
    parser.add_argument("--workers", type=int, default=2, help="run_huey processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per run_huey")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the runs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    failed = False
    for size in (int(n) for n in args.sizes.split(",")):
        r = measure(size, args.workers, args.threads, args.timeout)
        met = (
            not r["http"]["errors"]
            and r["failed_runs"] == 0
            and r["runs_finished"] == size
            and r["peak_connections"] <= r["budget"]["total"]
        )
        failed = failed or not met
        if args.json:
            print(json.dumps({**r, "target_met": met}))
            continue
        http = r["http"]
        print(
            f"starts [{size} at once, {args.workers} workers x {args.threads} threads]: "
            f"HTTP {http['statuses']} errors {http['errors'] or 0} in {http['wall_s']} s "
            f"(latency p50 {http['latency_ms']['p50']} ms, p95 {http['latency_ms']['p95']} ms, "
            f"max {http['latency_ms']['max']} ms; Daphne CPU {r['daphne_cpu_ms_per_start']} ms "
            f"a start); runs {r['run_statuses']}, "
            f"{r['runs_finished']} finished, {r['failed_runs']} failed, all done after "
            f"{r['all_finished_s']} s; peak DB connections {r['peak_connections']} "
            f"(by process {r['peak_by_process']}) vs budget {r['budget']['total']} "
            f"({r['budget']['per_process']} per process); left after: {r['connections_after']}; "
            f"log problems {r['log_problems']}; load {r['load']}; target "
            f"{'met' if met else 'MISSED'}"
        )
        for line in r["log_problem_lines"]:
            print("   ", line)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()

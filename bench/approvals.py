"""1,000 runs waiting at an approval gate: worker slots held, database load, resume latency.

Starts LoopKit as deployed (Daphne and one ``manage.py run_huey`` worker,
``LOOPKIT_HUEY_WORKERS`` and ``LOOPKIT_RUN_HOST_CONCURRENCY`` at their
defaults unless given), fresh database. The loop opens with an approval gate
(owner, 2 h timeout) followed by one step; ``--runs`` dry runs of it are
created in one transaction. Once the runs have settled (all waiting, or the
status counts unchanged for ``--settle`` seconds) it reports:

* **slots**: runs running / waiting / still queued, the worker's threads and
  RSS idle vs now, and whether the worker still has free capacity: a fresh dry
  run of a gate-less loop started through the API, and how long it takes to
  finish (``--probe-timeout``, default 30 s).
* **database load of the waiting**: the median of three windows of
  ``--window`` seconds (5) with the runs waiting, minus the same with none
  (the worker idle, before the runs were created): on PostgreSQL ``pg_stat_database`` transactions
  (``xact_commit``) and rows read (``tup_returned`` + ``tup_fetched``) per
  second (after a ``VACUUM ANALYZE``, so that autovacuum does not read during
  the window); everywhere the worker's CPU time, context switches (all its
  threads: how often something in it woke up) and read system calls
  (``/proc/PID/io`` ``syscr``: on SQLite the database reads that missed its
  page cache; PostgreSQL's socket reads are not counted there) per second.
* **decision -> resume latency**: ``--decisions`` (100) approvals decided one
  after the other with ``POST /api/runs/{run}/approvals/{id}/approve`` (bearer
  token); for each, from the API's answer to the run's ``approval_resolved``
  event (the event's ``at``, the engine's clock on this machine) and to the
  run's status leaving ``waiting_for_approval`` (read every 10 ms).

Targets (issue 14): 0 worker slots held by waiting runs (the probe finishes
at once), 0 queries/s from the waiting, decision -> resume p95 < 1 s.

    .venv/bin/python bench/approvals.py [--runs 1000] [--decisions 100] [--settings redis,embedded] [--json]
    .venv/bin/python bench/approvals.py --quick     # 100 runs, 20 decisions
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
    PG_ADMIN_URL,
    REPO,
    Db,
    deployment,
    enqueue,
    free_port,
    load_average,
    percentile,
    proc_cpu,
    proc_status,
    setup_team,
    spawn,
    stop,
    wait_http,
    wait_quiet,
    worker,
)

sys.path.insert(0, str(REPO))
from loopkit import yamlio

GATED = yamlio.dump(
    yamlio.loop_from_data(
        {
            "name": "gated",
            "pipeline": [
                {
                    "approve": "Go on?",
                    "label": "Gate",
                    "approvers": ["owner"],
                    "timeoutMinutes": 120,
                },
                {"prompt": "Finish the work.", "label": "After"},
            ],
        }
    )
)
PROBE = yamlio.dump(
    yamlio.loop_from_data(
        {"name": "probe", "pipeline": [{"prompt": "Say hello.", "label": "Hello"}]}
    )
)
COUNTS_SQL = (
    "SELECT count(*) FILTER (WHERE status = 'queued'), count(*) FILTER (WHERE status = 'running'), "
    "count(*) FILTER (WHERE status = 'waiting_for_approval'), "
    "count(*) FILTER (WHERE finished_at IS NOT NULL) FROM runs_run WHERE loop_name = 'gated'"
)
PENDING_SQL = (
    "SELECT a.id, a.run_id FROM runs_approvalrequest a JOIN runs_run r ON r.id = a.run_id "
    "WHERE a.status = 'pending' AND r.status = 'waiting_for_approval' AND {exclude} "
    "ORDER BY a.id LIMIT 1"
)
RESOLVED_SQL = (
    "SELECT r.status, (SELECT e.payload FROM runs_runevent e WHERE e.run_id = r.id "
    "AND e.type = 'approval_resolved' LIMIT 1) FROM runs_run r WHERE r.id = %s"
)


def counts(db: Db) -> dict[str, int]:
    queued, running, waiting, finished = db.one(COUNTS_SQL)
    return {"queued": queued, "running": running, "waiting": waiting, "finished": finished}


def context_switches(pid: int) -> int:
    """Context switches of all the threads of *pid*: how often they slept and woke up."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if "ctxt_switches:" in line:
                    total += int(line.split()[1])
        except (OSError, ValueError):
            continue  # the thread ended
    return total


class Load:
    """What the database and the worker did over a window (deltas per second)."""

    def __init__(self, env: dict[str, str], pid: int) -> None:
        self.pid = pid
        self.url = env.get("DATABASE_URL", "").replace("postgres://", "postgresql://")
        self.dbname = env["DATABASE_URL"].rsplit("/", 1)[1] if env.get("DATABASE_URL") else None
        self.admin: Any = None
        if self.dbname:
            import psycopg

            url = PG_ADMIN_URL.replace("postgres://", "postgresql://")
            self.admin = psycopg.connect(url, autocommit=True)

    def snapshot(self) -> dict[str, float]:
        with open(f"/proc/{self.pid}/io") as fh:
            io = dict(line.split(": ") for line in fh.read().splitlines())
        out = {
            "t": time.monotonic(),
            "cpu": proc_cpu(self.pid),
            "syscr": float(io["syscr"]),
            "wakeups": float(context_switches(self.pid)),
        }
        if self.admin is not None:
            row = self.admin.execute(
                "SELECT xact_commit + xact_rollback, tup_returned + tup_fetched "
                "FROM pg_stat_database WHERE datname = %s",
                (self.dbname,),
            ).fetchone()
            out["xact"], out["rows"] = float(row[0]), float(row[1])
        return out

    def window(self, seconds: float, parts: int = 3) -> dict[str, float]:
        """The median over *parts* consecutive windows of *seconds* (one may catch a
        once-a-minute task, or a backend's statistics flushed late)."""
        if self.admin is not None:
            # Nothing left for autovacuum to read during the window (the runs just created).
            import psycopg

            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")
        time.sleep(2)  # backends flush their statistics at most once a second
        rates: list[dict[str, float]] = []
        before = self.snapshot()
        for _ in range(parts):
            time.sleep(seconds)
            after = self.snapshot()
            span = after["t"] - before["t"]
            rates.append({k: (after[k] - before[k]) / span for k in before if k != "t"})
            before = after
        return {k: round(statistics.median(r[k] for r in rates), 2) for k in rates[0]}

    def close(self) -> None:
        if self.admin is not None:
            self.admin.close()


def settle(db: Db, runs: int, quiet: float, timeout: float = 900) -> tuple[dict[str, int], float]:
    """Wait until every run waits, or the counts stay the same for *quiet* seconds."""
    started = time.monotonic()
    last, since = counts(db), time.monotonic()
    while time.monotonic() - started < timeout:
        time.sleep(0.5)
        now = counts(db)
        if now["waiting"] >= runs:
            return now, time.monotonic() - started
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last, time.monotonic() - started


def probe(client: Any, db: Db, loop: int, timeout: float) -> dict[str, Any]:
    """Start a dry run of the gate-less loop through the API; how long until it finished?"""
    started = time.monotonic()
    response = client.post("/api/runs", json={"loop_id": loop, "dry_run": True})
    response.raise_for_status()
    run = response.json()["id"]
    status = "queued"
    while time.monotonic() - started < timeout:
        status = db.one("SELECT status FROM runs_run WHERE id = %s", (run,))[0]
        if status not in ("queued", "running", "waiting_for_approval"):
            return {"status": status, "seconds": round(time.monotonic() - started, 2)}
        time.sleep(0.05)
    return {"status": status, "seconds": None}


def decide(client: Any, db: Db, count: int, wait: float = 60) -> dict[str, Any]:
    """Approve *count* waiting runs one after the other; time each to its resumption."""
    done: list[int] = []
    to_event: list[float] = []
    to_status: list[float] = []
    missed = 0
    for _ in range(count):
        deadline = time.monotonic() + wait
        row = None
        while row is None and time.monotonic() < deadline:
            rows = db.rows(PENDING_SQL.format(exclude=_not_in(done)))
            row = rows[0] if rows else None
            if row is None:
                time.sleep(0.05)
        if row is None:
            break  # nothing waits any more
        approval, run = int(row[0]), int(row[1])
        response = client.post(
            f"/api/runs/{run}/approvals/{approval}/approve", json={"comment": "bench"}
        )
        answered = time.time()
        response.raise_for_status()
        done.append(approval)
        seen_status = event_at = None
        deadline = time.monotonic() + 30
        while (seen_status is None or event_at is None) and time.monotonic() < deadline:
            status, payload = db.one(RESOLVED_SQL, (run,))
            if seen_status is None and status != "waiting_for_approval":
                seen_status = time.time()
            if event_at is None and payload is not None:
                data = json.loads(payload) if isinstance(payload, str) else payload
                event_at = float(data["at"])
            time.sleep(0.01)
        if seen_status is None or event_at is None:
            missed += 1
        if seen_status is not None:
            to_status.append((seen_status - answered) * 1000)
        if event_at is not None:
            to_event.append((event_at - answered) * 1000)

    def figures(values: list[float]) -> dict[str, float | None]:
        return {
            "p50_ms": round(statistics.median(values), 1) if values else None,
            "p95_ms": round(percentile(values, 95), 1) if values else None,
            "max_ms": round(max(values), 1) if values else None,
        }

    return {
        "decided": len(done),
        "unresolved_after_30s": missed,
        "to_event": figures(to_event),
        "to_status": figures(to_status),
    }


def _not_in(ids: list[int]) -> str:
    return f"a.id NOT IN ({','.join(str(i) for i in ids)})" if ids else "TRUE"


def measure(setting: str, args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    extra = {"LOOPKIT_RUN_CONCURRENCY_PER_TEAM": "100000"}
    if args.huey_workers:
        extra["LOOPKIT_HUEY_WORKERS"] = str(args.huey_workers)
    if args.run_host:
        extra["LOOPKIT_RUN_HOST_CONCURRENCY"] = str(args.run_host)
    with deployment(setting, **extra) as env:
        env["DEBUG"] = "false"  # production: no query log kept per connection
        ids = setup_team(env, {"gated": GATED, "probe": PROBE})
        port = free_port()
        server = spawn(
            env, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "loopkit_web.asgi:application"
        )
        proc = worker(env, threads=None)
        base = f"http://127.0.0.1:{port}"
        db = Db(env)
        load = Load(env, proc.pid)
        client = httpx.Client(
            base_url=base, timeout=30, headers={"Authorization": f"Bearer {ids['token']}"}
        )
        try:
            wait_http(base + "/api/health")
            wait_quiet([proc.pid, server.pid])
            idle_proc = proc_status(proc.pid)
            idle = load.window(args.window)
            load_before = load_average()
            batch = enqueue(env, ids["loops"]["gated"], args.runs, dry_run=True)
            settled, settle_s = settle(db, args.runs, args.settle)
            waiting_proc = proc_status(proc.pid)
            waiting = load.window(args.window)
            after = counts(db)
            probed = probe(client, db, ids["loops"]["probe"], args.probe_timeout)
            decisions = decide(client, db, args.decisions)
            load_after = load_average()
        finally:
            client.close()
            load.close()
            db.close()
            stop(server, proc)
    caused = {k: round(waiting[k] - idle[k], 2) for k in waiting}
    return {
        "setting": setting,
        "runs": args.runs,
        "settled": settled,
        "settle_s": round(settle_s, 1),
        "counts_after_window": after,
        "enqueue_s": round(batch["enqueue_s"], 2),
        "worker_threads": {
            "idle": idle_proc.get("Threads"),
            "waiting": waiting_proc.get("Threads"),
        },
        "worker_rss_mb": {
            "idle": round(idle_proc.get("VmRSS", 0) / 1024, 1),
            "waiting": round(waiting_proc.get("VmRSS", 0) / 1024, 1),
        },
        "probe": probed,
        "window_s": args.window,
        "per_s_idle": idle,
        "per_s_waiting": waiting,
        "per_s_caused_by_waiting": caused,
        "decisions": decisions,
        "load_before": load_before,
        "load_after": load_after,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--decisions", type=int, default=100)
    parser.add_argument("--settings", default="redis", help="redis (PostgreSQL + Redis), embedded")
    parser.add_argument("--quick", action="store_true", help="100 runs, 20 decisions")
    parser.add_argument("--window", type=float, default=5.0, help="seconds of one load window")
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--probe-timeout", type=float, default=30.0)
    parser.add_argument("--huey-workers", type=int, default=0, help="LOOPKIT_HUEY_WORKERS")
    parser.add_argument("--run-host", type=int, default=0, help="LOOPKIT_RUN_HOST_CONCURRENCY")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.decisions = 100, 20
    for setting in args.settings.split(","):
        r = measure(setting, args)
        if args.json:
            print(json.dumps(r), flush=True)
            continue
        s, c, p, d = r["settled"], r["per_s_caused_by_waiting"], r["probe"], r["decisions"]
        db_load = (
            f"{c['xact']} transactions/s, {c['rows']} rows read/s (pg_stat_database), "
            if "xact" in c
            else ""
        )
        print(
            f"approvals [{setting}] {r['runs']} gated dry runs after {r['settle_s']} s: "
            f"{s['waiting']} waiting, {s['running']} running, {s['queued']} still queued; worker "
            f"threads {r['worker_threads']['idle']} -> {r['worker_threads']['waiting']}, RSS "
            f"{r['worker_rss_mb']['idle']} -> {r['worker_rss_mb']['waiting']} MB; fresh dry run: "
            + (
                f"finished ({p['status']}) in {p['seconds']} s"
                if p["seconds"] is not None
                else f"not finished in {args.probe_timeout:g} s (still {p['status']})"
            )
            + f"\n  caused by the waiting (minus idle, median of 3 x {r['window_s']:g} s): {db_load}"
            f"worker CPU {c['cpu']} s/s, {c['wakeups']} context switches/s, "
            f"{c['syscr']} read syscalls/s"
            f"\n  decision -> resume ({d['decided']} decided, {d['unresolved_after_30s']} "
            f"unresolved): to approval_resolved p50 {d['to_event']['p50_ms']} ms, p95 "
            f"{d['to_event']['p95_ms']} ms, max {d['to_event']['max_ms']} ms; to status "
            f"leaving waiting p50 {d['to_status']['p50_ms']} ms, p95 {d['to_status']['p95_ms']} ms"
            f"\n  load {r['load_before']} -> {r['load_after']}",
            flush=True,
        )


if __name__ == "__main__":
    main()

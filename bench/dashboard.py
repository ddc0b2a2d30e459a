"""Time the dashboard and the runs list on 1k, 10k and 100k runs of one team.

Seeds a fresh database (SQLite in a temporary folder by default, or a
throw-away PostgreSQL database with ``--postgres``) with runs spread over the
last 30 days across 8 loops and 5 models, each run with its events and its
per-model figures (``RunModel``), all with ``bulk_create``; another team gets 10% as many runs, so the team filter has
something to skip. At each size it requests each page through Django's test
client (in-process: URL routing, views, queries and template rendering; no
network) and prints the median server time of ``--repeat`` requests and the
number of SQL queries of one request. Targets: under 300 ms, and a query
count that does not grow with the number of runs.

    .venv/bin/python bench/dashboard.py [--sizes 1000,10000,100000] [--events 6]
                                         [--repeat 5] [--postgres URL] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 300.0
PAGES = [
    ("dashboard 24h", "/dashboard/?period=24h"),
    ("dashboard 7d", "/dashboard/?period=7d"),
    ("dashboard 30d", "/dashboard/?period=30d"),
    ("api dashboard 30d", "/api/dashboard?period=30d"),
    ("runs list", "/runs/"),
    ("runs list by cost", "/runs/?sort=-cost"),
    ("runs list filtered", "/runs/?status=failed&trigger=cron&sort=-tokens_in"),
    ("runs list model", "/runs/?model=gpt-4o-mini&since=2026-01-01"),
    ("runs list page 100", "/runs/?page=100"),
]
MODELS = ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5", "gemini/gemini-2.5-flash", "local/llama"]
STATUSES = [
    ("succeeded", 70),
    ("failed", 8),
    ("verification_failed", 10),
    ("budget_exceeded", 4),
    ("cancelled", 3),
    ("running", 1),
]
EVENT_TYPES = ["run.started", "step.started", "step.finished", "verify.round", "run.finished"]


def setup_django(postgres: str | None) -> str:
    """Configure Django on a fresh var/ folder (returned: removed at the end) and migrate."""
    var = tempfile.mkdtemp(prefix="loopkit-bench-dashboard-")
    os.environ.update(
        {
            "LOOPKIT_HOME": var,
            "DEBUG": "false",
            "SECRET_KEY": "bench-only-secret-key-not-for-production-use-0123456789",
            "ALLOWED_HOSTS": "testserver",
            "LOOPKIT_CHANNEL_LAYER": "memory",
            "LOOPKIT_HUEY_IMMEDIATE": "true",
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "loopkit_web.settings",
        }
    )
    if postgres:
        os.environ["DATABASE_URL"] = postgres
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    # DEBUG off, as in production: pages need the static files' manifest.
    call_command("collectstatic", verbosity=0, interactive=False)
    return var


def fresh_postgres(url: str) -> str:
    """Create (or re-create) the bench database named in *url*; return *url*."""
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return url


def make_world() -> tuple[Any, Any, list[Any], Any, list[Any]]:
    from django.contrib.auth import get_user_model

    from builder.models import Loop, LoopVersion
    from loopkit_web.teams.models import Membership, Team

    user = get_user_model().objects.create_user("bench", password="bench-password-123")
    team = Team.objects.create(name="Bench")
    other = Team.objects.create(name="Other")
    Membership.objects.create(team=team, user=user, role="owner")

    def loops_of(t: Any, n: int) -> list[Any]:
        out = []
        for i in range(n):
            loop = Loop.objects.create(
                team=t,
                name=f"loop-{i}",
                version=1,
                lrs_score=40 + 8 * i,
                lrs_grade="FDCBA"[min(i // 2, 4)],
            )
            budget = f"budget:\n  maxTokens: {20000 + 5000 * i}\n  maxCostUsd: {0.5 + i / 4}\n"
            LoopVersion.objects.create(
                loop=loop, number=1, yaml=f"name: loop-{i}\npipeline:\n  - prompt: Hi\n{budget}"
            )
            out.append(loop)
        return out

    return user, team, loops_of(team, 8), other, loops_of(other, 2)


def seed(
    team: Any, loops: list[Any], user: Any, count: int, events: int, rng: random.Random
) -> None:
    """Add *count* runs (and *events* events each) to *team*, in batches."""
    from django.utils import timezone

    from runs.models import Run, RunEvent, RunModel

    now = timezone.now()
    versions = {loop.pk: loop.versions.get(number=1) for loop in loops}
    statuses = [s for s, weight in STATUSES for _ in range(weight)]
    batch = 5000
    for start in range(0, count, batch):
        runs = []
        for _ in range(min(batch, count - start)):
            loop = rng.choice(loops)
            created = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
            status = rng.choice(statuses)
            if status == "running" and now - created > timedelta(minutes=30):
                status = "failed"  # only recent runs are still running, as in production
            finished = status != "running"
            unknown = rng.random() < 0.05
            models = rng.sample(MODELS, 1 if rng.random() < 0.8 else 2)
            tokens_in, tokens_out = rng.randint(200, 40000), rng.randint(50, 8000)
            runs.append(
                Run(
                    team=team,
                    loop=loop,
                    loop_version=versions[loop.pk],
                    loop_name=loop.name,
                    version_number=1,
                    loop_yaml="",
                    trigger_type=rng.choice(["manual", "cron", "webhook", "event"]),
                    started_by=user if rng.random() < 0.5 else None,
                    started_by_label="bench" if rng.random() < 0.5 else "cron",
                    status=status,
                    created_at=created,
                    started_at=created + timedelta(seconds=1),
                    finished_at=created + timedelta(seconds=rng.uniform(5, 600))
                    if finished
                    else None,
                    tokens_in=tokens_in,
                    tokens_out=tokens_out,
                    cost_usd=None
                    if unknown
                    else Decimal(tokens_in * 3 + tokens_out * 12) / Decimal(10**7),
                    cost_known=not unknown,
                    verification_rounds=rng.choice([0, 1, 1, 2, 3]),
                    final_score=round(rng.random(), 3),
                    models_used=models,
                    last_seq=events,
                )
            )
        Run.objects.bulk_create(runs)
        # What each run spent per model, as the recorder keeps it: a two-model run's
        # tokens split at random between its models, each part priced on its own.
        usage = []
        for run in runs:
            share = rng.uniform(0.1, 0.9) if len(run.models_used) == 2 else 1.0
            part_in = round(run.tokens_in * share)
            part_out = round(run.tokens_out * share)
            parts = [(part_in, part_out), (run.tokens_in - part_in, run.tokens_out - part_out)]
            for model, (t_in, t_out) in zip(run.models_used, parts, strict=False):
                usage.append(
                    RunModel(
                        run=run,
                        team=team,
                        model=model,
                        tokens_in=t_in,
                        tokens_out=t_out,
                        cost_usd=None
                        if run.cost_usd is None
                        else Decimal(t_in * 3 + t_out * 12) / Decimal(10**7),
                        created_at=run.created_at,
                    )
                )
        RunModel.objects.bulk_create(usage, batch_size=5000)
        if events:
            # bulk_create sets pks on both SQLite and PostgreSQL.
            RunEvent.objects.bulk_create(
                [
                    RunEvent(
                        run=run,
                        seq=seq,
                        type=EVENT_TYPES[min(seq - 1, len(EVENT_TYPES) - 1)],
                        payload={"tokens": seq * 10},
                        created_at=run.created_at,
                    )
                    for run in runs
                    for seq in range(1, events + 1)
                ],
                batch_size=5000,
            )


def measure(client: Any, url: str, repeat: int) -> tuple[float, float, int]:
    """Return the median wall and CPU time of *repeat* requests (after a first one) and
    the query count of one; CPU time (this process: the server's work and SQLite's)
    is what a busy shared machine disturbs least."""
    from django.db import connection

    queries = 0

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    response = client.get(url)  # warm: rolls up the hours closed since the last request
    if response.status_code != 200:
        raise SystemExit(f"{url} answered {response.status_code}: {response.content[:300]!r}")
    with connection.execute_wrapper(count):
        client.get(url)
    times, cpu = [], []
    for _ in range(repeat):
        began, began_cpu = time.perf_counter(), time.process_time()
        client.get(url)
        times.append((time.perf_counter() - began) * 1000)
        cpu.append((time.process_time() - began_cpu) * 1000)
    return statistics.median(times), statistics.median(cpu), queries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--events", type=int, default=6, help="events per run")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="a PostgreSQL URL whose database is dropped and created, "
        "e.g. postgresql://postgres@127.0.0.1:5432/loopkit_bench",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    var = setup_django(fresh_postgres(args.postgres) if args.postgres else None)
    from django.db import connection
    from django.test import Client

    from dashboard import rollups

    user, team, loops, other, other_loops = make_world()
    client = Client()
    client.force_login(user)
    rng = random.Random(7)
    results: list[dict[str, Any]] = []
    seeded = 0
    for size in sizes:
        began = time.perf_counter()
        seed(team, loops, user, size - seeded, args.events, rng)
        seed(other, other_loops, None, (size - seeded) // 10, 0, rng)
        seed_s = time.perf_counter() - began
        seeded = size
        # The runs were inserted into the past: roll them up from scratch, as the
        # first dashboard request after an upgrade would (timed on its own).
        rollups.rebuild(team)
        began, began_cpu = time.perf_counter(), time.process_time()
        rollups.advance(team)
        rollup_s, rollup_cpu_s = time.perf_counter() - began, time.process_time() - began_cpu
        if connection.vendor == "postgresql":
            # What autovacuum does after a bulk insert: statistics for the planner and
            # the visibility map that lets COUNT(*) read the index only.
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE")
        for name, url in PAGES:
            ms, cpu_ms, queries = measure(client, url, args.repeat)
            results.append(
                {
                    "runs": size,
                    "page": name,
                    "ms": round(ms, 1),
                    "cpu_ms": round(cpu_ms, 1),
                    "queries": queries,
                    "rollup_from_scratch_ms": round(rollup_s * 1000),
                    "rollup_from_scratch_cpu_ms": round(rollup_cpu_s * 1000),
                }
            )
        if not args.json:
            print(
                f"-- {size:,} runs ({size * args.events:,} events; seeded in {seed_s:.1f} s; "
                f"rolled up from scratch in {rollup_s:.1f} s wall, {rollup_cpu_s:.1f} s CPU)"
            )
            for row in results:
                if row["runs"] == size:
                    flag = "" if row["cpu_ms"] < TARGET_MS else "  OVER TARGET"
                    print(
                        f"   {row['page']:<22} {row['ms']:>8.1f} ms wall {row['cpu_ms']:>7.1f} ms CPU"
                        f"  {row['queries']:>3} queries{flag}"
                    )
    by_page: dict[str, set[int]] = {}
    for row in results:
        by_page.setdefault(row["page"], set()).add(row["queries"])
    summary = {
        "database": connection.vendor,
        "events_per_run": args.events,
        "target_ms": TARGET_MS,
        "results": results,
        "max_ms": max(r["ms"] for r in results),
        "max_cpu_ms": max(r["cpu_ms"] for r in results),
        "load_average": os.getloadavg(),
        "query_counts_constant": all(len(c) == 1 for c in by_page.values()),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"database {summary['database']}: slowest {summary['max_ms']} ms wall, "
            f"{summary['max_cpu_ms']} ms CPU (target {TARGET_MS:.0f}); load average "
            f"{summary['load_average'][0]:.1f}; query counts constant across sizes: "
            f"{summary['query_counts_constant']}"
        )
    connection.close()
    shutil.rmtree(var, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

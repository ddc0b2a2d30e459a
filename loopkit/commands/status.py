"""``loopkit status [LOOP]``: recent runs with status, duration, tokens and cost."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("loop", metavar="LOOP", nargs="?", help="only this loop's runs")
    parser.add_argument("--limit", "-n", type=int, default=20, help="how many runs (default 20)")
    parser.add_argument("--json", action="store_true", help="print the runs as JSON")


def _stores(project: Any, loop_name: str | None) -> list[Any]:
    from loopkit.errors import SpecError
    from loopkit.memory import open_store

    defaults = project.project.defaults
    memories: list[Any] = []
    if loop_name is not None:
        loop = project.load(loop_name)
        memories.append(loop.memory or (defaults.memory if defaults else None))
    else:
        memories.append(defaults.memory if defaults else None)
        for path in project.loop_files():
            try:
                loop = project.load(str(path))
            except SpecError:
                continue
            if loop.memory is not None:
                memories.append(loop.memory)
    seen: set[str] = set()
    stores = []
    for memory in memories:
        if memory is not None and memory.effective_store == "memory":
            continue
        store = open_store(memory, project.root)
        where = str(getattr(store, "root", None) or getattr(store, "path", ""))
        ident = f"{type(store).__name__}:{Path(where).resolve()}"
        if ident in seen:
            store.close()
            continue
        seen.add(ident)
        stores.append(store)
    return stores


def _duration(ms: float) -> str:
    return f"{ms:.0f}ms" if ms < 10_000 else f"{ms / 1000:.1f}s"


def handle(args: argparse.Namespace) -> int:
    from loopkit.errors import SpecError
    from loopkit.project import find_project

    try:
        project = find_project()
        loop_name = project.load(args.loop).name if args.loop else None
        stores = _stores(project, args.loop)
    except SpecError as exc:
        for problem in exc.problems:
            print(str(problem), file=sys.stderr)
        return 2
    runs = []
    for store in stores:
        runs.extend(store.list_runs(loop_name, args.limit))
        store.close()
    runs.sort(key=lambda r: r.started_at, reverse=True)
    runs = runs[: args.limit]
    if args.json:
        print(json.dumps([r.as_dict() for r in runs], indent=2))
        return 0
    if not runs:
        print("No runs yet." + (f" Start one with: loopkit run {args.loop}" if args.loop else ""))
        return 0
    header = f"{'RUN ID':<24} {'LOOP':<20} {'STATUS':<20} {'STARTED':<17} {'DURATION':>9} {'TOKENS':>9} {'COST':>9}"
    print(header)
    for run in runs:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.started_at))
        status = run.status + (" (dry)" if run.dry_run else "")
        cost = "?" if run.cost is None else f"${run.cost:.4f}"
        tokens = run.tokens.get("total", 0) if run.tokens else 0
        print(
            f"{run.id:<24} {run.loop[:20]:<20} {status:<20} {started:<17} "
            f"{_duration(run.duration_ms):>9} {tokens:>9,} {cost:>9}"
        )
    return 0

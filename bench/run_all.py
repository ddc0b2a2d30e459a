"""Run every benchmark in bench/ one after the other and print their figures.

Usage: .venv/bin/python bench/run_all.py [--quick] [NAME ...]

``--quick`` uses small sizes (a smoke run of every script in a few minutes);
without it each script runs with its own defaults, which for the dashboard
means seeding 100,000 runs. Names pick a subset (e.g. ``fanout_verify``).
The drain, in-flight, approvals and WebSocket benches need the PostgreSQL and Redis of docs/deploy.md.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: script → (arguments with defaults, arguments for --quick)
BENCHES: dict[str, tuple[list[str], list[str]]] = {
    "validate_cold": ([], ["--runs", "3"]),
    "serve_cold": ([], ["--runs", "1"]),
    "lrs_score": ([], []),
    "cron_due_times": ([], ["--repeat", "10"]),
    "hostile_yaml": ([], []),
    "runtime_cold": ([], ["--repeat", "3"]),
    "fanout_verify": ([], ["--case", "256", "0", "3", "--repeat", "1"]),
    "validate_api": ([], ["--sizes", "10,100", "--repeat", "20"]),
    "editor_keystroke": ([], ["--keys", "10"]),
    "connectors": ([], ["--calls", "20"]),
    "dashboard": ([], ["--sizes", "1000,10000", "--repeat", "3"]),
    "ws_latency": ([], ["--runs", "1"]),
    "drain": ([], ["--runs", "100"]),
    "starts": ([], ["--sizes", "100"]),
    "drain_io": (["--latency-ms", "1000"], ["--latency-ms", "500", "--runs", "64"]),
    "inflight": ([], ["--quick"]),
    "approvals": ([], ["--quick"]),
    "convergence": ([], ["--runs", "20"]),
    "otel_overhead": ([], ["--runs", "3", "--repeat", "3"]),
    "replay": ([], ["--repeat", "2"]),
}
#: benches that run another's script with other arguments
SCRIPTS = {"drain_io": "drain"}


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    chosen = [a for a in argv if not a.startswith("--")] or list(BENCHES)
    unknown = [name for name in chosen if name not in BENCHES]
    if unknown:
        print(f"unknown bench: {', '.join(unknown)} (known: {', '.join(BENCHES)})", file=sys.stderr)
        return 2
    failed = []
    for name in chosen:
        default_args, quick_args = BENCHES[name]
        args = quick_args if quick else default_args
        print(f"\n=== {name} {' '.join(args)}", flush=True)
        started = time.perf_counter()
        rc = subprocess.call([sys.executable, str(HERE / f"{SCRIPTS.get(name, name)}.py"), *args])
        print(f"=== {name}: exit {rc} in {time.perf_counter() - started:.1f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

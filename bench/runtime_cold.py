"""Cold start of ``loopkit-runtime --dry-run run pr-review`` as a fresh process.

Copies the project's ``loops/pr-review.yaml`` into a temporary project and
runs the console script N times, each a new Python process (so imports,
loop parsing, the dry run, the state writes and the projection are all
paid). The CPU time (user + system) is printed beside the wall time: on a
shared, loaded machine the wall time mostly measures waiting for a core.
Prints one JSON line per configuration: without a model (no
projection pricing) and with ``LOOPKIT_MODEL=gpt-4o-mini`` (token counting
and LiteLLM's price map, read without importing LiteLLM).

    .venv/bin/python bench/runtime_cold.py [--repeat 10]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "loopkit-runtime"


def measure(project: Path, env: dict[str, str], repeat: int) -> tuple[list[float], list[float]]:
    """Return the wall times and the CPU times (user + system) of ``repeat`` cold runs."""
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            [str(SCRIPT), "--dry-run", "run", "pr-review"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
        )
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if done.returncode != 0 or "completed successfully" not in done.stdout:
            raise SystemExit(f"the dry run failed:\n{done.stdout}\n{done.stderr}")
    return walls, cpus


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items() if not k.startswith("LOOPKIT_")}
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        (project / "loops").mkdir()
        shutil.copy(REPO / "loops" / "pr-review.yaml", project / "loops" / "pr-review.yaml")
        for label, env in (
            ("no model", base),
            ("LOOPKIT_MODEL=gpt-4o-mini", {**base, "LOOPKIT_MODEL": "gpt-4o-mini"}),
        ):
            measure(project, env, 1)  # first run: bytecode caches
            walls, cpus = measure(project, env, args.repeat)
            print(
                json.dumps(
                    {
                        "command": "loopkit-runtime --dry-run run pr-review",
                        "config": label,
                        "repeat": args.repeat,
                        "median_s": round(statistics.median(walls), 3),
                        "min_s": round(min(walls), 3),
                        "max_s": round(max(walls), 3),
                        "median_cpu_s": round(statistics.median(cpus), 3),
                        "load_avg_1m": round(os.getloadavg()[0], 2),
                        "target_s": 1.0,
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()

"""Time ``loopkit validate loops/`` as a cold process (a new interpreter each run).

Prints one JSON document: the median, min and max wall time in milliseconds of
N runs of the real console script with bytecode cached (as after a normal
install), the same without a bytecode cache, the median CPU time (user + system, which a
busy shared machine disturbs less than wall time), the same for a bare
``python -c pass`` (the interpreter's own start-up, for reference), the load
average, and whether LiteLLM or Django was imported. Target: median wall time
under 300 ms.

    .venv/bin/python bench/validate_cold.py [--runs N] [PATH ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TARGET_MS = 300.0

PROBE = (
    "import sys\n"
    "from loopkit.cli import main\n"
    "code = main(['validate', *sys.argv[1:]])\n"
    "heavy = sorted(m for m in ('litellm', 'django', 'channels', 'huey') if m in sys.modules)\n"
    "print('HEAVY=' + ','.join(heavy), file=sys.stderr)\n"
    "raise SystemExit(code)\n"
)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _env(bytecode_cache: str | None) -> dict[str, str]:
    """Return the child's environment: with a bytecode cache as an installed LoopKit has, or none.

    These machines set PYTHONDONTWRITEBYTECODE, so every run would compile
    loopkit's modules from source (~150 ms) where a user's install reads
    cached bytecode. The cache goes to a folder of its own (PYTHONPYCACHEPREFIX),
    never into the source tree.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["NO_COLOR"] = "1"
    if bytecode_cache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env["PYTHONPYCACHEPREFIX"] = bytecode_cache
    return env


def _time(
    command: list[str], runs: int, bytecode_cache: str | None, warmup: int = 0
) -> tuple[list[float], list[float], int]:
    """Return wall and CPU (user + system) milliseconds per run, and the last exit code."""
    wall, cpu = [], []
    code = 0
    env = _env(bytecode_cache)
    for _ in range(warmup):
        subprocess.run(command, cwd=ROOT, capture_output=True, env=env, check=False)
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), _cpu()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, env=env, check=False)
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((_cpu() - start_cpu) * 1000)
        code = done.returncode
    return wall, cpu, code


def _summary(wall: list[float], cpu: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(wall), 1),
        "min_ms": round(min(wall), 1),
        "max_ms": round(max(wall), 1),
        "cpu_median_ms": round(statistics.median(cpu), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("paths", nargs="*", default=["loops/"])
    args = parser.parse_args()

    script = str(BIN / "loopkit")
    command = [script, "validate", *args.paths]
    with tempfile.TemporaryDirectory(prefix="loopkit-bench-pycache-") as cache:
        validate, validate_cpu, code = _time(command, args.runs, cache, warmup=2)
        bare, bare_cpu, _ = _time([sys.executable, "-c", "pass"], args.runs, cache, warmup=1)
    source, source_cpu, _ = _time(command, args.runs, None)
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, *args.paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    heavy = [line for line in probe.stderr.splitlines() if line.startswith("HEAVY=")]
    loops = sum(
        len([p for p in Path(ROOT, path).glob("*.y*ml")]) if Path(ROOT, path).is_dir() else 1
        for path in args.paths
    )
    result = {
        "benchmark": "validate_cold",
        "command": f"loopkit validate {' '.join(args.paths)}",
        "loops": loops,
        "runs": args.runs,
        "exit_code": code,
        "validate": _summary(validate, validate_cpu),
        "validate_without_bytecode_cache": _summary(source, source_cpu),
        "python_startup": _summary(bare, bare_cpu),
        "target_ms": TARGET_MS,
        "under_target": statistics.median(validate) < TARGET_MS,
        "heavy_modules_imported": heavy[0].removeprefix("HEAVY=").split(",")
        if heavy and heavy[0] != "HEAVY="
        else [],
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

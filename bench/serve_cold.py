"""Time ``loopkit serve`` from an installed wheel to its first healthy response.

Builds the wheel from this checkout (the browser bundles must be built: ``make
frontend``), installs it with ``[web]`` into a fresh virtual environment in a
temporary folder as a user would (``pip install``, bytecode compiled), then
starts ``loopkit serve`` N times and reports the wall time from starting the
process to the first ``200`` from ``/api/health``:

* **cold**: an empty ``LOOPKIT_HOME`` each time (migrations, the secret key,
  collectstatic and the first admin all happen), the first start after install;
* **warm**: the same ``LOOPKIT_HOME`` again (nothing left to migrate or collect).

Also the time until the "running at" line, the installed size (LoopKit's own
packages, and the whole environment with its dependencies), the install time
and the load average. Target: cold under 5 s. Prints one JSON document.

    .venv/bin/python bench/serve_cold.py [--runs 3] [--wheel dist/loopkit_ai-*.whl]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 5.0
OUR_PACKAGES = ("loopkit", "loopkit_web", "builder", "runs", "dashboard", "providers")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def clean_env(**extra: str) -> dict[str, str]:
    drop = ("PYTHONPATH", "DJANGO_SETTINGS_MODULE", "DEBUG", "DATABASE_URL", "REDIS_URL",
            "LOOPKIT_HOME", "LOOPKIT_VAR_DIR", "PYTHONDONTWRITEBYTECODE")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


def build_wheel(dest: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dest), str(ROOT)],
        check=True, env=clean_env(), capture_output=True,
    )  # fmt: skip
    (wheel,) = dest.glob("loopkit_ai-*.whl")
    return wheel


def install(wheel: Path, venv: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
         f"{wheel}[web]"],
        check=True, env=clean_env(), capture_output=True,
    )  # fmt: skip
    return time.perf_counter() - started


def start_once(venv: Path, home: Path, workdir: Path) -> dict[str, float]:
    """Start `loopkit serve`, wait for /api/health, stop it; return the times in seconds."""
    port = free_port()
    out = (workdir / f"serve-{port}.log").open("w+")
    cpu_before = cpu_of_children()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(venv / "bin" / "loopkit"), "serve", "--port", str(port)],
        env=clean_env(LOOPKIT_HOME=str(home), PATH=f"{venv / 'bin'}:{os.environ['PATH']}"),
        cwd=workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    healthy = announced = None
    try:
        while healthy is None:
            if proc.poll() is not None or time.perf_counter() - started > 120:
                out.seek(0)
                raise SystemExit("loopkit serve did not become healthy:\n" + out.read()[-3000:])
            if announced is None:
                out.seek(0)
                if "LoopKit is running at" in out.read():
                    announced = time.perf_counter() - started
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1) as r:
                    if r.status == 200:
                        healthy = time.perf_counter() - started
            except OSError:
                time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.close()
    return {
        "healthy_s": round(healthy, 3),
        "url_printed_s": round(announced or healthy, 3),
        # The whole tree (serve, Daphne, the worker), start to stop: steadier on a busy machine.
        "cpu_s": round(cpu_of_children() - cpu_before, 3),
    }


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--wheel", type=Path, help="a built wheel (default: build one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="loopkit-serve-bench-") as tmp_name:
        tmp = Path(tmp_name)
        wheel = args.wheel or build_wheel(tmp / "dist")
        venv = tmp / "venv"
        install_s = install(wheel, venv)
        (site,) = (venv / "lib").glob("python3*/site-packages")
        cold = [start_once(venv, tmp / f"home-{i}", tmp) for i in range(args.runs)]
        warm = [start_once(venv, tmp / "home-0", tmp) for _ in range(args.runs)]
        ours = sum(size_of(site / p) for p in OUR_PACKAGES)
        report = {
            "target_cold_s": TARGET_SECONDS,
            "cold_healthy_s": [r["healthy_s"] for r in cold],
            "cold_healthy_median_s": statistics.median(r["healthy_s"] for r in cold),
            "cold_url_printed_median_s": statistics.median(r["url_printed_s"] for r in cold),
            "cold_cpu_median_s": statistics.median(r["cpu_s"] for r in cold),
            "warm_healthy_median_s": statistics.median(r["healthy_s"] for r in warm),
            "warm_cpu_median_s": statistics.median(r["cpu_s"] for r in warm),
            "wheel_bytes": wheel.stat().st_size,
            "installed_loopkit_bytes": ours,
            "installed_environment_bytes": size_of(venv),
            "install_s": round(install_s, 1),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

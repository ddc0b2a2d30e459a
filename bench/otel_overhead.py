"""Tracing's CPU cost per model call: runs untraced vs exported as OpenTelemetry traces.

What: the same runs (a parallel group of ``--agents`` makers and a checker,
``--runs`` runs a sample) executed in this process untraced, traced
(``loopkit.tracing.instrument``: a ``chat`` span per call, the other spans
from the events, the SDK's ``BatchSpanProcessor`` and the OTLP/HTTP exporter
sending to a receiver in another process), and traced with content capture
(``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``), alternately,
``--repeat`` samples each. The figure is this process's CPU time (all its
threads, the exporter's included; a traced sample ends with ``force_flush``,
so every span is serialised and sent inside it) per model call. Two clients:

* ``litellm``: ``LiteLLMProvider`` against the real OpenAI-compatible test
  server (``tests/engine/llm_server.py``) in a child process: a live run's
  engine path, the one the target is about;
* ``scripted``: ``ScriptedLLM`` (no HTTP, no LiteLLM): the engine's own work
  only, the worst case for tracing's share.

Target: traced adds under 5 % to the CPU per call of the ``litellm`` case.

CPU time on a shared, busy machine moves by more than the difference being
measured, so each mode also reports its minimum over the samples (the one
least slowed by other processes). ``--callgrind`` instead runs the bench under
``valgrind --tool=callgrind`` and counts the instructions each sample executes
(all threads; ``callgrind_control`` zeroes and dumps the counters around it):
a figure that does not move with the machine's load, at ~50 times the run
time (the ``litellm`` client's import alone then takes minutes).

    .venv/bin/python bench/otel_overhead.py [--runs 10] [--agents 8] [--repeat 5]
    .venv/bin/python bench/otel_overhead.py --callgrind --client scripted --runs 3 --repeat 2
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from loopkit import tracing, yamlio  # noqa: E402
from loopkit.engine.runner import RunOptions, run_loop  # noqa: E402
from loopkit.llm import LLM, LiteLLMProvider, LLMRequest, LLMResponse, ScriptedLLM  # noqa: E402

LLM_SERVER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from tests.engine.llm_server import LLMServer, Reply, verdict
server = LLMServer().start()
server.when("adversarial verifier", verdict(True, 0.95))
server.default = Reply("A short answer of a few words.")
print(server.url, flush=True)
while True:
    time.sleep(3600)
"""

RECEIVER = """
import sys, time
sys.path.insert(0, sys.argv[1] + "/tests/engine")
from otlp_receiver import OTLPReceiver
receiver = OTLPReceiver().start()
print(receiver.url, flush=True)
while True:
    time.sleep(3600)
"""


def child(code: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(REPO)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def make_loop(agents: int) -> Any:
    makers = [f"Maker {i}" for i in range(agents)]
    return yamlio.loop_from_data(
        {
            "name": "otel-bench",
            "model": "openai/bench-model",
            "pipeline": [
                {"parallel": [{"prompt": f"Write part {m}.", "label": m} for m in makers]}
            ],
            "verify": {"maker": makers, "checker": "Adversarial Verifier"},
        }
    )


def scripted() -> LLM:
    def answer(request: LLMRequest) -> LLMResponse | str:
        if request.role == "checker":
            return json.dumps({"pass": True, "score": 0.95, "issues": []})
        return "A short answer of a few words."

    return ScriptedLLM(answer, record=False)


async def sample(loop: Any, client: str, runs: int, mode: str) -> tuple[float, int]:
    """Return (CPU seconds, model calls) of ``runs`` runs in ``mode``."""
    if mode == "content":
        os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "true"
    else:
        os.environ.pop("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", None)
    started = time.process_time()
    calls = 0
    for _ in range(runs):
        llm: LLM = LiteLLMProvider() if client == "litellm" else scripted()
        sinks: list[Any] = []
        if mode != "off":
            llm, sinks = tracing.instrument(llm, sinks)
        result = await run_loop(loop, llm, sinks=sinks, options=RunOptions(checkpoint=False))
        if result.status != "succeeded":
            raise SystemExit(f"a {mode} run ended {result.status}: {result.error}")
        calls += result.requests
    if mode != "off":
        tracing.flush()
    return time.process_time() - started, calls


def under_callgrind() -> bool:
    """Return whether this process runs under ``valgrind --tool=callgrind``."""
    return os.environ.get("LOOPKIT_BENCH_CALLGRIND_DIR") is not None


def callgrind_control(flag: str) -> None:
    """Zero (``-z``) or dump (``-d``) this process's callgrind counters."""
    subprocess.run(["callgrind_control", flag, str(os.getpid())], check=True, capture_output=True)


def dumped_instructions() -> int:
    """Return the instructions of the dump just asked for (its ``summary:`` line).

    ``callgrind_control -d`` returns once the dump is requested; the file
    appears when valgrind next gets control, so wait for its last line.
    """
    folder = Path(os.environ["LOOPKIT_BENCH_CALLGRIND_DIR"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for dump in folder.glob("callgrind.out.*.*"):  # ``.PID.N``: the numbered dumps
            lines = dump.read_text().splitlines()
            if lines and lines[-1].startswith("totals:"):  # written to the end
                dump.unlink()
                summary = next(line for line in lines if line.startswith("summary:"))
                return int(summary.split()[1])
        time.sleep(0.05)
    raise SystemExit(f"callgrind wrote no dump in {folder}")


async def measure_instructions(loop: Any, client: str, runs: int, repeat: int) -> dict[str, Any]:
    """Instructions per model call by mode, counted by callgrind (load-independent)."""
    modes = ["off", "traced", "content"]
    for mode in modes:  # warm up: imports, first calls, the exporter's connection
        await sample(loop, client, 2, mode)
    callgrind_control("--instr=on")
    per_call: dict[str, list[float]] = {mode: [] for mode in modes}
    for i in range(repeat):
        for mode in modes[i % 3 :] + modes[: i % 3]:
            gc.collect()
            callgrind_control("-z")
            _, calls = await sample(loop, client, runs, mode)
            callgrind_control("-d")
            per_call[mode].append(dumped_instructions() / calls)
    off = min(per_call["off"])
    out: dict[str, Any] = {"client": client, "unit": "instructions", "runs": runs}
    for mode, values in per_call.items():
        # Callgrind's counts repeat to well under 1 %; the minimum drops a sample that
        # happened to include a garbage collection or an idle exporter wake-up.
        low = min(values)
        out[f"{mode}_instr_per_call"] = round(low)
        out[f"{mode}_instr_range"] = [round(low), round(max(values))]
        if mode != "off":
            out[f"{mode}_added_instr_per_call"] = round(low - off)
            out[f"{mode}_overhead_pct"] = round((low - off) / off * 100, 2)
    return out


async def measure(loop: Any, client: str, runs: int, repeat: int) -> dict[str, Any]:
    for mode in ("off", "traced", "content"):  # warm up: imports, first calls, the exporter
        await sample(loop, client, 3, mode)
    modes = ["off", "traced", "content"]
    per_call: dict[str, list[float]] = {mode: [] for mode in modes}
    for i in range(repeat):
        for mode in modes[i % 3 :] + modes[: i % 3]:  # each mode in each position in turn
            gc.collect()
            cpu, calls = await sample(loop, client, runs, mode)
            per_call[mode].append(cpu / calls * 1e6)
    off = statistics.median(per_call["off"])
    makers = len(loop.verify.maker)
    out: dict[str, Any] = {
        "client": client,
        "calls_per_sample": runs * (makers + 1),
        # invoke_workflow, an invoke_agent and a chat per maker, a round, the checker's two.
        "spans_per_call": round((1 + 2 * makers + 3) / (makers + 1), 2),
    }
    off_min = min(per_call["off"])
    for mode, values in per_call.items():
        median = statistics.median(values)
        out[f"{mode}_us_per_call"] = round(median, 1)
        # The samples' spread: a difference inside it is noise, not tracing.
        out[f"{mode}_range_us"] = [round(min(values), 1), round(max(values), 1)]
        if mode != "off":
            out[f"{mode}_added_us_per_call"] = round(median - off, 1)
            out[f"{mode}_overhead_pct"] = round((median - off) / off * 100, 1)
            # Min of N: the sample least slowed by the other processes on the machine.
            out[f"{mode}_min_overhead_pct"] = round((min(values) - off_min) / off_min * 100, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per sample")
    parser.add_argument("--agents", type=int, default=8, help="makers per run")
    parser.add_argument("--repeat", type=int, default=5, help="samples per mode")
    parser.add_argument("--client", choices=["litellm", "scripted", "both"], default="both")
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="count instructions under valgrind's callgrind instead of CPU time "
        "(load-independent; ~50 times slower, use small --runs and --repeat)",
    )
    args = parser.parse_args()
    if args.callgrind and not under_callgrind():
        if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
            raise SystemExit("--callgrind needs valgrind (apt-get install valgrind)")
        with tempfile.TemporaryDirectory() as folder:
            command = [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={folder}/callgrind.out.%p",
                f"--log-file={folder}/valgrind.log",
                "--instr-atstart=no",  # imports run fast; switched on once warm
                sys.executable,
                *sys.argv,
            ]
            env = {**os.environ, "LOOPKIT_BENCH_CALLGRIND_DIR": folder}
            raise SystemExit(subprocess.run(command, env=env).returncode)
    server, server_url = child(LLM_SERVER)
    receiver, receiver_url = child(RECEIVER)
    os.environ["LOOPKIT_API_BASE"] = server_url
    os.environ["LOOPKIT_API_KEY"] = "sk-bench"
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver_url
    os.environ["OTEL_SERVICE_NAME"] = "loopkit-bench"
    loop = make_loop(args.agents)
    clients = ["litellm", "scripted"] if args.client == "both" else [args.client]
    try:
        for client in clients:
            how = measure_instructions if args.callgrind else measure
            figures = asyncio.run(how(loop, client, args.runs, args.repeat))
            figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
            print(json.dumps(figures), flush=True)
    finally:
        tracing.shutdown()
        for proc in (server, receiver):
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()

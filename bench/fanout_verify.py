"""Fan-out and verify: N makers in parallel, then a checker, for R rounds.

The model is the in-process ``ScriptedLLM`` sleeping L seconds per call;
everything else is the real engine: prompt rendering (Jinja2 sandbox), budget
reservations and commits (a token and an iteration limit are set), per-step
checkpoints (``InMemoryStore``) and every event serialised to JSON lines by
``JsonlSink`` writing to /dev/null. The checker fails every round but the
last, so the makers really run R times.

Each case runs in its own process (so peak RSS is the case's own) and prints
one JSON line: median wall time over the repetitions, the floor
``R * 2 * L`` (a maker wave and a checker call per round), the overhead per
agent call ``(wall - floor) / (R * (N + 1))`` and the peak RSS. Beside
them: the process CPU time per agent call (on a loaded shared machine the
wall time mostly measures waiting for a core; CPU time is what an idle
machine's wall overhead would be at L=0), the same workload written as bare
asyncio coroutines for comparison, and the load average.

    .venv/bin/python bench/fanout_verify.py            # every case
    .venv/bin/python bench/fanout_verify.py --case 256 0 3
    .venv/bin/python bench/fanout_verify.py --phases --case 256 0.05 3   # CPU per phase
    .venv/bin/python bench/fanout_verify.py --lower-bound --case 256 0.05 3   # see below

``--lower-bound`` replaces the parallel group's member runner with makers that
only build a request and start their call (no rendering, budget, maker events
or checkpoints; the checker and the rest of the run are the engine's): what
the target would cost if the makers' per-call work were free.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

from loopkit.engine import RunOptions, run_loop
from loopkit.engine.events import Tokens
from loopkit.llm import LLMRequest, LLMResponse, ScriptedLLM
from loopkit.memory import InMemoryStore
from loopkit.sinks import CallbackSink, JsonlSink
from loopkit.yamlio import loop_from_data

CASES = [(n, latency, rounds) for n in (4, 32, 256) for latency in (0.0, 0.05) for rounds in (1, 3)]


def make_loop(n: int, rounds: int) -> object:
    labels = [f"Maker {i}" for i in range(n)]
    return loop_from_data(
        {
            "name": "fanout",
            "model": "bench-model",
            "inputs": {"target": {"required": True}},
            "pipeline": [
                {
                    "parallel": [
                        {
                            "prompt": "Review part {{ loop.name }}/"
                            + label
                            + " of {{ inputs.target }}."
                            "{% if feedback %} Fix: {{ feedback | join(', ') }}{% endif %}",
                            "label": label,
                        }
                        for label in labels
                    ]
                }
            ],
            "verify": {"maker": labels, "checker": "Adversarial Verifier", "maxRounds": rounds},
            "budget": {"maxTokens": 10**9, "maxIterations": 10**6},
        }
    )


async def one_run(n: int, latency: float, rounds: int, loop: object = None) -> tuple[float, float]:
    def answer(request: LLMRequest) -> LLMResponse:
        if request.role == "checker":
            last = request.round >= rounds
            text = json.dumps(
                {
                    "pass": last,
                    "score": 0.9 if last else 0.3,
                    "issues": [] if last else ["more detail"],
                }
            )
        else:
            text = "looks fine"
        return LLMResponse(
            content=text, tokens=Tokens(input=20, output=5), cost=0.0, model=request.model
        )

    llm = ScriptedLLM(answer, latency=latency, record=False)
    loop = loop or make_loop(n, rounds)  # parsed and checked before the clock starts
    with open("/dev/null", "w") as devnull:
        sink = JsonlSink(devnull)
        started, cpu = time.perf_counter(), time.process_time()
        result = await run_loop(
            loop,  # type: ignore[arg-type]
            llm,
            sinks=[sink],
            store=InMemoryStore(),
            options=RunOptions(inputs={"target": "the diff"}, concurrency=n),
        )
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    if result.status != "succeeded" or result.rounds != rounds:
        raise SystemExit(f"unexpected result: {result.status} after {result.rounds} round(s)")
    return wall, cpu


async def plain_asyncio(n: int, latency: float, rounds: int) -> float:
    """The same shape with bare coroutines: the machine's floor for comparison."""

    async def call(text: str) -> str:
        if latency:
            await asyncio.sleep(latency)
        return text.upper()

    started, cpu = time.perf_counter(), time.process_time()
    for round_ in range(rounds):
        outputs = await asyncio.gather(*(call(f"maker {i} round {round_}") for i in range(n)))
        await call(" ".join(outputs))
    return time.perf_counter() - started, time.process_time() - cpu


def run_case(n: int, latency: float, rounds: int, repeat: int) -> dict[str, object]:
    asyncio.run(one_run(n, latency, 1))  # warm up imports and template caches
    loop = make_loop(n, rounds)
    runs = [asyncio.run(one_run(n, latency, rounds, loop)) for _ in range(repeat)]
    wall = statistics.median(w for w, _ in runs)
    cpu = statistics.median(c for _, c in runs)
    floor = rounds * 2 * latency
    calls = rounds * (n + 1)
    plains = [asyncio.run(plain_asyncio(n, latency, rounds)) for _ in range(repeat)]
    plain = statistics.median(w for w, _ in plains)
    plain_cpu = statistics.median(c for _, c in plains)
    return {
        "n": n,
        "latency_s": latency,
        "rounds": rounds,
        "repeat": repeat,
        "median_wall_s": round(wall, 5),
        "floor_s": round(floor, 5),
        "over_floor_pct": round((wall - floor) / floor * 100, 2) if floor else None,
        "overhead_per_call_us": round((wall - floor) / calls * 1e6, 2),
        "cpu_per_call_us": round(cpu / calls * 1e6, 2),
        "plain_asyncio_overhead_per_call_us": round((plain - floor) / calls * 1e6, 2),
        "plain_asyncio_cpu_per_call_us": round(plain_cpu / calls * 1e6, 2),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


async def phases(n: int, latency: float, rounds: int, repeat: int) -> dict[str, object]:
    """Where a run's critical path goes: CPU (``thread_time``) per phase, summed over rounds.

    The model call of each request and the run's events are stamped with the
    thread's CPU time, so other work on the machine does not count. ``prepare``
    is from a maker round's start to its first call; ``start`` from the first
    to the last maker call (a wave's pre-call work: what spreads the calls);
    ``finish`` from the first maker's answer to the group's ``step_finished``
    (idle time between answers excluded); ``verify`` from the group's end to
    the next round's start, which includes what runs while the checker waits
    (the JSON-lines sink writing the round's events), so it is not all on the
    critical path. At L > 0 the wall time over the floor is about
    ``start`` plus a little per round: the calls end as spread out as they
    started.
    """
    stamps: list[tuple[float, str]] = []
    now = time.thread_time

    def answer(request: LLMRequest) -> LLMResponse:
        stamps.append((now(), "answer:" + request.role))
        last = request.round >= rounds
        text = (
            json.dumps({"pass": last, "score": 0.9 if last else 0.3, "issues": ["more detail"]})
            if request.role == "checker"
            else "looks fine"
        )
        return LLMResponse(content=text, tokens=Tokens(input=20, output=5), model=request.model)

    class Calls(ScriptedLLM):
        async def complete(self, request: LLMRequest) -> LLMResponse:
            stamps.append((now(), "call:" + request.role))
            return await super().complete(request)

    class Stamps(CallbackSink):
        def __init__(self) -> None:
            super().__init__(lambda e: stamps.append((now(), f"{e.type}:{getattr(e, 'kind', '')}")))

    loop = make_loop(n, rounds)
    await one_run(n, latency, 1)
    totals: list[dict[str, float]] = []
    for _ in range(repeat):
        stamps.clear()
        with open("/dev/null", "w") as devnull:
            begin = now()
            await run_loop(
                loop,  # type: ignore[arg-type]
                Calls(answer, latency=latency, record=False),
                sinks=[JsonlSink(devnull), Stamps()],
                store=InMemoryStore(),
                options=RunOptions(inputs={"target": "the diff"}, concurrency=n),
            )
            end = now()
        at = {label: [t for t, lab in stamps if lab == label] for _, label in stamps}
        starts = at["step_started:parallel"]
        finished = at["step_finished:parallel"]
        calls, answers = at["call:maker"], at["answer:maker"]
        part = {"prepare": 0.0, "start": 0.0, "finish": 0.0, "verify": 0.0}
        for r in range(rounds):
            wave = calls[r * n : (r + 1) * n]
            part["prepare"] += wave[0] - starts[r]
            part["start"] += wave[-1] - wave[0]
            part["finish"] += finished[r] - answers[r * n]
            part["verify"] += (starts[r + 1] if r + 1 < rounds else end) - finished[r]
        part["run"] = end - begin
        totals.append(part)
    out: dict[str, object] = {"n": n, "latency_s": latency, "rounds": rounds, "repeat": repeat}
    for key in ("prepare", "start", "finish", "verify", "run"):
        out[f"{key}_cpu_ms"] = round(statistics.median(t[key] for t in totals) * 1000, 2)
    out["start_cpu_per_member_us"] = round(
        float(out["start_cpu_ms"]) / (rounds * (n - 1)) * 1000,
        2,  # type: ignore[arg-type]
    )
    out["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return out


async def _bare_members(
    run: Any, members: list[tuple[str, Any]], round_: int, limit: int, gate: Any
) -> list[Any]:
    """``--lower-bound``: a parallel group whose makers only build a request and call.

    Not the engine: no prompt rendering, no budget reservation or commit, no
    maker events, no checkpoints. Each maker's answer is recorded so that the
    checker (the real one) judges it; the rest of the run is the engine's.
    """
    from loopkit.engine.context import StepResult

    event_loop = asyncio.get_running_loop()
    calls = [
        event_loop.create_task(
            run.llm.complete(
                LLMRequest(
                    model="bench-model",
                    messages=[{"role": "user", "content": step.prompt}],
                    step=step.label,
                    role="maker",
                    round=round_,
                )
            )
        )
        for _, step in members
    ]
    results = []
    for (key, step), answer in zip(members, await asyncio.gather(*calls), strict=True):
        result = StepResult(key=key, label=step.label, output=answer.content, round=round_)
        run.ctx.record(result)
        results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--case", nargs=3, metavar=("N", "L", "R"), help="run one case in this process"
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--phases",
        action="store_true",
        help="with --case: print the critical path's CPU per phase instead",
    )
    parser.add_argument(
        "--lower-bound",
        action="store_true",
        help="with --case or --phases: makers that only build a request and call (not the engine)",
    )
    args = parser.parse_args()
    if args.lower_bound:
        from loopkit.engine import pipeline

        pipeline._run_members = _bare_members  # type: ignore[assignment]
    if args.phases:
        n, latency, rounds = (
            (int(args.case[0]), float(args.case[1]), int(args.case[2]))
            if args.case
            else (256, 0.05, 3)
        )
        print(json.dumps(asyncio.run(phases(n, latency, rounds, args.repeat))), flush=True)
        return
    if args.case:
        n, latency, rounds = int(args.case[0]), float(args.case[1]), int(args.case[2])
        print(json.dumps(run_case(n, latency, rounds, args.repeat)), flush=True)
        return
    for n, latency, rounds in CASES:
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--case",
                str(n),
                str(latency),
                str(rounds),
                "--repeat",
                str(args.repeat),
            ],
            check=True,
        )


if __name__ == "__main__":
    main()

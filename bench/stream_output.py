"""Streamed agent output through LiteLLM: first text, events per step, cost of streaming.

One agent step answers a long text from the real OpenAI-compatible test
server (``tests/engine/llm_server.py``), sent as SSE chunks of 8 characters
with a fixed pause between them (a model generating at a steady rate). The
same answer is fetched streamed (a sink that wants deltas) and not streamed
(no such sink), alternately, ``--repeat`` times each. Prints, per mode, the
median wall time of the run, the server's time for the request (its sleeps
and writes: the wall time less this is the client's share), the time from
the step's start to its first ``step_output`` event, the number of ``step_output`` events (the engine
coalesces them to ~one per 100 ms or 200 characters), the run's CPU time in
this process, and whether tokens and cost equal the non-streamed figures.

    .venv/bin/python bench/stream_output.py [--chars 4000] [--pause-ms 2] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "engine"))
sys.path.insert(0, str(REPO))

from llm_server import LLMServer, Reply  # noqa: E402

from loopkit.engine import RunOptions, run_loop  # noqa: E402
from loopkit.llm import LiteLLMProvider, import_litellm  # noqa: E402
from loopkit.sinks import ListSink  # noqa: E402
from loopkit.yamlio import loop_from_data  # noqa: E402

MODEL = "openai/bench-stream-priced"


async def one(server: LLMServer, replies: dict[bool, Reply], streamed: bool) -> dict[str, Any]:
    server.default = replies[streamed]
    loop = loop_from_data(
        {"name": "b", "model": MODEL, "pipeline": [{"prompt": "Write.", "label": "Writer"}]}
    )
    sink = ListSink(deltas=streamed)
    cpu, wall = time.process_time(), time.perf_counter()
    result = await run_loop(
        loop, LiteLLMProvider(api_base=server.url), sinks=[sink], options=RunOptions()
    )
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    started = next(e for e in sink.events if e.type == "step_started")
    deltas = [e for e in sink.events if e.type == "step_output"]
    served = server.requests[-1]
    return {
        "wall_s": wall,
        "server_s": served.finished - served.started,
        "cpu_s": cpu,
        "first_text_s": (deltas[0].at - started.at) if deltas else None,
        "events": len(deltas),
        "tokens": result.tokens.as_dict(),
        "cost": result.cost,
        "status": result.status,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=4000)
    parser.add_argument("--pause-ms", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    import_litellm().register_model(
        {
            MODEL: {
                "input_cost_per_token": 1e-6,
                "output_cost_per_token": 2e-6,
                "cache_read_input_token_cost": 1e-7,
                "output_cost_per_reasoning_token": 3e-6,
                "litellm_provider": "openai",
                "mode": "chat",
            }
        }
    )
    text = "".join(f"word{i:05d} " for i in range(args.chars // 10 + 1))[: args.chars]
    chunks = [text[i : i + 8] for i in range(0, len(text), 8)]
    with LLMServer() as server:
        usage: dict[str, Any] = {
            "prompt_tokens": 1200,
            "cached_tokens": 400,
            "completion_tokens": len(text) // 4,
            "reasoning_tokens": 50,
        }
        # Not streamed, the whole answer comes after the time the chunks take streamed.
        replies = {
            True: Reply(text, chunks=chunks, chunk_delay=args.pause_ms / 1000, **usage),
            False: Reply(text, delay=len(chunks) * args.pause_ms / 1000, **usage),
        }
        await one(server, replies, True)  # warm up LiteLLM's lazy imports
        runs: dict[str, list[dict[str, Any]]] = {"streamed": [], "plain": []}
        for _ in range(args.repeat):
            runs["streamed"].append(await one(server, replies, True))
            runs["plain"].append(await one(server, replies, False))
    plain0 = runs["plain"][0]
    for mode, results in runs.items():
        firsts = [r["first_text_s"] for r in results if r["first_text_s"] is not None]
        print(
            json.dumps(
                {
                    "mode": mode,
                    "chars": len(text),
                    "chunks": len(chunks),
                    "pause_ms": args.pause_ms,
                    "median_wall_s": round(statistics.median(r["wall_s"] for r in results), 3),
                    "median_server_s": round(statistics.median(r["server_s"] for r in results), 3),
                    "median_first_text_s": round(statistics.median(firsts), 3) if firsts else None,
                    "median_step_output_events": statistics.median(r["events"] for r in results),
                    "median_cpu_s": round(statistics.median(r["cpu_s"] for r in results), 3),
                    "same_tokens_and_cost_as_plain": all(
                        r["tokens"] == plain0["tokens"] and r["cost"] == plain0["cost"]
                        for r in results
                    ),
                    "load_avg_1m": round(os.getloadavg()[0], 2),
                }
            )
        )


if __name__ == "__main__":
    asyncio.run(main())

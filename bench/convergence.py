"""Model calls and cost to a verified result, with convergence on and off (issue 18).

A scripted task with a known answer (17 x 23 = 391), run through the engine and
LiteLLM against the real OpenAI-compatible test server
(``tests/engine/llm_server.py``) with a priced model. The scripted maker gets
the answer wrong in its first draft with probability ``--maker-error`` and
right once the checker has told it why. The scripted checker judges the
draft against the known answer but errs at ``--checker-error`` per call: on
a right draft it fails the work, half the time over a new nit (a minor issue,
worded differently each time: the "new minor findings forever" of re-reviews)
and half the time over the same made-up major issue (the same finding coming
back); on a wrong draft it passes it.

Each run is made twice, with the same random draws:

- **on**: the defaults of issue 18 (``blockOn: [blocker, major]``,
  ``stallOnRepeat: true``) with ``onFail: accept-best``;
- **off**: every issue blocks (``blockOn: [blocker, major, minor]``), every
  round is spent (``stallOnRepeat: false``), ``onFail: fail`` (the engine
  before issue 18).

Prints one JSON document: per mode the runs that delivered a result, how many
held the right answer, model calls and cost per run and per right result, and
the saving of "on" against "off".

    .venv/bin/python bench/convergence.py [--runs 100] [--checker-error 0.3]
        [--maker-error 0.5] [--max-rounds 5] [--seed 18]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
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
from loopkit.yamlio import loop_from_data  # noqa: E402

MODEL = "openai/bench-convergence"
#: USD per token (the order of a mid-size hosted model).
IN_PRICE, OUT_PRICE = 2.5e-6, 1e-5
ANSWER = "391"
WRONG = "381"
NITS = [
    "The explanation could show the intermediate product 17 x 20",
    "Consider stating the units (there are none)",
    "The sentence could be shorter",
    "Mention that multiplication is commutative",
    "Add a check by division",
    "Say 'equals' instead of 'is'",
    "Bold the final answer",
    "Open with the answer, then the method",
]
MADE_UP = "The product looks wrong: recompute 17 x 23"


class Scripted:
    """One run's maker and checker (the server's responder)."""

    def __init__(self, rng: random.Random, maker_error: float, checker_error: float) -> None:
        self.rng = rng
        self.checker_error = checker_error
        self.wrong = rng.random() < maker_error
        self.drafts = 0
        self.nits = list(NITS)
        rng.shuffle(self.nits)

    def __call__(self, body: dict[str, Any]) -> Reply:
        system = str(body["messages"][0].get("content") or "")
        if "adversarial verifier" in system.lower():
            return Reply(json.dumps(self.judge(str(body["messages"][1]["content"]))))
        self.drafts += 1
        value = WRONG if self.wrong else ANSWER
        return Reply(f"Draft {self.drafts}: 17 x 23 = 17 x 20 + 17 x 3 = 340 + 51 = {value}.")

    def judge(self, prompt: str) -> dict[str, Any]:
        draft = prompt.split("Output:\n", 1)[1].split("\n", 1)[0]
        right = draft.rstrip(".").endswith(ANSWER)
        errs = self.rng.random() < self.checker_error
        if not right and not errs:
            self.wrong = False  # the maker is told why, and fixes it next time
            return verdict(0.3, [issue(f"17 x 23 is {ANSWER}, not {WRONG}", "major")])
        if not right:  # a false pass
            return {"pass": True, "score": 0.85, "issues": []}
        if not errs:
            return {"pass": True, "score": 0.95, "issues": []}
        if self.rng.random() < 0.5:
            nit = self.nits.pop() if self.nits else "Polish the wording"
            return verdict(0.85, [issue(nit, "minor")])
        return verdict(0.6, [issue(MADE_UP, "major")])


def verdict(score: float, issues: list[dict[str, Any]]) -> dict[str, Any]:
    return {"pass": False, "score": score, "issues": issues}


def issue(text: str, severity: str) -> dict[str, Any]:
    return {"issue": text, "severity": severity}


def make_loop(on: bool, max_rounds: int) -> Any:
    verify: dict[str, Any] = {
        "maker": "Solver",
        "checker": "Adversarial Verifier",
        "maxRounds": max_rounds,
    }
    if on:
        verify.update(onFail="accept-best")
    else:
        verify.update(blockOn=["blocker", "major", "minor"], stallOnRepeat=False, onFail="fail")
    return loop_from_data(
        {
            "name": "arith",
            "description": "Compute 17 x 23 and show the method in one line.",
            "model": MODEL,
            "pipeline": [{"prompt": "Compute 17 x 23; show the method.", "label": "Solver"}],
            "verify": verify,
        }
    )


async def one_mode(server: LLMServer, on: bool, args: argparse.Namespace) -> dict[str, Any]:
    loop = make_loop(on, args.max_rounds)
    llm = LiteLLMProvider(api_base=server.url)
    calls, cost, delivered, right, accepted, stalled, rounds = 0, 0.0, 0, 0, 0, 0, 0
    wall = time.perf_counter()
    for index in range(args.runs):
        # The same draws for both modes: run i of "on" and of "off" meet the same maker
        # and a checker erring from the same sequence.
        server.responder = Scripted(
            random.Random(args.seed * 100_003 + index), args.maker_error, args.checker_error
        )
        result = await run_loop(loop, llm, options=RunOptions())
        calls += result.requests
        cost += result.cost or 0.0
        rounds += result.rounds
        accepted += result.accepted is not None
        stalled += result.verification == "stalled"
        if result.status == "succeeded":
            delivered += 1
            right += result.outputs["Solver"].rstrip(".").endswith(ANSWER)
    return {
        "runs": args.runs,
        "delivered": delivered,
        "right": right,
        "wrong_delivered": delivered - right,
        "accepted_best": accepted,
        "stalled": stalled,
        "rounds_per_run": round(rounds / args.runs, 3),
        "calls": calls,
        "calls_per_run": round(calls / args.runs, 3),
        "cost_usd": round(cost, 6),
        "cost_per_run_usd": round(cost / args.runs, 8),
        "calls_per_right_result": round(calls / right, 3) if right else None,
        "cost_per_right_result_usd": round(cost / right, 8) if right else None,
        "wall_s": round(time.perf_counter() - wall, 2),
    }


def saving(on: float | None, off: float | None) -> float | None:
    if on is None or off is None or not off:
        return None
    return round(100 * (off - on) / off, 1)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--checker-error", type=float, default=0.3)
    parser.add_argument("--maker-error", type=float, default=0.5)
    parser.add_argument("--max-rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args()
    import_litellm().register_model(
        {
            MODEL: {
                "input_cost_per_token": IN_PRICE,
                "output_cost_per_token": OUT_PRICE,
                "cache_read_input_token_cost": IN_PRICE / 10,
                "cache_creation_input_token_cost": IN_PRICE,
                "litellm_provider": "openai",
                "mode": "chat",
            }
        }
    )
    with LLMServer() as server:
        on = await one_mode(server, True, args)
        off = await one_mode(server, False, args)
    print(
        json.dumps(
            {
                "task": "17 x 23 (known answer 391)",
                "checker_error": args.checker_error,
                "maker_error": args.maker_error,
                "max_rounds": args.max_rounds,
                "seed": args.seed,
                "prices_usd_per_token": {"input": IN_PRICE, "output": OUT_PRICE},
                "on": on,
                "off": off,
                "saving_percent": {
                    "calls_per_run": saving(on["calls_per_run"], off["calls_per_run"]),
                    "cost_per_run": saving(on["cost_per_run_usd"], off["cost_per_run_usd"]),
                    "calls_per_right_result": saving(
                        on["calls_per_right_result"], off["calls_per_right_result"]
                    ),
                    "cost_per_right_result": saving(
                        on["cost_per_right_result_usd"], off["cost_per_right_result_usd"]
                    ),
                },
                "load_avg": [round(x, 2) for x in os.getloadavg()],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())

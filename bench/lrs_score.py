"""Time ``lrs.score()`` on loops of 10, 100 and 500 agent steps (in process).

Prints one JSON document with the median time per score in milliseconds, for a
loop whose steps all lack timeouts (so the one-click fix rewrites the whole
pipeline: the worst case) and for a tidy one. Target: about 1 ms for 100 steps.

    .venv/bin/python bench/lrs_score.py
"""

from __future__ import annotations

import json
import statistics
import sys
import time

from loopkit import lrs
from loopkit.yamlio import loop_from_data


def make_loop(steps: int, *, tidy: bool) -> dict[str, object]:
    extra = {"timeout": 60, "retries": 2} if tidy else {}
    groups = [
        {
            "parallel": [
                {
                    "prompt": f"Review part {i}-{j} of {{{{ trigger.payload.pull_request.title }}}}",
                    "label": f"S{i}-{j}",
                    **extra,
                }
                for j in range(10)
            ],
            "label": f"Group {i}",
        }
        for i in range(steps // 10)
    ]
    return {
        "name": f"bench-{steps}",
        "description": "benchmark",
        "trigger": {
            "type": "webhook",
            "event": "pull_request",
            "secretEnv": "S",
            "actions": ["opened"],
        },
        "pipeline": groups,
        "verify": {"maker": ["S0-0", "S0-1"], "checker": "Adversarial Verifier", "maxRounds": 3},
        "budget": {"maxTokens": 1000, "maxCostUsd": 1} if tidy else None,
        "memory": {"store": "filesystem"},
    }


def time_score(steps: int, *, tidy: bool, repeat: int) -> float:
    data = {k: v for k, v in make_loop(steps, tidy=tidy).items() if v is not None}
    loop = loop_from_data(data)
    lrs.score(loop)  # warm
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        lrs.score(loop)
        samples.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(samples), 3)


def main() -> int:
    result: dict[str, object] = {"benchmark": "lrs_score", "unit": "ms per score (median)"}
    for steps, repeat in ((10, 200), (100, 100), (500, 20)):
        result[f"steps_{steps}"] = {
            "tidy": time_score(steps, tidy=True, repeat=repeat),
            "needs_fixes": time_score(steps, tidy=False, repeat=repeat),
        }
    result["litellm_imported"] = "litellm" in sys.modules
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

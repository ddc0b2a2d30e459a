"""Time how long hostile YAML takes to be refused (in process, libyaml parser).

Prints one JSON document: for each case, the refusal time in milliseconds (the
worst of 3 runs) and the first line of the message. Target: every case under
1,000 ms.

    .venv/bin/python bench/hostile_yaml.py
"""

from __future__ import annotations

import json
import time

from loopkit.errors import SpecError
from loopkit.yamlio import MAX_BYTES, load_loop

LAUGHS = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip(["", "a", "b", "c", "d", "e", "f", "g"], "abcdefghi", strict=False)
)

CASES = {
    "alias bomb (9^9)": LAUGHS,
    "flow nesting x100,000": "a: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "block nesting x500": "".join("  " * i + f"k{i}:\n" for i in range(500)),
    "python object tag": "name: !!python/object/apply:os.system ['true']\npipeline: []\n",
    "file just over the size limit": "name: x\npipeline:\n  - prompt: '" + "a" * MAX_BYTES + "'\n",
    "file just under the size limit": "name: x\npipeline:\n  - prompt: '"
    + "a" * (MAX_BYTES - 64)
    + "'\n",
    "60,000 keys": "name: x\n" + "".join(f"k{i}: v\n" for i in range(60_000)),
    "999 steps with templates": "name: x\ninputs:\n  x:\n    default: v\npipeline:\n"
    + "".join(f"  - prompt: step {i} {{{{ inputs.x }}}}\n" for i in range(999)),
    "5,000 steps": "name: x\npipeline:\n" + "".join(f"  - prompt: s{i}\n" for i in range(5000)),
    "20,000 template tags": "name: x\npipeline:\n  - prompt: '" + "{{ a }}" * 20_000 + "'\n",
    "top level list": "- a\n" * 10_000,
}


def main() -> int:
    results = {}
    for name, text in CASES.items():
        worst = 0.0
        outcome = "loaded"
        for _ in range(3):
            start = time.perf_counter()
            try:
                load_loop(text, "x.yaml")
            except SpecError as exc:
                outcome = str(exc.problems[0])[:120]
            worst = max(worst, (time.perf_counter() - start) * 1000)
        results[name] = {"bytes": len(text), "worst_ms": round(worst, 1), "outcome": outcome}
    print(
        json.dumps(
            {
                "benchmark": "hostile_yaml",
                "target_ms": 1000,
                # The target is for refusals; the legal worst cases (a file just under
                # the size limit, 999 templated steps) are shown for comparison.
                "refusals_under_target": all(
                    r["worst_ms"] < 1000 for r in results.values() if r["outcome"] != "loaded"
                ),
                "worst_refusal_ms": max(
                    r["worst_ms"] for r in results.values() if r["outcome"] != "loaded"
                ),
                "worst_legal_load_ms": max(
                    r["worst_ms"] for r in results.values() if r["outcome"] == "loaded"
                ),
                "cases": results,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

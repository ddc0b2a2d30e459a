"""Time the builder's validate+LRS API on loops of 10, 100 and 500 steps.

Starts Django on a throw-away SQLite database (DEBUG off, as in production),
makes a team with an API token, and sends ``POST /api/loops/validate``
``{"yaml": ...}`` through Django's test client (in-process: middleware, token
auth, ninja, YAML parse, schema, cross-reference checks, LRS, JSON; no
network). Each size is warmed up, then timed ``--repeat`` times; the script
prints p50/p95/max of the server time, and the same for the engine work alone
(``builder.services.validate``) so the web overhead is visible.
Target: p95 under 30 ms at 100 steps.

Three modes, all printed: "cold" forgets the engine's memo of checked
templates (``loopkit.templating``) before every request: a loop the server
has never seen; "repeat" sends the same loop again, every prompt's check
remembered (what "cold" measured before it forgot that memo); "editing"
changes one prompt per request, as the editor does while someone types.

The loops are realistic, not padded: a cron trigger, labelled agent steps in
parallel groups of four with a conditional every tenth step, verify with two
makers and a checker, a budget and memory.

    .venv/bin/python bench/validate_api.py [--sizes 10,100,500] [--repeat 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 30.0
TARGET_SIZE = 100


def setup_django() -> None:
    var = tempfile.mkdtemp(prefix="loopkit-bench-validate-")
    os.makedirs(os.path.join(var, "staticfiles"))  # the API needs none; whitenoise wants the folder
    os.environ.update(
        {
            "LOOPKIT_VAR_DIR": var,
            "DEBUG": "false",
            "SECRET_KEY": "bench-only-secret-key-not-for-production-use-0123456789",
            "ALLOWED_HOSTS": "testserver",
            "LOOPKIT_CHANNEL_LAYER": "memory",
            "LOOPKIT_HUEY_IMMEDIATE": "true",
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "loopkit_web.settings",
        }
    )
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def loop_data(steps: int) -> dict[str, Any]:
    """Return a loop of ``steps`` agent steps (parallel groups of 4, a conditional every 10)."""
    pipeline: list[dict[str, Any]] = []
    n = 0

    def agent() -> dict[str, Any]:
        nonlocal n
        n += 1
        return {
            "prompt": f"Step {n}: review part {n} of the {{{{ trigger.payload.due_time }}}} changes and list problems.",
            "label": f"Step {n}",
            "timeout": 120,
            "retries": 2,
        }

    while n < steps:
        left = steps - n
        if n % 10 == 5 and left >= 2:
            pipeline.append(
                {"when": "steps['Step 1'].output != ''", "then": [agent()], "else": [agent()]}
            )
        elif left >= 4:
            pipeline.append({"parallel": [agent() for _ in range(4)], "label": f"Group {n}"})
        else:
            pipeline.append(agent())
    return {
        "name": f"bench-{steps}",
        "description": f"A loop of {steps} steps for the validate benchmark.",
        "trigger": {"type": "cron", "schedule": "0 8 * * 1-5"},
        "pipeline": pipeline,
        "verify": {
            "maker": ["Step 1", "Step 2"],
            "checker": "Adversarial Verifier",
            "maxRounds": 3,
        },
        "budget": {"maxTokens": 500000, "maxDurationMinutes": 30, "maxCostUsd": 5},
        "memory": {"store": "filesystem", "path": ".loopkit/state"},
    }


MODES = ("cold", "repeat", "editing")


def edited(text: str, mode: str, i: int) -> str:
    """Return the loop as a request sends it: as is, or with one prompt typed into (editing)."""
    if mode != "editing":
        return text
    step = 1 + (i * 7) % 10  # a different step of the first ten each time
    return text.replace(f"Step {step}: review", f"Step {step}: review ({i})", 1)


def forget() -> None:
    """Forget every template and condition the engine has checked."""
    from loopkit import references, templating

    templating.check_prompt.cache_clear()
    templating.check_condition.cache_clear()
    references.clear_caches()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def measure(sizes: list[int], repeat: int) -> list[dict[str, Any]]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from builder import services
    from loopkit import yamlio
    from loopkit_web.accounts.models import ApiToken
    from loopkit_web.teams.models import Membership, Team

    user = get_user_model().objects.create_user("bench", password="bench-password-123")
    team = Team.objects.create(name="Bench")
    Membership.objects.create(team=team, user=user, role="editor")
    _, raw = ApiToken.issue(user=user, team=team, name="bench")
    client = Client(headers={"Authorization": f"Bearer {raw}"})

    results = []
    for size in sizes:
        base = loop_data(size)
        text = yamlio.dump(yamlio.loop_from_data(base))
        for _ in range(5):
            response = client.post(
                "/api/loops/validate", {"yaml": text}, content_type="application/json"
            )
        payload = response.json()
        if response.status_code != 200 or not payload["ok"]:
            raise SystemExit(f"validate failed at {size} steps: {payload}")
        for mode in MODES:
            bodies = [json.dumps({"yaml": edited(text, mode, i)}) for i in range(repeat)]
            api_ms, api_cpu_ms, engine_ms = [], [], []
            for body in bodies:
                if mode == "cold":
                    forget()
                start, cpu = time.perf_counter(), time.thread_time()
                client.post("/api/loops/validate", body, content_type="application/json")
                api_ms.append((time.perf_counter() - start) * 1000)
                api_cpu_ms.append((time.thread_time() - cpu) * 1000)
            for body in bodies:
                if mode == "cold":
                    forget()
                yaml_text = json.loads(body)["yaml"]
                start = time.perf_counter()
                services.validate(yaml_text)
                engine_ms.append((time.perf_counter() - start) * 1000)
            results.append(
                {
                    "steps": size,
                    "mode": mode,
                    "yaml_bytes": len(text.encode()),
                    "lrs": f"{payload['lrs']['score']} ({payload['lrs']['grade']})"
                    if payload["lrs"]
                    else None,
                    "api_p50_ms": round(statistics.median(api_ms), 2),
                    "api_p95_ms": round(percentile(api_ms, 95), 2),
                    "api_max_ms": round(max(api_ms), 2),
                    "api_cpu_p50_ms": round(statistics.median(api_cpu_ms), 2),
                    "api_cpu_p95_ms": round(percentile(api_cpu_ms, 95), 2),
                    "engine_p50_ms": round(statistics.median(engine_ms), 2),
                    "engine_p95_ms": round(percentile(engine_ms, 95), 2),
                }
            )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,500")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    setup_django()
    results = measure([int(s) for s in args.sizes.split(",")], args.repeat)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(
            f"POST /api/loops/validate (YAML in, canonical spec + YAML + LRS out), {args.repeat} requests each"
        )
        print(
            f"{'steps':>6} {'mode':>8} {'bytes':>8} {'LRS':>8} {'api p50':>9} {'api p95':>9} {'api max':>9} "
            f"{'cpu p50':>9} {'cpu p95':>9} {'engine p50':>11} {'engine p95':>11}"
        )
        for r in results:
            print(
                f"{r['steps']:>6} {r['mode']:>8} {r['yaml_bytes']:>8} {r['lrs'] or '-':>8} {r['api_p50_ms']:>7.2f}ms "
                f"{r['api_p95_ms']:>7.2f}ms {r['api_max_ms']:>7.2f}ms {r['api_cpu_p50_ms']:>7.2f}ms "
                f"{r['api_cpu_p95_ms']:>7.2f}ms {r['engine_p50_ms']:>9.2f}ms {r['engine_p95_ms']:>9.2f}ms"
            )
    for target in (r for r in results if r["steps"] == TARGET_SIZE):
        verdict = "met" if target["api_p95_ms"] < TARGET_MS else "MISSED"
        print(
            f"target p95 < {TARGET_MS:.0f} ms at {TARGET_SIZE} steps, {target['mode']}: {verdict} "
            f"(wall {target['api_p95_ms']:.2f} ms, CPU {target['api_cpu_p95_ms']:.2f} ms; "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

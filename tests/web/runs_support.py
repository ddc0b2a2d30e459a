"""Helpers shared by the runs tests: loops that run, and ways to watch them."""

from __future__ import annotations

from typing import Any

from loopkit import yamlio


def loop_yaml(
    name: str = "review",
    *,
    trigger: dict[str, Any] | None = None,
    latency_ms: int = 0,
    scores: list[float] | None = None,
    approval: bool = False,
    inputs: dict[str, Any] | None = None,
) -> str:
    """Return a small canonical loop: two parallel makers, a checker, a dry-run latency."""
    pipeline: list[dict[str, Any]] = [
        {
            "parallel": [
                {"prompt": "Review for bugs", "label": "Bug Review"},
                {"prompt": "Review for security", "label": "Security Review"},
            ]
        }
    ]
    if approval:
        pipeline.append({"approve": "Ship it?", "label": "Ship", "approvers": ["admin"]})
    pipeline.append({"prompt": "Summarise the reviews", "label": "Summary"})
    data: dict[str, Any] = {
        "name": name,
        "trigger": trigger or {"type": "manual"},
        "pipeline": pipeline,
        "verify": {"maker": ["Bug Review", "Security Review"], "checker": "Adversarial Verifier"},
        "budget": {"maxTokens": 100000, "maxDurationMinutes": 10},
    }
    if inputs:
        data["inputs"] = inputs
    dry: dict[str, Any] = {}
    if latency_ms:
        dry["latencyMs"] = latency_ms
    if scores:
        dry["checkerScores"] = scores
    if dry:
        data["dryRun"] = dry
    return yamlio.dump(yamlio.loop_from_data(data))


def make_loop(team: Any, yaml: str | None = None, **kwargs: Any) -> Any:
    """Create a loop in *team* through the builder's service (kwargs: see ``loop_yaml``)."""
    from builder.services import create_loop

    loop, _ = create_loop(None, team, yaml or loop_yaml(**kwargs))
    return loop


def event_types(run: Any) -> list[str]:
    return list(run.events.order_by("seq").values_list("type", flat=True))

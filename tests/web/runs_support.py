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


class CollectingQueue(list[int]):
    """A ``runs.lifecycle.Queue`` that only collects the runs it is asked to execute
    (their ids; ``calls`` keeps each with its attempt). Install it with
    ``monkeypatch.setattr(lifecycle, "_queue", CollectingQueue())``."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, int | None]] = []

    def execute(self, run_id: int, attempt: int | None = None, **when: Any) -> None:
        self.append(run_id)
        self.calls.append((run_id, attempt))

    def completed(self, run_id: int) -> None:
        pass

    def notify(self, run_id: int, what: str) -> None:
        pass

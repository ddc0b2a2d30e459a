"""The loops that ship in loops/: valid, canonical, realistic."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopkit import lrs, spec
from loopkit.project import find_project
from loopkit.templating import compile_prompt
from loopkit.yamlio import dump, load_loop

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "loops").glob("*.yaml"))
CONTEXT = find_project(ROOT)


def load(path: Path) -> spec.Loop:
    return load_loop(path.read_text(), str(path), skills=CONTEXT.skills().names())


def test_there_are_the_seeds_two_loops_and_at_least_four_more() -> None:
    names = {path.stem for path in FILES}
    assert {"pr-review", "daily-triage"} <= names
    assert len(names) >= 6


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_each_example_validates_and_round_trips_byte_identical(path: Path) -> None:
    text = path.read_text()
    loop = load(path)
    assert loop.name == path.stem
    assert dump(loop) == text


def test_loops_that_remember_render_what_the_last_run_left() -> None:
    loop = load(ROOT / "loops" / "daily-triage.yaml")
    first = loop.pipeline[0]
    assert isinstance(first, spec.AgentStep)
    context = {"inputs": {"repository": "acme/app"}, "memory": {"Report": "#12 is urgent"}}
    assert "#12 is urgent" in compile_prompt(first.prompt)(context)
    assert "(no previous report)" in compile_prompt(first.prompt)({**context, "memory": {}})


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_each_prompt_renders_with_the_engines_context(path: Path) -> None:
    loop = load(path)
    labels = [s.label for _, s in spec.iter_loop_steps(loop) if getattr(s, "label", None)]
    context = {
        "trigger": {"type": loop.effective_trigger.type, "payload": _Anything()},
        "inputs": {
            name: declared.default if isinstance(declared.default, str) else _Anything()
            for name, declared in loop.inputs.items()
        },
        "steps": {label: {"output": _Anything()} for label in labels},
        "memory": {},
        "loop": {"name": loop.name},
        "round": 1,
        "feedback": "",
        "verification": {"passed": True, "score": 0.9, "issues": [], "rounds": 1},
    }
    for _, step in spec.iter_loop_steps(loop):
        if isinstance(step, spec.AgentStep):
            assert compile_prompt(step.prompt)(context).strip()
        elif isinstance(step, spec.ToolStep):  # its arguments (onPass deliveries)
            for _, source in step.argument_templates():
                assert compile_prompt(source)(context).strip()


def test_pr_review_has_the_seeds_four_reviewers_as_makers() -> None:
    loop = load(ROOT / "loops" / "pr-review.yaml")
    assert loop.verify is not None
    assert loop.verify.maker == [
        "Bug Review",
        "Security Review",
        "Quality Review",
        "Performance Review",
    ]
    assert loop.verify.checker == "Adversarial Verifier"
    assert isinstance(loop.trigger, spec.WebhookTrigger) and loop.trigger.event == "pull_request"


def test_daily_triage_is_the_seeds_cron_loop_without_verify_or_budget_limits() -> None:
    loop = load(ROOT / "loops" / "daily-triage.yaml")
    assert isinstance(loop.trigger, spec.CronTrigger)
    assert loop.verify is None
    assert loop.budget == spec.Budget(max_iterations=1, max_model_calls=20)
    assert lrs.score(loop).grade in ("C", "D", "F")


def test_the_examples_use_every_primitive_between_them() -> None:
    loops = [load(path) for path in FILES]
    steps = [step for loop in loops for _, step in spec.iter_loop_steps(loop)]
    kinds = {type(step) for step in steps}
    assert {
        spec.AgentStep,
        spec.ParallelStep,
        spec.SequentialStep,
        spec.ConditionalStep,
        spec.ApprovalStep,
        spec.ToolStep,
    } <= kinds
    assert any(loop.on_pass for loop in loops)
    triggers = {type(loop.trigger) for loop in loops}
    assert {
        spec.WebhookTrigger,
        spec.CronTrigger,
        spec.EventTrigger,
        spec.ManualTrigger,
    } <= triggers
    assert any(isinstance(lp.trigger, spec.CronTrigger) and lp.trigger.timezone for lp in loops)
    assert any(loop.subagents for loop in loops)
    assert {type(c).__name__ for loop in loops for c in loop.connectors.values()} == {
        "HttpConnector",
        "McpConnector",
        "SqlConnector",
    }


class _Anything(dict):  # type: ignore[type-arg]
    """A payload stand-in: every attribute, key and slice is another stand-in, and text."""

    def __getattr__(self, name: str) -> _Anything:
        return _Anything()

    def __getitem__(self, key: object) -> _Anything:
        return _Anything()

    def __str__(self) -> str:
        return "value"

    def __bool__(self) -> bool:
        return True


def test_each_example_is_valid_against_the_json_schema() -> None:
    import jsonschema
    import yaml

    validator = jsonschema.Draft202012Validator(spec.json_schema())
    for path in FILES:
        errors = [
            error.message for error in validator.iter_errors(yaml.safe_load(path.read_text()))
        ]
        assert errors == [], path


def test_the_json_schema_refuses_what_the_loader_refuses() -> None:
    import jsonschema
    import yaml

    validator = jsonschema.Draft202012Validator(spec.json_schema())
    for name in ("unknown-key", "wrong-type", "missing-checker"):
        data = yaml.safe_load((ROOT / "tests" / "engine" / "broken" / f"{name}.yaml").read_text())
        assert not validator.is_valid(data), name


def test_the_reference_docs_opening_example_is_a_valid_loop() -> None:
    import re

    text = (ROOT / "docs" / "loop-yaml.md").read_text()
    first = re.findall(r"```yaml\n(.*?)```", text, re.S)[0]
    assert load_loop(first, "docs/loop-yaml.md").name == "pr-review"

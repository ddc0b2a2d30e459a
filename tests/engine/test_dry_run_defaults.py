"""A dry run needs no arguments: typed input placeholders and a sample trigger payload."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from loopkit import spec
from loopkit.engine import RunOptions, run_loop
from loopkit.engine.context import placeholder_input, resolve_inputs
from loopkit.engine.payloads import Placeholder, sample_payload
from loopkit.errors import RunError, SpecError
from loopkit.llm import DryRunProvider
from loopkit.memory import InMemoryStore
from loopkit.webhooks import sample_payload as github_sample
from loopkit.yamlio import dump, load_loop, loop_from_data


def make_loop(**data: Any) -> spec.Loop:
    data.setdefault("name", "t")
    return loop_from_data(data)


async def dry_run_prompt(loop: spec.Loop, payload: Any = None) -> str:
    """Dry-run ``loop`` with no inputs; return the prompt its first step was sent."""
    llm = DryRunProvider()
    result = await run_loop(loop, llm, store=InMemoryStore(), options=RunOptions(payload=payload))
    assert (result.status, result.error) == ("succeeded", None)
    content: str = llm.requests[0].messages[-1]["content"]
    return content


def test_a_placeholder_input_has_the_declared_type() -> None:
    def declared(**data: Any) -> spec.InputSpec:
        return spec.InputSpec.model_validate(data)

    assert placeholder_input("diff", declared()) == "<inputs.diff>"
    assert placeholder_input("diff", declared(type="string")) == "<inputs.diff>"
    assert placeholder_input("limit", declared(type="number")) == 0
    assert placeholder_input("limit", declared(type="integer")) == 0
    assert placeholder_input("strict", declared(type="boolean")) is False


def test_a_dry_run_fills_required_inputs_a_live_run_still_requires_them() -> None:
    loop = make_loop(
        inputs={
            "diff": {"required": True},
            "limit": {"type": "integer"},
            "branch": {"default": "main"},
        },
        pipeline=[{"prompt": "Hi"}],
    )
    assert resolve_inputs(loop, {"limit": 3}, dry_run=True) == {
        "limit": 3,
        "diff": "<inputs.diff>",
        "branch": "main",
    }
    # An optional input without a default stays absent, as in a live run.
    assert resolve_inputs(loop, {}, dry_run=True) == {"diff": "<inputs.diff>", "branch": "main"}
    with pytest.raises(RunError) as raised:
        resolve_inputs(loop, {})
    assert raised.value.message == (
        "missing required input(s): diff (pass them as --input diff=VALUE)"
    )
    assert resolve_inputs(loop, {"diff": "x"}) == {"diff": "x", "branch": "main"}


async def test_a_dry_run_renders_typed_placeholders_into_the_prompt() -> None:
    loop = make_loop(
        inputs={"diff": {"required": True}, "count": {"type": "number", "required": True}},
        pipeline=[
            {
                "prompt": "Review {{ inputs.diff }} ({{ inputs.count + 1 }} files)",
                "label": "Review",
            }
        ],
    )
    assert await dry_run_prompt(loop) == "Review <inputs.diff> (1 files)"


async def test_a_dry_run_of_a_webhook_loop_reads_githubs_sample_delivery() -> None:
    loop = make_loop(
        trigger={"type": "webhook", "event": "pull_request", "actions": ["closed"]},
        pipeline=[
            {
                "prompt": "PR #{{ trigger.payload.pull_request.number }} was "
                "{{ trigger.payload.action }}: {{ trigger.payload.pull_request.title }}"
            }
        ],
    )
    sample = github_sample("pull_request", "closed")
    assert sample is not None
    pull = sample["pull_request"]
    assert await dry_run_prompt(loop) == f"PR #{pull['number']} was closed: {pull['title']}"
    assert (
        await dry_run_prompt(
            loop, {"action": "closed", "pull_request": {"number": 7, "title": "T"}}
        )
        == "PR #7 was closed: T"
    )


def test_a_cron_sample_is_the_tick_of_the_latest_due_time() -> None:
    trigger = spec.CronTrigger(type="cron", schedule="0 9 * * 1-5", timezone="Europe/Berlin")
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)  # a Saturday
    assert sample_payload(trigger, now) == {
        "schedule": "0 9 * * 1-5",
        "timezone": "Europe/Berlin",
        "due_time": "2026-12-04T08:00:00+00:00",
    }


async def test_event_samples_have_the_shape_the_web_app_sends() -> None:
    completion = make_loop(
        trigger={"type": "event", "loop": "nightly", "status": ["failed"]},
        pipeline=[
            {
                "prompt": "{{ trigger.payload.loop }} {{ trigger.payload.status }} "
                "run {{ trigger.payload.run_id }} depth {{ trigger.payload.depth }}"
            }
        ],
    )
    assert await dry_run_prompt(completion) == (
        "nightly failed run <trigger.payload.run_id> depth 1"
    )
    custom = make_loop(
        trigger={"type": "event", "event": "release.tagged"},
        pipeline=[{"prompt": "{{ trigger.payload.event }}: {{ trigger.payload.data.version }}"}],
    )
    assert await dry_run_prompt(custom) == "release.tagged: <trigger.payload.data.version>"


async def test_a_manual_or_unknown_trigger_reads_placeholders() -> None:
    assert isinstance(sample_payload(None), Placeholder)
    unknown = spec.WebhookTrigger(type="webhook", event="not_a_github_event")
    assert str(sample_payload(unknown)) == "<trigger.payload>"
    loop = make_loop(
        pipeline=[
            {
                "prompt": "Ticket {{ trigger.payload.ticket.id }}"
                "{% if trigger.payload.ticket %} (given){% endif %}"
                "{% for tag in trigger.payload.tags %} #{{ tag }}{% endfor %}"
            }
        ]
    )
    assert await dry_run_prompt(loop) == "Ticket <trigger.payload.ticket.id> (given)"


def test_an_input_default_must_have_the_declared_type() -> None:
    text = "name: x\ninputs:\n  limit:\n    type: integer\n    default: many\npipeline:\n  - prompt: Hi\n"
    with pytest.raises(SpecError) as raised:
        load_loop(text, "x.yaml")
    assert [str(p) for p in raised.value.problems] == [
        "x.yaml:4:5: the default 'many' is not of the input's type 'integer' (inputs.limit)"
    ]
    flag = (
        "name: x\ninputs:\n  n:\n    type: number\n    default: true\npipeline:\n  - prompt: Hi\n"
    )
    with pytest.raises(SpecError) as raised:
        load_loop(flag, "x.yaml")
    assert raised.value.problems[0].message == (
        "the default True is not of the input's type 'number'"
    )
    typed = text.replace("many", "5")
    assert load_loop(typed).inputs["limit"].default == 5
    assert dump(load_loop(typed)) == typed


async def test_a_dry_run_reads_what_the_events_sample_lacks_as_placeholders() -> None:
    # Both read paths GitHub's schema has for the event, but not its one example:
    # the push example has no commits; a pull_request 'opened' delivery has no label
    # and a null merged_by.
    push = make_loop(
        trigger={"type": "webhook", "event": "push"},
        pipeline=[{"prompt": "Head: {{ trigger.payload.commits[0].id }}"}],
    )
    assert await dry_run_prompt(push) == "Head: <trigger.payload.commits[0].id>"
    opened = make_loop(
        trigger={"type": "webhook", "event": "pull_request", "actions": ["opened"]},
        pipeline=[
            {
                "prompt": "Label {{ trigger.payload.label.name }}, merged by "
                "{{ trigger.payload.pull_request.merged_by.login }}, "
                "#{{ trigger.payload.pull_request.number }}"
            }
        ],
    )
    number = github_sample("pull_request", "opened")["pull_request"]["number"]  # type: ignore[index]
    assert await dry_run_prompt(opened) == (
        "Label <trigger.payload.label.name>, merged by "
        f"<trigger.payload.pull_request.merged_by.login>, #{number}"
    )

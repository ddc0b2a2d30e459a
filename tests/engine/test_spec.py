"""The loop standard: the seed's YAML, the first release's forms, versions, cross-references."""

from __future__ import annotations

import json

import pytest

from loopkit import spec
from loopkit.errors import SpecError
from loopkit.yamlio import dump, load_loop, load_project, loop_from_data, to_data

# The seed's pr-review, exactly as written (its flattened indentation restored).
SEED_PR_REVIEW = """\
# loops/pr-review.yaml
name: pr-review
trigger:
  type: webhook
  event: pull_request
pipeline:
  - parallel:
      - prompt: "Review for correctness bugs"
        label: Bug Review
      - prompt: "Review for security vulnerabilities"
        label: Security Review
      - prompt: "Review for code quality"
        label: Quality Review
verify:
  maker: [Bug Review, Security Review, Quality Review]
  checker: Adversarial Verifier
  maxRounds: 3
  autoRetry: true
budget:
  maxTokens: 500000
  maxDurationMinutes: 30
memory:
  store: filesystem
  path: .loopkit/state
"""


def problems(text: str, **kwargs: object) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_loop(text, "x.yaml", **kwargs)  # type: ignore[arg-type]
    return [str(p) for p in caught.value.problems]


def test_the_seed_pr_review_loads_as_written() -> None:
    loop = load_loop(SEED_PR_REVIEW, "loops/pr-review.yaml")
    assert loop.name == "pr-review"
    assert loop.trigger == spec.WebhookTrigger(type="webhook", event="pull_request")
    group = loop.pipeline[0]
    assert isinstance(group, spec.ParallelStep)
    assert [s.label for s in group.parallel] == ["Bug Review", "Security Review", "Quality Review"]
    assert group.parallel[0].prompt == "Review for correctness bugs"  # type: ignore[union-attr]
    assert loop.verify == spec.Verify(
        maker=["Bug Review", "Security Review", "Quality Review"],
        checker="Adversarial Verifier",
        max_rounds=3,
        auto_retry=True,
    )
    assert loop.budget == spec.Budget(max_tokens=500000, max_duration_minutes=30)
    assert loop.memory == spec.Memory(store="filesystem", path=".loopkit/state")


def test_it_keeps_what_the_author_did_not_say_unsaid() -> None:
    loop = load_loop(SEED_PR_REVIEW)
    assert to_data(loop)["budget"] == {"maxTokens": 500000, "maxDurationMinutes": 30}
    assert loop.verify is not None and loop.verify.pass_score is None
    assert loop.verify.effective_pass_score == spec.DEFAULT_PASS_SCORE


FIRST_RELEASE_LOOP = """\
name: nightly
tags: [ops, nightly]
trigger:
  type: cron
  cron: "0 2 * * *"
pipeline:
  - agents:
      - prompt: Gather the day's incidents
        label: Gather
        skill: incident-reading
      - prompt: Summarise them
        label: Summary
verify:
  maker: Summary
  checker: [Adversarial Verifier]
memory:
  persistence: full
skills: [incident-reading]
"""


def test_a_first_release_loop_loads_in_todays_form() -> None:
    loop = load_loop(FIRST_RELEASE_LOOP, "nightly.yaml")
    assert loop.tags == ["ops", "nightly"]
    assert loop.trigger == spec.CronTrigger(type="cron", schedule="0 2 * * *")
    group = loop.pipeline[0]
    assert isinstance(group, spec.SequentialStep)
    assert isinstance(group.sequential[0], spec.AgentStep)
    assert group.sequential[0].skills == ["incident-reading"]
    assert loop.verify is not None
    assert loop.verify.maker == ["Summary"]
    assert loop.verify.checker == "Adversarial Verifier"
    assert loop.memory == spec.Memory(persistence="full")


def test_dump_writes_the_first_release_loop_in_canonical_form() -> None:
    text = dump(load_loop(FIRST_RELEASE_LOOP))
    assert "schedule: 0 2 * * *" in text
    assert "sequential:" in text and "agents:" not in text
    assert "skills:\n          - incident-reading" in text and "skill:" not in text
    assert load_loop(text) == load_loop(FIRST_RELEASE_LOOP)


@pytest.mark.parametrize(
    "event", ["pull_request", "push", "issues", "release", "workflow_dispatch"]
)
def test_it_accepts_the_first_release_webhook_events(event: str) -> None:
    loop = load_loop(
        f"name: x\ntrigger:\n  type: webhook\n  event: {event}\npipeline:\n  - prompt: a\n"
    )
    assert isinstance(loop.trigger, spec.WebhookTrigger)
    assert loop.trigger.event == event


def test_a_checker_may_be_a_list_and_a_maker_a_string() -> None:
    loop = load_loop(
        "name: x\npipeline:\n  - prompt: a\n    label: A\n"
        "subagents:\n  judge:\n    role: verifier\n"
        "verify:\n  maker: A\n  checker: [Adversarial Verifier, judge]\n"
    )
    assert loop.verify is not None
    assert loop.verify.maker == ["A"]
    assert loop.verify.checkers == ["Adversarial Verifier", "judge"]


def test_a_first_release_project_file_loads_with_its_inline_loops() -> None:
    project = load_project(
        """\
version: "1"
settings:
  defaultBudget:
    maxTokens: 100000
  defaultMemory:
    store: filesystem
    persistence: summary
  enforceMakerChecker: true
loops:
  triage:
    trigger:
      type: cron
      cron: "0 9 * * 1-5"
    pipeline:
      - prompt: Triage
""",
        "loopkit.yaml",
    )
    assert project.version == spec.SPEC_VERSION
    assert project.defaults == spec.ProjectDefaults(
        budget=spec.Budget(max_tokens=100000),
        memory=spec.Memory(store="filesystem", persistence="summary"),
        enforce_maker_checker=True,
    )
    loop = project.loops["triage"]
    assert loop.name == "triage"
    assert loop.trigger == spec.CronTrigger(type="cron", schedule="0 9 * * 1-5")


def test_it_migrates_an_older_schema_version_on_load() -> None:
    loop = load_loop("version: 1\nname: x\npipeline:\n  - prompt: a\n")
    assert loop.version == spec.SPEC_VERSION


def test_it_refuses_a_loop_from_a_newer_version_and_says_so() -> None:
    assert problems(f"version: {spec.SPEC_VERSION + 1}\nname: x\npipeline:\n  - prompt: a\n") == [
        f"x.yaml:1:10: this loop is schema version {spec.SPEC_VERSION + 1}, but this LoopKit "
        f"understands versions up to {spec.SPEC_VERSION} (version) "
        "Hint: upgrade LoopKit (pip install -U loopkit) to load it"
    ]


def test_it_refuses_a_project_file_from_a_newer_version() -> None:
    with pytest.raises(SpecError) as caught:
        load_project("version: 99\n", "loopkit.yaml")
    assert caught.value.problems[0].code == "version_too_new"
    assert "schema version 99" in caught.value.problems[0].message


def test_every_trigger_kind_loads() -> None:
    base = "name: x\npipeline:\n  - prompt: a\ntrigger:\n"
    manual = load_loop(base + "  type: manual\n")
    cron = load_loop(base + "  type: cron\n  schedule: 0 9 * * 1-5\n  timezone: Europe/Paris\n")
    hook = load_loop(
        base + "  type: webhook\n  event: pull_request\n  actions: [opened]\n  secretEnv: SECRET\n"
    )
    after = load_loop(base + "  type: event\n  loop: pr-review\n  status: [succeeded]\n")
    named = load_loop(base + "  type: event\n  event: release.tagged\n")
    assert isinstance(manual.trigger, spec.ManualTrigger)
    assert cron.trigger == spec.CronTrigger(
        type="cron", schedule="0 9 * * 1-5", timezone="Europe/Paris"
    )
    assert hook.trigger == spec.WebhookTrigger(
        type="webhook", event="pull_request", actions=["opened"], secret_env="SECRET"
    )
    assert after.trigger == spec.EventTrigger(type="event", loop="pr-review", status=["succeeded"])
    assert named.trigger == spec.EventTrigger(type="event", event="release.tagged")


def test_an_event_trigger_needs_exactly_one_source() -> None:
    assert problems("name: x\ntrigger:\n  type: event\npipeline:\n  - prompt: a\n") == [
        "x.yaml:3:3: an event trigger needs exactly one of 'loop' or 'event' (trigger)"
    ]


def test_an_unknown_time_zone_is_an_error() -> None:
    text = "name: x\ntrigger:\n  type: cron\n  schedule: 0 9 * * *\n  timezone: Mars/Olympus\npipeline:\n  - prompt: a\n"
    assert problems(text) == [
        "x.yaml:5:13: unknown time zone 'Mars/Olympus' (use an IANA name such as "
        "'Europe/Paris' or 'UTC') (trigger.timezone)"
    ]


def test_every_step_kind_loads() -> None:
    loop = load_loop(
        """\
name: x
pipeline:
  - prompt: Classify
    label: Classify
    output:
      schema:
        type: object
    timeout: 30
    retries: 2
  - when: steps['Classify'].output.kind == 'bug'
    then:
      - approve: Escalate this bug?
        approvers: [owner]
        timeoutMinutes: 60
        onTimeout: reject
    else:
      - sequential:
          - prompt: Answer
            label: Answer
  - parallel:
      - prompt: a
      - prompt: b
    maxConcurrency: 1
"""
    )
    kinds = [type(step).__name__ for _, step in spec.iter_steps(loop.pipeline)]
    assert kinds == [
        "AgentStep",
        "ConditionalStep",
        "ApprovalStep",
        "SequentialStep",
        "AgentStep",
        "ParallelStep",
        "AgentStep",
        "AgentStep",
    ]


def test_a_maker_must_name_a_step() -> None:
    text = "name: x\npipeline:\n  - prompt: a\n    label: Bug Review\nverify:\n  maker: [Bug Reveiw]\n  checker: Adversarial Verifier\n"
    assert problems(text) == [
        "x.yaml:6:11: maker 'Bug Reveiw' is not the label of any step (verify.maker[0]) "
        "Hint: did you mean 'Bug Review'?"
    ]


def test_the_checker_cannot_be_a_maker() -> None:
    text = "name: x\npipeline:\n  - prompt: a\n    label: A\nverify:\n  maker: [A]\n  checker: A\n"
    assert problems(text) == [
        "x.yaml:7:12: the checker 'A' is also a maker: a loop cannot check its own work "
        "(verify.checker) Hint: use a separate verifier subagent or the built-in 'Adversarial Verifier'"
    ]


def test_a_checker_that_is_no_subagent_is_the_built_in_verifier_under_that_name() -> None:
    text = (
        "name: x\npipeline:\n  - prompt: a\n    label: A\nverify:\n  maker: [A]\n"
        "  checker: Triage Verifier\n"
    )
    loop = load_loop(text, "x.yaml")
    assert loop.verify is not None and loop.verify.checkers == ["Triage Verifier"]


def test_undefined_connectors_and_subagents_are_errors_reported_together() -> None:
    text = "name: x\npipeline:\n  - prompt: a\n    subagent: planner\n    connectors: [github]\n"
    assert [p.split(" Hint")[0] for p in problems(text)] == [
        "x.yaml:4:15: subagent 'planner' is not defined (pipeline[0].subagent)",
        "x.yaml:5:18: connector 'github' is not defined (pipeline[0].connectors[0])",
    ]


def test_project_connectors_and_subagents_satisfy_a_loop() -> None:
    project = load_project(
        "connectors:\n  github:\n    type: http\n    baseUrl: https://api.github.com\n"
        "subagents:\n  judge:\n    role: verifier\n"
    )
    loop = load_loop(
        "name: x\npipeline:\n  - prompt: a\n    label: A\n    connectors: [github]\n"
        "verify:\n  maker: [A]\n  checker: judge\n",
        project=project,
    )
    assert loop.verify is not None and loop.verify.checker == "judge"


def test_a_prompt_that_is_not_a_valid_template_is_an_error() -> None:
    assert problems("name: x\npipeline:\n  - prompt: 'Review {{ diff'\n") == [
        "x.yaml:3:13: the prompt is not a valid template: unexpected end of template, expected "
        "'end of print statement'. (template line 1) (pipeline[0].prompt) Hint: prompts are "
        "Jinja2 templates: write {{ '{{' }} for a literal '{{'"
    ]


def test_a_when_with_an_unknown_filter_is_an_error() -> None:
    text = "name: x\npipeline:\n  - when: steps | lenght > 0\n    then:\n      - prompt: a\n"
    assert [p.split(" Hint")[0] for p in problems(text)] == [
        "x.yaml:3:11: 'when' is not a valid expression: No filter named 'lenght'. (pipeline[0].when)"
    ]


def test_loop_data_from_the_editor_validates_without_positions() -> None:
    with pytest.raises(SpecError) as caught:
        loop_from_data({"name": "x", "pipeline": [{"prompt": "a", "lable": "A"}]})
    problem = caught.value.problems[0]
    assert (problem.message, problem.path, problem.line, problem.hint) == (
        "unknown key 'lable'",
        "pipeline[0].lable",
        None,
        "did you mean 'label'?",
    )


def test_the_json_schema_describes_the_camel_case_keys() -> None:
    schema = spec.json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {"name", "trigger", "pipeline", "verify", "budget", "memory"} <= set(
        schema["properties"]
    )
    assert set(schema["$defs"]["Budget"]["properties"]) == {
        "maxTokens",
        "maxDurationMinutes",
        "maxCostUsd",
        "maxIterations",
        "maxModelCalls",
    }
    assert schema["$defs"]["Budget"]["additionalProperties"] is False
    json.dumps(schema)  # serialisable as is


def test_an_error_in_a_first_release_project_file_points_at_what_was_written() -> None:
    with pytest.raises(SpecError) as caught:
        load_project(
            'version: "1"\nsettings:\n  defaultBudget:\n    maxTokenz: 5\n', "loopkit.yaml"
        )
    assert [str(p) for p in caught.value.problems] == [
        "loopkit.yaml:4:5: unknown key 'maxTokenz' (defaults.budget.maxTokenz) "
        "Hint: did you mean 'maxTokens'?"
    ]


def test_an_error_in_a_first_release_cron_points_at_the_cron_key() -> None:
    assert problems(
        "name: x\ntrigger:\n  type: cron\n  cron: '61 * * * *'\npipeline:\n  - prompt: a\n"
    ) == [
        "x.yaml:4:9: '61 * * * *' is not a valid cron expression: minute 61 is out of range "
        "(0-59) (trigger.schedule)"
    ]

"""Static checking of what templates read (loopkit.references, loopkit.template_context)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loopkit.errors import Problem, SpecError
from loopkit.references import prompt_refs
from loopkit.template_context import check_templates
from loopkit.yamlio import load_loop, load_loop_file, loop_from_data

ROOT = Path(__file__).resolve().parents[2]


def found(**data: Any) -> list[tuple[str, str, str | None]]:
    """Return (path, message, hint) of each reference problem of a loop made of ``data``."""
    data.setdefault("name", "t")
    loop = loop_from_data(data, check=False)
    return [(p.path, p.message, p.hint) for p in check_templates(loop)]


def prompt(text: str, **data: Any) -> list[tuple[str, str, str | None]]:
    """The problems of a loop whose only step has this prompt."""
    return found(pipeline=[{"prompt": text, "label": "Only"}], **data)


def agent(label: str, text: str = "Do it.", **more: Any) -> dict[str, Any]:
    return {"prompt": text, "label": label, **more}


# ── Names ────────────────────────────────────────────────────────────────


def test_an_unknown_name_is_an_error_with_the_closest_context_name() -> None:
    assert prompt("{{ inptus.x }}") == [
        (
            "pipeline[0].prompt",
            "inptus: there is no 'inptus' in the template context",
            "did you mean 'inputs'?",
        )
    ]


def test_an_unknown_name_far_from_any_says_what_templates_read() -> None:
    assert prompt("{{ zzz }}") == [
        (
            "pipeline[0].prompt",
            "zzz: there is no 'zzz' in the template context",
            "templates read inputs, steps, memory, trigger, loop, run, round and feedback",
        )
    ]


def test_round_feedback_loop_run_and_jinja_globals_are_known_everywhere() -> None:
    text = (
        "{{ round }} {{ feedback }} {{ loop.name }} {{ loop.description }} {{ run.id }} "
        "{{ run.round }} {{ range(3) | list }} {{ dict(a=1) }} {{ namespace(x=1).x }}"
    )
    assert prompt(text) == []


def test_a_misspelt_field_of_loop_run_or_trigger_is_an_error() -> None:
    assert prompt("{{ loop.nam }} {{ run.rond }} {{ trigger.payloda }}") == [
        (
            "pipeline[0].prompt",
            "loop.nam: loop has no 'nam' (it holds name, description)",
            "did you mean 'name'?",
        ),
        (
            "pipeline[0].prompt",
            "run.rond: run has no 'rond' (it holds id, round)",
            "did you mean 'round'?",
        ),
        (
            "pipeline[0].prompt",
            "trigger.payloda: trigger has no 'payloda' (it holds type, event, payload)",
            "did you mean 'payload'?",
        ),
    ]


def test_the_templates_own_variables_are_not_context_references() -> None:
    text = (
        "{% set x = 1 %}{{ x }}"
        "{% for item in range(2) %}{{ item }} {{ loop.index }} {{ loop.last }}{% endfor %}"
        "{% macro m(a) %}{{ a }} {{ varargs }}{% endmacro %}{{ m(1) }}"
        "{% with y = 2 %}{{ y }}{% endwith %}"
    )
    assert prompt(text) == []


def test_loop_outside_a_for_is_the_loops_own_fields() -> None:
    assert prompt("{% for i in range(2) %}{{ loop.index }}{% endfor %}{{ loop.index }}") == [
        (
            "pipeline[0].prompt",
            "loop.index: loop has no 'index' (it holds name, description)",
            None,
        )
    ]


# ── Inputs ───────────────────────────────────────────────────────────────


def test_an_undeclared_input_is_an_error_that_says_where_to_declare_it() -> None:
    assert prompt("Review {{ inputs.diff }}") == [
        (
            "pipeline[0].prompt",
            "inputs.diff: no input 'diff' is declared",
            "declare it under 'inputs:' (diff: ...)",
        )
    ]


def test_a_misspelt_input_suggests_the_declared_one() -> None:
    assert prompt("{{ inputs['repostory'] }}", inputs={"repository": {"default": "a/b"}}) == [
        (
            "pipeline[0].prompt",
            "inputs.repostory: no input 'repostory' is declared",
            "did you mean 'repository'?",
        )
    ]


def test_an_undeclared_input_is_an_error_even_with_a_default_filter() -> None:
    assert prompt("{{ inputs.diff | default('') }}")[0][1] == (
        "inputs.diff: no input 'diff' is declared"
    )


@pytest.mark.parametrize("declared", [{"required": True}, {"default": "main"}, {"default": False}])
def test_an_input_that_every_run_has_is_read_freely(declared: dict[str, Any]) -> None:
    assert prompt("{{ inputs.branch }}", inputs={"branch": declared}) == []


def test_an_optional_input_without_a_default_must_be_guarded() -> None:
    inputs = {"branch": {"description": "optional"}}
    assert prompt("{{ inputs.branch }}", inputs=inputs) == [
        (
            "pipeline[0].prompt",
            "inputs.branch: the input 'branch' is optional and has no default, "
            "so a run may not have it",
            "give it a default, make it required, or write {{ inputs.branch | default('') }}",
        )
    ]
    guarded = (
        "{{ inputs.branch | default('main') }} {{ inputs.branch | d('x') }} "
        "{% if inputs.branch is defined %}{{ inputs.branch }}{% endif %} "
        "{{ inputs.get('branch', 'main') }} {{ 'on ' ~ inputs.branch if inputs.branch is defined else '' }}"
    )
    assert prompt(guarded, inputs=inputs) == []


# ── Steps ────────────────────────────────────────────────────────────────


def test_an_earlier_step_is_readable_by_label_or_by_path() -> None:
    pipeline = [
        agent("Triage"),
        {"prompt": "Unlabelled."},
        agent("Report", "{{ steps['Triage'].output }} {{ steps['pipeline[1]'].output }}"),
    ]
    assert found(pipeline=pipeline) == []


def test_an_unknown_step_is_an_error_with_the_closest_label() -> None:
    pipeline = [agent("Triage"), agent("Report", "{{ steps['Triag'].output }}")]
    assert found(pipeline=pipeline) == [
        (
            "pipeline[1].prompt",
            "steps.Triag.output: no step is labelled 'Triag'",
            "did you mean 'Triage'?",
        )
    ]


def test_a_step_that_runs_later_is_an_error() -> None:
    pipeline = [agent("First", "{{ steps.Second.output }}"), agent("Second")]
    assert found(pipeline=pipeline) == [
        (
            "pipeline[0].prompt",
            "steps.Second.output: step 'Second' may not have run when this template renders: "
            "it runs after this one",
            "guard it: {% if steps['Second'] is defined %}...{% endif %}",
        )
    ]


def test_a_step_reading_itself_is_an_error_unless_guarded_for_later_rounds() -> None:
    assert prompt("{{ steps['Only'].output }}")[0][1] == (
        "steps.Only.output: step 'Only' may not have run when this template renders: "
        "it is this step (its output does not exist while it renders)"
    )
    again = (
        "{% if steps['Only'] is defined %}Your last answer: {{ steps['Only'].output }}{% endif %}"
    )
    assert prompt(again) == []


def test_a_sibling_in_the_same_parallel_group_is_an_error() -> None:
    pipeline = [{"parallel": [agent("A"), agent("B", "{{ steps.A.output }}")]}]
    assert found(pipeline=pipeline) == [
        (
            "pipeline[0].parallel[1].prompt",
            "steps.A.output: step 'A' may not have run when this template renders: "
            "it runs in the same parallel group",
            "guard it: {% if steps['A'] is defined %}...{% endif %}",
        )
    ]


def test_steps_of_an_earlier_group_and_earlier_in_a_members_sequence_are_readable() -> None:
    pipeline = [
        {
            "parallel": [
                agent("A"),
                {"sequential": [agent("B"), agent("C", "{{ steps.B.output }}")]},
            ]
        },
        agent("D", "{{ steps.A.output }} {{ steps.B.output }} {{ steps.C.output }}"),
    ]
    assert found(pipeline=pipeline) == []


def branchy(reader: str, when: str = "steps['Triage'].output == 'bug'") -> list[Any]:
    return [
        agent("Triage"),
        {"when": when, "then": [agent("Fix"), agent("Check", "{{ steps.Fix.output }}")]},
        agent("Report", reader),
    ]


def test_a_step_of_a_conditional_branch_read_from_outside_must_be_guarded() -> None:
    assert found(pipeline=branchy("{{ steps['Fix'].output }}")) == [
        (
            "pipeline[2].prompt",
            "steps.Fix.output: step 'Fix' may not have run when this template renders: "
            "it runs only when the condition at pipeline[1].when is true",
            "guard it: {% if steps['Fix'] is defined %}...{% endif %}",
        )
    ]


@pytest.mark.parametrize(
    "reader",
    [
        "{% if steps['Fix'] is defined %}{{ steps['Fix'].output }}{% endif %}",
        "{% if steps.Fix is defined and steps.Fix.output %}{{ steps.Fix.output }}{% endif %}",
        "{% if 'Fix' in steps %}{{ steps.Fix.output }}{% endif %}",
        "{{ steps.Fix.output if steps.Fix is defined else 'no fix' }}",
        "{{ steps.get('Fix') }}",
        "{{ steps.Fix | default('no fix') }}",
    ],
)
def test_a_guarded_read_of_a_branch_step_is_accepted(reader: str) -> None:
    assert found(pipeline=branchy(reader)) == []


def test_a_default_on_the_output_does_not_guard_the_step_itself() -> None:
    # steps['Fix'].output | default('') still fails when Fix did not run.
    assert found(pipeline=branchy("{{ steps['Fix'].output | default('') }}"))[0][1].startswith(
        "steps.Fix.output: step 'Fix' may not have run"
    )


def test_the_else_branch_says_its_condition_must_be_false() -> None:
    pipeline = [
        agent("Triage"),
        {"when": "steps.Triage.output", "then": [agent("Fix")], "else": [agent("Skip")]},
        agent("Report", "{{ steps.Skip.output }}"),
    ]
    assert found(pipeline=pipeline)[0][1] == (
        "steps.Skip.output: step 'Skip' may not have run when this template renders: "
        "it runs only when the condition at pipeline[1].when is false"
    )


def test_a_when_sees_the_steps_before_its_conditional_only() -> None:
    assert found(pipeline=branchy("ok", when="steps.Fix.output == ''")) == [
        (
            "pipeline[1].when",
            "steps.Fix.output: step 'Fix' may not have run when this template renders: "
            "it runs after this one",
            "guard it: steps['Fix'] is defined and ...",
        )
    ]
    guarded = "steps.Report is defined and steps.Report.output == ''"
    assert found(pipeline=branchy("ok", when=guarded)) == []


def test_a_misspelt_step_field_suggests_the_field() -> None:
    assert found(pipeline=[agent("A"), agent("B", "{{ steps.A.outptu }}")]) == [
        (
            "pipeline[1].prompt",
            "steps.A.outptu: a step has no field 'outptu' (its fields: output, tokens, cost, round)",
            "did you mean 'output'?",
        )
    ]


def test_every_field_of_a_step_is_readable() -> None:
    text = "{{ steps.A.output }} {{ steps.A.tokens }} {{ steps.A.cost }} {{ steps.A.round }}"
    assert found(pipeline=[agent("A"), agent("B", text)]) == []


def test_a_dynamic_step_name_is_not_checked() -> None:
    assert prompt("{% for name in ['A'] %}{{ steps[name].output }}{% endfor %}") == []


# ── Structured output ────────────────────────────────────────────────────

SCHEMA = {
    "type": "object",
    "properties": {
        "severity": {"type": "string"},
        "owner": {"type": "object", "properties": {"team": {"type": "string"}}},
        "labels": {"type": "array", "items": {"type": "object", "properties": {"name": {}}}},
        "extra": {"type": "object"},
    },
}


def classify(reader: str, schema: dict[str, Any] = SCHEMA) -> list[tuple[str, str, str | None]]:
    return found(pipeline=[agent("Classify", output={"schema": schema}), agent("Act", reader)])


def test_fields_of_a_schema_output_are_checked_against_its_properties() -> None:
    ok = (
        "{{ steps.Classify.output.severity }} {{ steps.Classify.output.owner.team }} "
        "{{ steps.Classify.output.labels[0].name }} {{ steps.Classify.output.extra.anything }}"
    )
    assert classify(ok) == []
    assert classify("{{ steps['Classify'].output.severty }}") == [
        (
            "pipeline[1].prompt",
            "steps.Classify.output.severty: the output schema of step 'Classify' "
            "has no property 'severty'",
            "did you mean 'severity'?",
        )
    ]
    assert classify("{{ steps.Classify.output.owner.name }}")[0][1:] == (
        "steps.Classify.output.owner.name: the output schema of step 'Classify' "
        "has no property 'name'",
        "its properties: team",
    )


def test_a_condition_on_a_schema_field_is_checked_too() -> None:
    pipeline = [
        agent("Classify", output={"schema": SCHEMA}),
        {"when": "steps['Classify'].output.severity == 'high'", "then": [agent("Page")]},
        {"when": "steps['Classify'].output.sev == 'high'", "then": [agent("Page2")]},
    ]
    assert [p[:2] for p in found(pipeline=pipeline)] == [
        (
            "pipeline[2].when",
            "steps.Classify.output.sev: the output schema of step 'Classify' has no property 'sev'",
        )
    ]


def test_a_schema_without_properties_is_not_checked() -> None:
    assert classify("{{ steps.Classify.output.anything.at.all }}", {"type": "object"}) == []


def test_a_field_of_a_text_output_is_an_error_but_string_methods_are_fine() -> None:
    pipeline = [
        agent("A"),
        agent("B", "{{ steps.A.output.severity }} {{ steps.A.output.strip() }}"),
    ]
    assert found(pipeline=pipeline) == [
        (
            "pipeline[1].prompt",
            "steps.A.output.severity: the output of step 'A' is text (it declares no output "
            "schema), which has no 'severity'",
            "declare output: {schema: ...} on step 'A' to read fields of its answer",
        )
    ]


# ── Memory ───────────────────────────────────────────────────────────────


def test_memory_keys_the_loop_writes_are_readable() -> None:
    text = "{{ memory.Report }} {{ memory['Report'] }} {{ memory.last_run.id }}"
    assert found(pipeline=[agent("Collect", text), agent("Report")]) == []


def test_another_memory_key_must_be_guarded() -> None:
    assert prompt("{{ memory.Reprot }}") == [
        (
            "pipeline[0].prompt",
            "memory.Reprot: the loop never writes the memory key 'Reprot' "
            "(it writes each step's output under the step's label, and last_run)",
            "read a key that another loop writes with memory.get('Reprot', '...')",
        )
    ]
    assert prompt("{{ memory.Onyl }}")[0][2] == "did you mean 'Only'?"
    guarded = "{{ memory.get('Shared', '') }} {{ memory.Shared | default('') }}"
    assert prompt(guarded) == []


def test_with_minimal_persistence_memory_holds_only_last_run() -> None:
    problems = prompt(
        "{{ memory.Only }} {{ memory.last_run.status }}", memory={"persistence": "minimal"}
    )
    assert [p[1] for p in problems] == [
        "memory.Only: the loop never writes the memory key 'Only' "
        "(it writes each step's output under the step's label, and last_run)"
    ]


# ── Trigger payloads ─────────────────────────────────────────────────────


def test_a_manual_runs_payload_is_not_checked() -> None:
    assert (
        prompt("{{ trigger.type }} {{ trigger.event }} {{ trigger.payload.anything.goes }}") == []
    )


def test_a_cron_runs_payload_holds_the_schedules_fields() -> None:
    cron = {"type": "cron", "schedule": "0 9 * * 1-5"}
    text = "{{ trigger.payload.due_time }} {{ trigger.payload.schedule }} {{ trigger.payload.timezone }}"
    assert prompt(text, trigger=cron) == []
    assert prompt("{{ trigger.payload.title }}", trigger=cron) == [
        (
            "pipeline[0].prompt",
            "trigger.payload.title: a cron run's trigger.payload has no 'title' "
            "(it holds schedule, timezone, due_time)",
            None,
        )
    ]


def test_a_completion_events_payload_holds_the_source_run() -> None:
    event = {"type": "event", "loop": "pr-review"}
    assert prompt("{{ trigger.payload.run_id }} {{ trigger.payload.status }}", trigger=event) == []
    assert prompt("{{ trigger.payload.stauts }}", trigger=event)[0][1:] == (
        "trigger.payload.stauts: a loop-completion event's trigger.payload has no 'stauts' "
        "(it holds loop, run_id, status, depth)",
        "did you mean 'status'?",
    )


def test_a_custom_events_data_is_not_checked_below_data() -> None:
    event = {"type": "event", "event": "release.tagged"}
    assert prompt("{{ trigger.payload.data.version }}", trigger=event) == []
    assert prompt("{{ trigger.payload.version }}", trigger=event)[0][1] == (
        "trigger.payload.version: a custom event's trigger.payload has no 'version' "
        "(it holds event, data, depth)"
    )


# ── Every kind of template ───────────────────────────────────────────────


def test_plan_templates_see_task_input_and_results_but_plan_tasks_do_not() -> None:
    pipeline = [
        {
            "plan": "Solve {{ input }}",
            "label": "Investigate",
            "templates": {
                "search": {
                    "description": "Search",
                    "prompt": "{{ task }} {{ input }} {{ results | length }} {{ inputs.nope }}",
                }
            },
        },
        agent("Report", "{{ steps.Investigate.output }}"),
    ]
    assert found(pipeline=pipeline) == [
        (
            "pipeline[0].plan",
            "input: there is no 'input' in the template context",
            "did you mean 'inputs'?",
        ),
        (
            "pipeline[0].templates['search'].prompt",
            "inputs.nope: no input 'nope' is declared",
            "declare it under 'inputs:' (nope: ...)",
        ),
    ]


def test_a_planned_steps_label_is_readable_when_guarded() -> None:
    plan = {
        "plan": "Solve it",
        "label": "Investigate",
        "templates": {"search": {"description": "Search", "prompt": "Search {{ input }}"}},
    }
    ok = "{% if steps['Investigate 1.1 search'] is defined %}{{ steps['Investigate 1.1 search'].output }}{% endif %}"
    assert found(pipeline=[plan, agent("Report", ok)]) == []
    assert found(pipeline=[plan, agent("Report", "{{ steps['Investigate 1.1 search'].output }}")])[
        0
    ][1] == (
        "steps['Investigate 1.1 search'].output: step 'Investigate 1.1 search' may not have run "
        "when this template renders: the planner chooses which planned steps run"
    )


def test_an_approval_question_is_checked() -> None:
    pipeline = [agent("Draft"), {"approve": "Publish {{ steps.Drfat.output }}?"}]
    assert found(pipeline=pipeline) == [
        (
            "pipeline[1].approve",
            "steps.Drfat.output: no step is labelled 'Drfat'",
            "did you mean 'Draft'?",
        )
    ]


def test_a_subagent_prompt_is_checked_where_each_step_uses_it() -> None:
    subagents = {
        "writer": {"role": "executor", "prompt": "Build on {{ steps.Outline.output }}."},
        "unused": {"role": "executor", "prompt": "{{ inputs.topic }}"},
    }
    pipeline = [
        agent("Intro", subagent="writer"),
        agent("Outline"),
        agent("Body", subagent="writer"),
    ]
    assert found(pipeline=pipeline, subagents=subagents) == [
        (
            "subagents['writer'].prompt",
            "steps.Outline.output: step 'Outline' may not have run when this template renders: "
            "it runs after this one (as the subagent of step 'Intro')",
            "guard it: {% if steps['Outline'] is defined %}...{% endif %}",
        ),
        (
            "subagents['unused'].prompt",
            "inputs.topic: no input 'topic' is declared",
            "declare it under 'inputs:' (topic: ...)",
        ),
    ]


def test_a_checkers_prompt_sees_every_step() -> None:
    subagents = {"critic": {"role": "verifier", "prompt": "Judge {{ steps.Draft.output }}."}}
    verify = {"maker": "Draft", "checker": "critic"}
    assert found(pipeline=[agent("Draft")], subagents=subagents, verify=verify) == []


def test_a_multi_line_template_says_the_template_line() -> None:
    assert prompt("Intro\n\n{{ inputs.diff }}\n")[0][1] == (
        "inputs.diff: no input 'diff' is declared (template line 3)"
    )


def test_each_problem_is_reported_once_per_template() -> None:
    assert len(prompt("{{ inputs.diff }} and again {{ inputs.diff }}")) == 1


# ── Wiring: load, positions, the loops shipped ───────────────────────────


def test_loading_a_file_reports_every_reference_at_its_field_position() -> None:
    text = (
        "name: refs\n"
        "pipeline:\n"
        "  - prompt: Review {{ inputs.diff }}\n"
        "    label: Review\n"
        "  - when: steps['Reveiw'].output != ''\n"
        "    then:\n"
        "      - prompt: Fix it.\n"
    )
    with pytest.raises(SpecError) as caught:
        load_loop(text, "loops/refs.yaml")
    assert caught.value.problems == [
        Problem(
            "inputs.diff: no input 'diff' is declared",
            path="pipeline[0].prompt",
            file="loops/refs.yaml",
            line=3,
            column=13,
            code="unknown_reference",
            hint="declare it under 'inputs:' (diff: ...)",
        ),
        Problem(
            "steps.Reveiw.output: no step is labelled 'Reveiw'",
            path="pipeline[1].when",
            file="loops/refs.yaml",
            line=5,
            column=11,
            code="unknown_reference",
            hint="did you mean 'Review'?",
        ),
    ]


def test_an_unguarded_read_has_its_own_code() -> None:
    loop = loop_from_data(
        {"name": "t", "pipeline": [agent("A", "{{ steps.B.output }}"), agent("B")]}, check=False
    )
    assert [p.code for p in check_templates(loop)] == ["unguarded_reference"]


@pytest.mark.parametrize("path", sorted((ROOT / "loops").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_loop_reads_only_what_exists(path: Path) -> None:
    loop = load_loop_file(path, check=False)
    assert check_templates(loop) == []


def test_a_templates_references_are_read_once_and_remembered() -> None:
    source = "{{ inputs.a }} {{ steps['B'].output.c }} {{ memory.get('d') }}"
    first = prompt_refs(source)
    assert prompt_refs(source) is first
    assert [(r.root, r.keys, r.guarded) for r in first] == [
        ("inputs", ("a",), (False,)),
        ("steps", ("B", "output", "c"), (False, False, False)),
        ("memory", ("d",), (True,)),
    ]
    assert prompt_refs("plain text, no template") == ()


PR = {"type": "webhook", "event": "pull_request"}


def test_a_github_webhook_payload_path_is_checked_against_the_events_schema() -> None:
    ok = (
        "{{ trigger.payload.pull_request.title }} {{ trigger.payload.pull_request.user.login }} "
        "{{ trigger.payload.action }} {{ trigger.payload.pull_request.title.upper() }} "
        "{{ trigger.payload.pull_request.head.sha[:7] }}"
    )
    assert prompt(ok, trigger=PR) == []
    assert prompt("{{ trigger.payload.pull_request.titel }}", trigger=PR) == [
        (
            "pipeline[0].prompt",
            "trigger.payload.pull_request.titel: the 'pull_request' webhook payload has no "
            "'titel' under 'pull_request'",
            "did you mean 'title'?",
        )
    ]
    assert prompt("{{ trigger.payload.pull_requets.number }}", trigger=PR)[0][1:] == (
        "trigger.payload.pull_requets.number: the 'pull_request' webhook payload has no "
        "'pull_requets'",
        "did you mean 'pull_request'?",
    )


def test_array_items_of_a_webhook_payload_are_checked_by_index() -> None:
    push = {"type": "webhook", "event": "push"}
    assert prompt("{{ trigger.payload.commits[0].id }}", trigger=push) == []
    assert prompt("{{ trigger.payload.commits[0].sah }}", trigger=push)[0][1] == (
        "trigger.payload.commits[0].sah: the 'push' webhook payload has no 'sah' under 'commits[0]'"
    )


def test_a_when_on_a_webhook_payload_is_checked_too() -> None:
    pipeline = [{"when": "trigger.payload.pull_request.merged_by.logn", "then": [agent("A")]}]
    assert found(pipeline=pipeline, trigger=PR)[0][:2] == (
        "pipeline[0].when",
        "trigger.payload.pull_request.merged_by.logn: the 'pull_request' webhook payload has "
        "no 'logn' under 'pull_request.merged_by'",
    )


def test_a_webhook_event_without_a_known_schema_is_not_checked() -> None:
    custom = {"type": "webhook", "event": "deploy_finished"}
    assert prompt("{{ trigger.payload.anything.at.all }}", trigger=custom) == []


async def test_a_first_run_reads_the_memory_keys_its_loop_writes_as_empty() -> None:
    from loopkit.engine.runner import RunOptions, run_loop
    from loopkit.llm import LiteLLMProvider
    from loopkit.memory import InMemoryStore
    from tests.engine.llm_server import LLMServer, Reply

    loop = load_loop(
        "name: remembers\n"
        "model: openai/test\n"
        "pipeline:\n"
        "  - prompt: \"Earlier: [{{ memory['Report'] }}] by [{{ memory.last_run.id }}]\"\n"
        "    label: Report\n"
    )
    store = InMemoryStore()
    with LLMServer() as server:
        server.default = Reply("the report")
        llm = LiteLLMProvider(api_base=server.url)
        first = await run_loop(loop, llm, store=store, options=RunOptions())
        second = await run_loop(loop, llm, store=store, options=RunOptions())
        prompts = [r.body["messages"][-1]["content"] for r in server.requests]
    assert (first.status, second.status) == ("succeeded", "succeeded")
    assert prompts == ["Earlier: [] by []", f"Earlier: [the report] by [{first.id}]"]

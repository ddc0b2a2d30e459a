"""``onPass`` / ``onFail`` and the ``tool:`` step: loading, dumping, checks and template context."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from loopkit import spec
from loopkit.errors import SpecError
from loopkit.template_context import check_templates, memory_keys
from loopkit.yamlio import dump, load_loop, loop_from_data

CONNECTORS = {
    "github": {
        "type": "http",
        "baseUrl": "https://api.github.com",
        "operations": {
            "get_diff": {"path": "/repos/{owner}/{repo}/pulls/{number}"},
            "comment": {
                "method": "POST",
                "path": "/repos/{owner}/{repo}/issues/{number}/comments",
                "parameters": {
                    "type": "object",
                    "properties": {"body": {"type": "string"}},
                    "required": ["body"],
                },
            },
        },
    }
}

LOOP = """\
name: review
pipeline:
  - tool: github.get_diff
    label: Diff
    arguments:
      owner: acme
      repo: app
      number: '{{ 7 }}'
  - prompt: 'Review this diff: {{ steps[''Diff''].output }}'
    label: Review
verify:
  maker:
    - Review
  checker: Adversarial Verifier
onPass:
  - tool: github.comment
    label: Post
    arguments:
      owner: acme
      repo: app
      number: 7
      body: '{{ steps[''Review''].output }} (score {{ verification.score }})'
onFail:
  - prompt: 'Say why the review failed: {{ verification.issues }}'
    label: Explain
connectors:
  github:
    type: http
    baseUrl: https://api.github.com
    operations:
      get_diff:
        path: /repos/{owner}/{repo}/pulls/{number}
      comment:
        method: POST
        path: /repos/{owner}/{repo}/issues/{number}/comments
        parameters:
          type: object
          properties:
            body:
              type: string
          required:
            - body
"""


def make(**data: Any) -> spec.Loop:
    data.setdefault("name", "t")
    data.setdefault("connectors", CONNECTORS)
    return loop_from_data(data)


def problems(**data: Any) -> list[tuple[str, str]]:
    data.setdefault("name", "t")
    data.setdefault("connectors", CONNECTORS)
    with pytest.raises(SpecError) as caught:
        loop_from_data(data)
    return [(p.path or "", p.message) for p in caught.value.problems]


def test_on_pass_and_on_fail_load_and_dump_back_byte_identical() -> None:
    loop = load_loop(LOOP, "loops/review.yaml")
    assert [type(s) for s in loop.on_pass] == [spec.ToolStep]
    assert [type(s) for s in loop.on_fail] == [spec.AgentStep]
    assert isinstance(loop.pipeline[0], spec.ToolStep)
    assert loop.pipeline[0].connector == "github" and loop.pipeline[0].tool_name == "get_diff"
    assert dump(loop) == LOOP


def test_a_loop_without_actions_dumps_no_action_keys() -> None:
    loop = make(pipeline=[{"prompt": "Hi", "label": "A"}])
    assert loop.on_pass == [] and loop.on_fail == []
    assert "onPass" not in dump(loop) and "onFail" not in dump(loop)


def test_the_json_schema_describes_the_actions_and_the_tool_step() -> None:
    import yaml

    schema = spec.json_schema()
    assert {"onPass", "onFail"} <= set(schema["properties"])
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors(yaml.safe_load(LOOP))) == []
    bad = yaml.safe_load(LOOP)
    bad["onPass"][0]["argumnets"] = {}
    assert not validator.is_valid(bad)


def test_iter_loop_steps_walks_the_pipeline_then_on_pass_then_on_fail() -> None:
    loop = load_loop(LOOP)
    assert [path for path, _ in spec.iter_loop_steps(loop)] == [
        "pipeline[0]",
        "pipeline[1]",
        "onPass[0]",
        "onFail[0]",
    ]


def test_a_tool_is_named_connector_dot_tool() -> None:
    found = problems(pipeline=[{"tool": "get_diff"}])
    assert found == [
        (
            "pipeline[0].tool",
            "'get_diff' does not name a tool as connector.tool (e.g. github.create_review)",
        )
    ]


def test_tool_on_an_agent_step_hints_at_tools() -> None:
    with pytest.raises(SpecError) as caught:
        load_loop("name: t\npipeline:\n  - prompt: Hi\n    tool: github.get_diff\n")
    (problem,) = caught.value.problems
    assert problem.message == "a step holds one kind only: 'tool' cannot be added to this one"
    assert problem.hint is not None and "did you mean 'tools'" in problem.hint


def test_an_unknown_connector_or_tool_of_a_tool_step_is_an_error_with_a_hint() -> None:
    with pytest.raises(SpecError) as caught:
        make(
            pipeline=[{"prompt": "Hi", "label": "A"}],
            onPass=[{"tool": "gihtub.comment"}, {"tool": "github.coment"}],
        )
    found = [(p.path, p.message, p.hint) for p in caught.value.problems]
    assert found == [
        (
            "onPass[0].tool",
            "connector 'gihtub' is not defined",
            "did you mean 'github'?",
        ),
        ("onPass[1].tool", "connector 'github' has no tool 'coment'", "did you mean 'comment'?"),
    ]


def test_an_http_operation_gets_every_argument_it_requires() -> None:
    found = problems(
        pipeline=[{"prompt": "Hi", "label": "A"}],
        onPass=[{"tool": "github.comment", "arguments": {"owner": "acme"}}],
    )
    assert found == [
        (
            "onPass[0].arguments",
            "the tool github.comment requires the arguments 'body', 'repo', 'number'",
        )
    ]


def test_labels_are_unique_across_the_pipeline_and_the_actions() -> None:
    found = problems(
        pipeline=[{"prompt": "Hi", "label": "A"}],
        verify={"maker": ["A"], "checker": "Adversarial Verifier"},
        onFail=[{"prompt": "Bye", "label": "A"}],
    )
    assert found == [("onFail[0].label", "duplicate label 'A' (already used at pipeline[0])")]


def test_a_maker_cannot_be_an_action() -> None:
    found = problems(
        pipeline=[{"prompt": "Hi", "label": "A"}],
        verify={"maker": ["Post"], "checker": "Adversarial Verifier"},
        onPass=[{"prompt": "Post it", "label": "Post"}],
    )
    assert found == [
        (
            "verify.maker[0]",
            "maker 'Post' is a step of onPass, which runs after verification: makers are "
            "pipeline steps",
        )
    ]


def test_on_fail_without_verify_is_an_error_since_it_would_never_run() -> None:
    found = problems(
        pipeline=[{"prompt": "Hi", "label": "A"}], onFail=[{"prompt": "Bye", "label": "B"}]
    )
    assert found == [
        (
            "onFail",
            "onFail runs only after verification fails, and this loop has no 'verify:': its "
            "steps would never run",
        )
    ]


def test_an_argument_that_is_not_a_valid_template_is_an_error_at_its_path() -> None:
    found = problems(
        pipeline=[{"prompt": "Hi", "label": "A"}],
        onPass=[
            {
                "tool": "github.comment",
                "arguments": {"owner": "a", "repo": "b", "number": 1, "body": "{{ oops"},
            }
        ],
    )
    assert [path for path, _ in found] == ["onPass[0].arguments.body"]


# ── What the templates of the actions read ───────────────────────────────


def refs(**data: Any) -> list[tuple[str, str]]:
    data.setdefault("name", "t")
    data.setdefault("connectors", CONNECTORS)
    loop = loop_from_data(data, check=False)
    return [(p.path or "", p.message) for p in check_templates(loop)]


PIPELINE = [
    {"prompt": "Hi", "label": "A"},
    {"when": "true", "then": [{"prompt": "Maybe", "label": "B"}]},
]
VERIFY = {"maker": ["A"], "checker": "Adversarial Verifier"}


def test_actions_read_verification_and_every_pipeline_step() -> None:
    text = (
        "{{ verification.passed }} {{ verification.score }} {{ verification.issues }} "
        "{{ verification.rounds }} {{ verification.outcome }} {{ verification.accepted }} "
        "{{ steps['A'].output }} {{ round }} {{ feedback }}"
    )
    assert (
        refs(
            pipeline=PIPELINE,
            verify=VERIFY,
            onPass=[{"prompt": text, "label": "P"}],
            onFail=[{"when": "not verification.passed", "then": [{"prompt": text}]}],
        )
        == []
    )


def test_a_pipeline_template_cannot_read_verification() -> None:
    assert refs(pipeline=[{"prompt": "{{ verification.score }}", "label": "A"}]) == [
        (
            "pipeline[0].prompt",
            "verification.score: 'verification' exists only in the templates of onPass and "
            "onFail steps (they run after the rounds)",
        )
    ]


def test_verification_has_six_fields() -> None:
    assert refs(
        pipeline=PIPELINE, onPass=[{"prompt": "{{ verification.scor }}", "label": "P"}]
    ) == [
        (
            "onPass[0].prompt",
            "verification.scor: verification has no 'scor' (it holds passed, score, issues, rounds, outcome, accepted)",
        )
    ]


def test_a_conditional_pipeline_step_must_still_be_guarded_in_an_action() -> None:
    found = refs(
        pipeline=PIPELINE,
        onPass=[
            {"prompt": "{{ steps['B'].output }}", "label": "P"},
            {"prompt": "{% if steps['B'] is defined %}{{ steps['B'].output }}{% endif %}"},
        ],
    )
    assert [path for path, _ in found] == ["onPass[0].prompt"]


def test_the_pipeline_cannot_read_an_action_and_on_pass_cannot_read_on_fail() -> None:
    found = refs(
        pipeline=[{"prompt": "{{ steps['P'].output }}", "label": "A"}],
        verify=VERIFY,
        onPass=[{"prompt": "{{ steps['F'].output }}", "label": "P"}],
        onFail=[{"prompt": "Bye", "label": "F"}],
    )
    assert found == [
        (
            "pipeline[0].prompt",
            "steps.P.output: step 'P' may not have run when this template renders: it runs "
            "after verification, in onPass",
        ),
        (
            "onPass[0].prompt",
            "steps.F.output: step 'F' may not have run when this template renders: it is a "
            "step of onFail, which never runs in the same run as onPass",
        ),
    ]


def test_a_tool_steps_output_is_readable_below_output_and_its_arguments_are_checked() -> None:
    found = refs(
        pipeline=[
            {"tool": "github.get_diff", "label": "PR", "arguments": {"number": "{{ inputz }}"}},
            {"prompt": "{{ steps['PR'].output.head.sha }}", "label": "A"},
        ],
    )
    assert found == [
        ("pipeline[0].arguments.number", "inputz: there is no 'inputz' in the template context")
    ]


def test_the_memory_keys_include_tool_steps_and_on_pass_but_not_on_fail() -> None:
    loop = load_loop(LOOP)
    assert memory_keys(loop) == ["Diff", "Review", "Post", "last_run"]


# ── The LRS ──────────────────────────────────────────────────────────────

WEBHOOK = {"type": "webhook", "event": "pull_request", "actions": ["opened"], "secretEnv": "S"}
POST = {
    "tool": "github.comment",
    "label": "Post",
    "arguments": {"owner": "a", "repo": "b", "number": 1, "body": "{{ steps['A'].output }}"},
}


def findings(loop: spec.Loop) -> list[tuple[str, str]]:
    from loopkit import lrs

    return [(f.level, f.message) for f in lrs.score(loop).findings if f.dimension == "trigger"]


def test_a_write_in_on_pass_is_gated_by_verification() -> None:
    loop = make(
        trigger=WEBHOOK,
        pipeline=[{"prompt": "Hi", "label": "A"}],
        verify=VERIFY,
        onPass=[POST],
    )
    assert ("ok", "Write actions in onPass (Post) run only after verification passes") in findings(
        loop
    )
    assert not any(level == "warn" for level, _ in findings(loop))


def test_a_write_in_on_pass_without_verify_or_in_the_pipeline_asks_for_an_approval_gate() -> None:
    from loopkit import lrs

    unverified = make(trigger=WEBHOOK, pipeline=[{"prompt": "Hi", "label": "A"}], onPass=[POST])
    assert ("warn", "Write actions run unattended (Post): no approval gate") in findings(unverified)
    fix = next(f.fix for f in lrs.score(unverified).findings if f.message.startswith("Write"))
    assert fix is not None and list(fix.patch) == ["onPass"]
    assert [step.get("approve") is not None for step in fix.patch["onPass"]] == [True, False]

    in_pipeline = make(
        trigger=WEBHOOK,
        pipeline=[{"prompt": "Hi", "label": "A"}, POST],
        verify=VERIFY,
    )
    assert ("warn", "Write actions run unattended (Post): no approval gate") in findings(
        in_pipeline
    )


def test_the_model_calls_a_pass_needs_include_on_pass_agent_steps() -> None:
    from loopkit import lrs

    loop = make(
        pipeline=[{"prompt": "Hi", "label": "A"}],
        verify=VERIFY,
        onPass=[{"prompt": "Announce it", "label": "Announce"}],
        budget={"maxModelCalls": 2},
    )
    messages = [f.message for f in lrs.score(loop).findings if f.level == "block"]
    assert messages == [
        "maxModelCalls 2 is below the 3 model calls one pass needs (2 agent steps, 1 checker)"
    ]


def test_a_when_that_proves_a_step_ran_lets_its_then_branch_read_it_unguarded() -> None:
    read = {"prompt": "Deliver {{ steps['B'].output }}"}
    assert (
        refs(
            pipeline=PIPELINE,
            onPass=[{"when": "steps['B'] is defined and verification.passed", "then": [read]}],
        )
        == []
    )
    # Only the then branch: the else branch (and what follows) must still guard it.
    found = refs(
        pipeline=PIPELINE,
        onPass=[{"when": "'B' in steps", "then": [{"prompt": "x"}], "else": [read]}, read],
    )
    assert [path for path, _ in found] == ["onPass[0].else[0].prompt", "onPass[1].prompt"]

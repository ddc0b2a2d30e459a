"""``verify.checks`` in a loop file (issue 18, item 3): the models, the cross-checks
(steps that answer, declared connectors and tools, templates, schema files), errors
with their field paths, and the canonical form keeping what the author wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loopkit import lrs, spec
from loopkit.errors import SpecError
from loopkit.yamlio import dump, load_loop, load_loop_file, to_data

HEAD = """\
name: x
inputs:
  branch: {default: main}
connectors:
  ci:
    type: http
    baseUrl: http://127.0.0.1:9
    operations:
      run_tests: {method: POST, path: /runs}
pipeline:
  - parallel:
      - prompt: write
        label: Writer
    label: Group
  - when: "steps['Writer'].output != ''"
    then:
      - prompt: polish
        label: Polisher
verify:
  maker: [Writer]
  checker: Adversarial Verifier
  checks:
"""


def problems(checks: str, **kwargs: object) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_loop(HEAD + checks, "x.yaml", **kwargs)  # type: ignore[arg-type]
    return [str(p) for p in caught.value.problems]


def test_each_kind_of_check_loads_with_its_defaults() -> None:
    loop = load_loop(
        HEAD
        + """\
    - step: Writer
      schema: {type: object, required: [title]}
    - name: no TODO
      step: Writer
      regex: TODO
      mustNotMatch: true
      severity: minor
    - tool: ci.run_tests
      arguments: {branch: "{{ inputs.branch }}", depth: [1, "{{ round }}"]}
      expect: result.exit_code == 0
      message: the tests must pass
""",
        "x.yaml",
    )
    assert loop.verify is not None
    schema, pattern, tool = loop.verify.checks
    assert isinstance(schema, spec.SchemaCheck) and schema.resolved_schema == {
        "type": "object",
        "required": ["title"],
    }
    assert schema.effective_severity == "blocker" and spec.check_name(schema) == "Writer schema"
    assert isinstance(pattern, spec.RegexCheck) and pattern.must_not_match
    assert pattern.effective_severity == "minor" and spec.check_name(pattern) == "no TODO"
    assert isinstance(tool, spec.ToolCheck)
    assert (tool.connector, tool.tool_name) == ("ci", "run_tests")
    assert spec.check_name(tool) == "ci.run_tests"
    assert list(spec.check_templates(loop.verify.checks)) == [
        ("verify.checks[2].arguments.branch", "{{ inputs.branch }}", False),
        ("verify.checks[2].arguments.depth[1]", "{{ round }}", False),
        ("verify.checks[2].expect", "result.exit_code == 0", True),
    ]


def test_the_canonical_form_keeps_the_checks_as_written() -> None:
    text = HEAD + (
        "    - step: Writer\n      regex: ^#\n"
        "    - tool: ci.run_tests\n      expect: \"'passed' in result\"\n"
    )
    loop = load_loop(text, "x.yaml")
    data = to_data(loop)
    assert data["verify"]["checks"] == [
        {"step": "Writer", "regex": "^#"},
        {"tool": "ci.run_tests", "expect": "'passed' in result"},
    ]
    assert to_data(load_loop(dump(loop), "again.yaml")) == data


def test_a_check_needs_one_kind_and_only_one() -> None:
    assert problems("    - step: Writer\n") == [
        "x.yaml:23:7: a check needs one of 'schema' (a JSON Schema on a step's output), "
        "'regex' (a regular expression on a step's output) or 'tool' (a connector tool call) "
        "(verify.checks[0])"
    ]
    assert problems("    - step: Writer\n      regex: a\n      schema: {}\n") == [
        "x.yaml:24:7: a check holds one kind only: 'regex' cannot be added to this one "
        "(verify.checks[0].regex) Hint: split it into two checks ('schema', 'regex', 'tool')"
    ]


def test_bad_values_are_reported_at_their_field() -> None:
    found = problems(
        "    - step: Writer\n      regex: '(unclosed'\n"
        "    - step: Writer\n      regex: a\n      severity: critical\n"
        "    - tool: run_tests\n"
    )
    assert found == [
        "x.yaml:24:14: '(unclosed' is not a valid regular expression: missing ) at position 9 "
        "(verify.checks[0].regex)",
        "x.yaml:27:17: input should be 'blocker', 'major' or 'minor', got 'critical' "
        "(verify.checks[1].severity)",
        "x.yaml:28:13: 'run_tests' does not name a connector's tool: write <connector>.<tool>, "
        "e.g. 'ci.run_tests' (verify.checks[2].tool)",
    ]


def test_a_check_names_a_step_that_answers() -> None:
    assert problems(
        "    - step: Writr\n      regex: a\n    - step: Group\n      schema: {type: object}\n"
    ) == [
        "x.yaml:23:13: step 'Writr' is not the label of any step (verify.checks[0].step) "
        "Hint: did you mean 'Writer'?",
        "x.yaml:25:13: step 'Group' gives no output to check (at pipeline[0]): a check reads "
        "an agent or plan step's answer (verify.checks[1].step) Hint: name the label of an "
        "agent step (a group's members are checked one by one)",
    ]


def test_a_tool_check_names_a_declared_connector_and_one_of_its_tools() -> None:
    assert problems("    - tool: cii.run_tests\n    - tool: ci.run_test\n") == [
        "x.yaml:23:13: connector 'cii' is not defined (verify.checks[0].tool) "
        "Hint: did you mean 'ci'?",
        "x.yaml:24:13: connector 'ci' has no tool 'run_test' (verify.checks[1].tool) "
        "Hint: did you mean 'run_tests'?",
    ]


def test_a_tool_checks_templates_are_checked_like_every_template() -> None:
    found = problems(
        "    - tool: ci.run_tests\n"
        "      arguments: {branch: '{{ inputs.brnch }}', title: '{{ steps.Writer.output'}\n"
        "      expect: \"result.exit_code == 0 and steps['Polisher'].output != '' and stats\"\n"
        "    - tool: ci.run_tests\n      expect: 'result =='\n"
    )
    assert found == [
        "x.yaml:24:56: the argument is not a valid template: unexpected end of template, "
        "expected 'end of print statement'. (template line 1) (verify.checks[0].arguments.title)",
        "x.yaml:27:15: 'expect' is not a valid expression: unexpected end of expression "
        "(verify.checks[1].expect) Hint: write a Jinja2 expression over 'result', "
        'e.g. "result.exit_code == 0"',
        "x.yaml:24:27: inputs.brnch: no input 'brnch' is declared "
        "(verify.checks[0].arguments.branch) Hint: did you mean 'branch'?",
        "x.yaml:25:15: steps.Polisher.output: step 'Polisher' may not have run when this "
        "template renders: it runs only when the condition at pipeline[1].when is true "
        "(verify.checks[0].expect) Hint: guard it: steps['Polisher'] is defined and ...",
        "x.yaml:25:15: stats: there is no 'stats' in the template context "
        "(verify.checks[0].expect) Hint: did you mean 'steps'?",
    ]


def test_an_invalid_inline_schema_is_refused() -> None:
    assert problems("    - step: Writer\n      schema: {type: [object, 12]}\n") == [
        "x.yaml:24:15: the schema is not a valid JSON Schema: $.type: ['object', 12] is not "
        "valid under any of the given schemas (verify.checks[0].schema) "
        "Hint: see https://json-schema.org/understanding-json-schema/"
    ]


def test_a_schema_file_is_read_relative_to_the_loop_file(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "report.json").write_text(json.dumps({"type": "object"}))
    (tmp_path / "schemas" / "list.yaml").write_text("type: array\nminItems: 1\n")
    loops = tmp_path / "loops"
    loops.mkdir()
    file = loops / "x.yaml"
    file.write_text(
        HEAD
        + "    - step: Writer\n      schema: ../schemas/report.json\n"
        + "    - step: Writer\n      schema: ../schemas/list.yaml\n"
    )
    loop = load_loop_file(file)
    assert loop.verify is not None
    first, second = loop.verify.checks
    assert isinstance(first, spec.SchemaCheck) and isinstance(second, spec.SchemaCheck)
    assert first.resolved_schema == {"type": "object"}
    assert second.resolved_schema == {"type": "array", "minItems": 1}
    # The file stays a file in the canonical form.
    assert to_data(loop)["verify"]["checks"][0] == {
        "step": "Writer",
        "schema": "../schemas/report.json",
    }


def test_a_schema_file_that_cannot_be_used_is_reported(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "wrong.yaml").write_text("type: 12\n")
    file = tmp_path / "x.yaml"
    file.write_text(
        HEAD
        + "".join(
            f"    - step: Writer\n      schema: {name}\n"
            for name in ("missing.json", "bad.json", "list.json", "wrong.yaml")
        )
    )
    with pytest.raises(SpecError) as caught:
        load_loop_file(file)
    found = [(p.path, p.message.split(":")[0]) for p in caught.value.problems]
    assert found == [
        ("verify.checks[0].schema", "cannot read the schema file 'missing.json'"),
        ("verify.checks[1].schema", "the schema file 'bad.json' is not valid JSON or YAML"),
        (
            "verify.checks[2].schema",
            "the schema file 'list.json' does not hold a mapping (a JSON Schema object)",
        ),
        ("verify.checks[3].schema", "the schema is not a valid JSON Schema"),
    ]
    assert (
        caught.value.problems[0].hint == f"the path is relative to the loop's folder ({tmp_path})"
    )


def test_a_schema_file_needs_a_loop_read_from_a_file() -> None:
    assert problems("    - step: Writer\n      schema: report.json\n") == [
        "x.yaml:24:15: the schema 'report.json' names a file, but this loop was not read from "
        "a file, so there is no folder to find it in (verify.checks[0].schema) "
        "Hint: write the schema inline (schema: {type: object, ...})"
    ]


def test_the_lrs_credits_checks_in_the_verification_dimension() -> None:
    # The checker runs on the makers' model: 3 points off, which checks give back.
    head = HEAD.replace(
        "name: x\n",
        "name: x\nmodel: openai/gpt-4o-mini\n"
        "subagents:\n  judge: {role: verifier, prompt: Judge harshly.}\n",
    ).replace("checker: Adversarial Verifier", "checker: judge")
    plain = load_loop(head.removesuffix("  checks:\n"), "x.yaml")
    checked = load_loop(head + "    - step: Writer\n      regex: ^#\n", "x.yaml")
    before, after = lrs.score(plain), lrs.score(checked)
    assert {d.key: d.points for d in before.dimensions}["verification"] == 22
    assert {d.key: d.points for d in after.dimensions}["verification"] == 25
    assert any(
        f.dimension == "verification"
        and f.level == "ok"
        and f.message == "1 deterministic check runs before the checker (no model call)"
        for f in after.findings
    )

"""``loopkit.document.analyze``: one loop document parsed, validated, checked and scored."""

from __future__ import annotations

import pytest

from loopkit import lrs, spec, yamlio
from loopkit.document import analyze
from loopkit.errors import Problem, SpecError

LOOP = """\
name: triage
pipeline:
  - prompt: Summarise the new issues.
    label: Summarise
    connectors:
      - github
verify:
  maker:
    - Summarise
  checker: Adversarial Verifier
"""

PROJECT = spec.Project.model_validate(
    {"connectors": {"github": {"type": "http", "baseUrl": "https://api.github.com"}}}
)


def test_it_gives_a_sound_loop_its_canonical_forms_and_its_score() -> None:
    analysis = analyze(LOOP, file="loops/triage.yaml", project=PROJECT)
    assert analysis.ok
    assert analysis.problems == []
    assert analysis.loop == yamlio.load_loop(LOOP, project=PROJECT)
    assert analysis.data == yamlio.to_data(analysis.loop)
    assert analysis.yaml == LOOP
    assert analysis.report == lrs.score(analysis.loop, PROJECT)
    assert analysis.require() is analysis.loop


def test_it_reports_a_cross_reference_problem_with_position_and_still_scores_the_loop() -> None:
    analysis = analyze(LOOP.replace("- Summarise", "- Sumarise"), file="loops/triage.yaml")
    assert not analysis.ok
    assert analysis.problems == [
        Problem(
            "connector 'github' is not defined",
            path="pipeline[0].connectors[0]",
            file="loops/triage.yaml",
            line=6,
            column=9,
            code="unknown_connector",
            hint="define it under 'connectors:'",
        ),
        Problem(
            "maker 'Sumarise' is not the label of any step",
            path="verify.maker[0]",
            file="loops/triage.yaml",
            line=9,
            column=7,
            code="unknown_maker",
            hint="did you mean 'Summarise'?",
        ),
    ]
    assert analysis.loop is not None and analysis.loop.name == "triage"
    assert analysis.yaml == LOOP.replace("- Summarise\n  checker", "- Sumarise\n  checker")
    assert analysis.report is not None and 0 <= analysis.report.score <= 100
    with pytest.raises(SpecError) as raised:
        analysis.require()
    assert raised.value.problems == analysis.problems


def test_it_reports_a_yaml_error_with_its_position_and_no_loop() -> None:
    analysis = analyze("name: x\npipeline: [\n", file="broken.yaml")
    assert not analysis.ok
    assert analysis.loop is None
    assert analysis.data is None and analysis.yaml is None and analysis.report is None
    assert [(p.file, p.line, p.code) for p in analysis.problems] == [
        ("broken.yaml", 3, "yaml_syntax")
    ]


def test_it_reports_a_schema_error_with_the_field_path() -> None:
    analysis = analyze("name: x\npipeline:\n  - prompt: Hi\n    retries: many\n", file="x.yaml")
    assert analysis.loop is None
    assert analysis.problems == [
        Problem(
            "expected a whole number, got 'many'",
            path="pipeline[0].retries",
            file="x.yaml",
            line=4,
            column=14,
            code="int_type",
        )
    ]


def test_it_takes_parsed_data_as_the_editor_sends_it() -> None:
    data = yamlio.parse(LOOP).data
    analysis = analyze(data, project=PROJECT)
    assert analysis.ok
    assert analysis.yaml == LOOP
    assert analyze(data).problems == [
        Problem(
            "connector 'github' is not defined",
            path="pipeline[0].connectors[0]",
            code="unknown_connector",
            hint="define it under 'connectors:'",
        )
    ]


def test_it_scores_with_the_project_defaults() -> None:
    project = spec.Project.model_validate(
        {**PROJECT.model_dump(by_alias=True), "defaults": {"budget": {"maxTokens": 1000}}}
    )
    with_defaults = analyze(LOOP, project=project).report
    without = analyze(LOOP, project=PROJECT).report
    assert with_defaults is not None and without is not None
    assert with_defaults == lrs.score(yamlio.load_loop(LOOP, project=project), project)
    assert with_defaults.score > without.score

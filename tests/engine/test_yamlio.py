"""YAML load and dump: positions and paths in errors, canonical output."""

from __future__ import annotations

import pytest

from loopkit import spec
from loopkit.errors import Problem, SpecError
from loopkit.yamlio import dump, format_path, load_loop, parse


def only_problem(text: str | bytes) -> Problem:
    with pytest.raises(SpecError) as caught:
        load_loop(text, "loops/x.yaml")
    assert len(caught.value.problems) == 1, caught.value.problems
    return caught.value.problems[0]


def test_a_deep_error_names_its_line_column_and_field_path() -> None:
    problem = only_problem(
        "name: x\npipeline:\n  - parallel:\n      - prompt: a\n      - prompt: b\n"
        "      - prompt: c\n        label: [c]\n"
    )
    assert str(problem) == (
        "loops/x.yaml:7:16: expected text, got a list (pipeline[0].parallel[2].label)"
    )


def test_a_number_where_text_belongs_gets_a_quoting_hint() -> None:
    problem = only_problem("name: x\npipeline:\n  - prompt: 7\n")
    assert str(problem) == (
        "loops/x.yaml:3:13: expected text, got 7 (pipeline[0].prompt) Hint: YAML reads yes, no, "
        "on, off, true, false and numbers as such: quote the value"
    )


def test_a_misspelt_key_is_an_error_with_a_did_you_mean() -> None:
    problem = only_problem("name: x\npipeline:\n  - prompt: a\nbudget:\n  maxToken: 5\n")
    assert str(problem) == (
        "loops/x.yaml:5:3: unknown key 'maxToken' (budget.maxToken) Hint: did you mean 'maxTokens'?"
    )


def test_a_misspelt_step_kind_gets_a_hint() -> None:
    problem = only_problem("name: x\npipeline:\n  - promt: a\n")
    assert problem.path == "pipeline[0]"
    assert problem.hint == "unknown key 'promt': did you mean 'prompt'?"


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(SpecError) as caught:
        load_loop(
            "name: x\npipeline:\n  - prompt: a\n    retries: many\nbudget:\n  maxCostUsd: free\n"
        )
    assert [p.path for p in caught.value.problems] == ["pipeline[0].retries", "budget.maxCostUsd"]


def test_a_duplicate_key_is_an_error() -> None:
    problem = only_problem("name: x\nname: y\npipeline:\n  - prompt: a\n")
    assert str(problem) == "loops/x.yaml:2:1: duplicate key 'name'"


def test_a_tab_in_the_indentation_is_explained() -> None:
    problem = only_problem("name: x\npipeline:\n\t- prompt: a\n")
    assert str(problem) == (
        "loops/x.yaml:3:1: YAML syntax error: a tab character cannot indent YAML "
        "Hint: indent with spaces only"
    )


def test_an_unclosed_quote_is_a_syntax_error_with_a_position() -> None:
    problem = only_problem('name: x\npipeline:\n  - prompt: "Review\n')
    assert (problem.code, problem.line) == ("yaml_syntax", 4)
    assert problem.message.startswith("YAML syntax error:")


def test_more_than_one_document_is_refused() -> None:
    problem = only_problem("name: x\npipeline:\n  - prompt: a\n---\nname: y\n")
    assert str(problem) == (
        "loops/x.yaml:4:1: the file holds more than one YAML document (one loop per file)"
    )


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_an_empty_file_is_refused(text: str) -> None:
    problem = only_problem(text)
    assert problem.code in ("empty", "not_a_mapping")
    assert problem.file == "loops/x.yaml"


def test_a_file_that_is_not_utf8_is_refused() -> None:
    problem = only_problem(b"name: caf\xe9\n")
    assert problem.message.startswith("the file is not UTF-8 text")


def test_anchors_aliases_and_merge_keys_work_for_plain_data() -> None:
    loop = load_loop(
        "name: x\npipeline:\n  - &first\n    prompt: a\n    timeout: 30\n"
        "  - <<: *first\n    prompt: b\n"
    )
    second = loop.pipeline[1]
    assert isinstance(second, spec.AgentStep)
    assert (second.prompt, second.timeout) == ("b", 30)


def test_dates_stay_text() -> None:
    loop = load_loop("name: x\ndescription: 2026-11-24\npipeline:\n  - prompt: a\n")
    assert loop.description == "2026-11-24"


def test_format_path_quotes_keys_that_are_not_identifiers() -> None:
    assert format_path(("pipeline", 0, "parallel", 2, "prompt")) == "pipeline[0].parallel[2].prompt"
    assert format_path(("subagents", "ci-verifier", "model")) == "subagents['ci-verifier'].model"


def test_parse_remembers_positions_of_values_and_keys() -> None:
    doc = parse("name: x\npipeline:\n  - prompt: a\n", "f.yaml")
    assert doc.position(("pipeline", 0, "prompt")) == (3, 13)
    assert doc.position(("pipeline", 0, "prompt"), key=True) == (3, 5)
    assert doc.position(("pipeline", 0, "missing")) == (3, 5)


def test_dump_is_canonical_yaml() -> None:
    text = dump(
        load_loop(
            'name: x\npipeline:\n  - {label: A, prompt: "line one\\nline two\\n"}\n'
            "trigger: {secretEnv: S, event: push, type: webhook}\n"
        )
    )
    assert text == (
        "name: x\n"
        "trigger:\n"
        "  type: webhook\n"
        "  event: push\n"
        "  secretEnv: S\n"
        "pipeline:\n"
        "  - prompt: |\n"
        "      line one\n"
        "      line two\n"
        "    label: A\n"
    )


def test_dump_never_folds_a_long_value() -> None:
    long = "Review this pull request for bugs " * 10
    text = dump(load_loop(f"name: x\ndescription: {long.strip()}\npipeline:\n  - prompt: a\n"))
    assert f"description: {long.strip()}\n" in text


def test_dump_quotes_strings_that_yaml_would_read_as_something_else() -> None:
    loop = load_loop("name: x\ndescription: 'yes'\npipeline:\n  - prompt: '123'\n")
    text = dump(loop)
    assert load_loop(text) == loop
    assert "description: 'yes'" in text


def test_a_key_is_its_text_even_when_yaml_11_would_read_a_boolean() -> None:
    problem = only_problem("name: x\non: push\npipeline:\n  - prompt: a\n")
    assert str(problem) == "loops/x.yaml:2:1: unknown key 'on' (on)"


def test_plain_keys_of_free_form_maps_stay_text_and_round_trip() -> None:
    text = (
        "name: x\npipeline:\n  - prompt: a\n    connectors: [api]\nconnectors:\n  api:\n"
        "    type: http\n    baseUrl: https://example.com\n    headers:\n"
        "      yes: 'no'\n      404: 'not found'\n"
    )
    loop = load_loop(text)
    assert loop.connectors["api"].headers == {"yes": "no", "404": "not found"}  # type: ignore[union-attr]
    assert load_loop(dump(loop)) == loop


def test_a_boolean_is_not_a_number() -> None:
    problem = only_problem("name: x\npipeline:\n  - prompt: a\nbudget:\n  maxTokens: true\n")
    assert str(problem) == "loops/x.yaml:5:14: expected a whole number, got True (budget.maxTokens)"


def test_text_is_not_a_number_even_when_it_looks_like_one() -> None:
    problem = only_problem("name: x\npipeline:\n  - prompt: a\n    retries: '2'\n")
    assert (
        str(problem) == "loops/x.yaml:4:14: expected a whole number, got '2' (pipeline[0].retries)"
    )


def test_a_step_of_two_kinds_is_explained() -> None:
    problem = only_problem("name: x\npipeline:\n  - prompt: a\n    parallel:\n      - prompt: b\n")
    assert problem.message == "a step holds one kind only: 'prompt' cannot be added to this one"
    assert problem.path == "pipeline[0].prompt"
    assert problem.hint is not None and problem.hint.startswith("split it into two steps")

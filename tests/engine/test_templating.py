"""Prompts and conditions in the Jinja2 sandbox: what they can read and what they cannot."""

from __future__ import annotations

import pytest
from jinja2 import UndefinedError
from jinja2.exceptions import SecurityError

from loopkit.templating import compile_condition, compile_prompt


def render(source: str, **context: object) -> str:
    return compile_prompt(source)(context)


def test_a_prompt_reads_mapping_keys_as_attributes_and_items() -> None:
    inputs = {"repo": "acme/api", "nested": {"depth": 2}}
    assert render("{{ inputs.repo }} {{ inputs['repo'] }}", inputs=inputs) == "acme/api acme/api"
    assert render("{{ inputs.nested.depth + 1 }}", inputs=inputs) == "3"


def test_a_missing_key_is_an_error_naming_it() -> None:
    with pytest.raises(UndefinedError, match="has no attribute 'nope'"):
        render("{{ inputs.nope }}", inputs={"repo": "x"})


def test_a_key_named_like_a_dict_method_still_reads_the_method_as_jinja_does() -> None:
    data = {"items": "shadowed", "a": 1}
    assert render("{{ data['items'] }}|{{ data.items() | list | length }}", data=data) == (
        "shadowed|2"
    )


def test_the_sandbox_refuses_python_internals_and_mutation() -> None:
    with pytest.raises(SecurityError):
        render("{{ inputs.__class__.__mro__ }}", inputs={})
    with pytest.raises(SecurityError):
        render("{{ inputs.update({'a': 1}) }}", inputs={})
    with pytest.raises(SecurityError):
        render("{{ ''.__class__.__base__.__subclasses__() }}")


def test_a_condition_reads_step_outputs_by_label() -> None:
    when = compile_condition("steps['Bug Review'].output | length > 0")
    assert when(steps={"Bug Review": {"output": "found one"}}) is True
    assert when(steps={"Bug Review": {"output": ""}}) is False

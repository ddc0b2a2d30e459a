"""Templates are bounded: a size limit, a render time limit, and numbers a YAML file may hold."""

from __future__ import annotations

import time
from typing import Any

import pytest
from jinja2 import TemplateError

from loopkit.engine import RunOptions, run_loop
from loopkit.errors import Problem, SpecError
from loopkit.llm import ScriptedLLM
from loopkit.memory import InMemoryStore
from loopkit.templating import (
    MAX_RENDER_SECONDS,
    TemplateLimitError,
    compile_condition,
    compile_prompt,
)
from loopkit.yamlio import load_loop, loop_from_data

NESTED_RANGES = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


def refused(source: str) -> str:
    with pytest.raises(TemplateLimitError) as caught:
        compile_prompt(source)({})
    return str(caught.value.message)


def too_big(size: str, what: str) -> str:
    return (
        f"would build a value of {size} characters (with {what}); values are limited to 1,000,000"
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ 'x' * 200000000 }}", too_big("200,000,000", "*")),
        ("{{ 200000000 * 'x' }}", too_big("200,000,000", "*")),
        ("{{ [0] * 200000000 }}", too_big("200,000,000", "*")),
        ("{{ 'x'|center(2000000000) }}", too_big("2,000,000,000", "center")),
        ("{{ ('x\\n' * 100000)|indent(100) }}", too_big("10,200,100", "indent")),
        ("{{ '%999999999s' % 'x' }}", too_big("999,999,999", "a format field")),
        ("{{ '%999999999s'|format('x') }}", too_big("999,999,999", "a format field")),
        ("{{ 'x'.ljust(10 ** 9) }}", too_big("1,000,000,000", "ljust")),
        (
            "{% set a = 'x' * 1000 %}{{ a.replace('x', a).replace('x', a) }}",
            too_big("1,000,000,000", "replace"),
        ),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(40) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            too_big("1,048,576", "~"),
        ),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(40) %}"
            "{% set ns.s = ns.s + ns.s %}{% endfor %}",
            too_big("1,048,576", "+"),
        ),
        ("{{ ['x' * 600000, 'y' * 600000]|join }}", too_big("1,200,000", "join")),
        (
            "{% set big = 'x' * 999999 %}{{ ([{'a': big}] * 1000)|join(attribute='a') }}",
            too_big("999,999,000", "join"),
        ),
        ("{{ 2 ** 100000000 }}", "would build an integer of more than 4,000 digits"),
        ("{{ 10 ** 5000 }}", "would build an integer of more than 4,000 digits"),
        ("{{ lipsum(100000000) }}", "lipsum() makes at most 100 paragraphs"),
        (
            "{{ range(100000)|join }}{{ range(100000)|join }}{{ range(100000)|join }}",
            "rendered more than 1,000,000 characters (templates are limited to 1,000,000)",
        ),
    ],
)
def test_a_value_past_the_size_limit_is_refused_before_it_is_built(
    source: str, message: str
) -> None:
    assert refused(source) == message


def test_ordinary_templates_render_as_before() -> None:
    source = (
        "{% for x in 'ab' %}{{ loop.index }}{{ x }}{{ loop.length }}{% endfor %}|"
        "{{ range(3)|list }}|{{ range(5)|length }}|{{ 3 in range(5) }}|{{ range(4)|reverse|list }}|"
        "{{ range(10)[2:4]|list }}|{{ 7 % 3 }}|{{ 'a' ~ 1 }}|{{ '%3s'|format('x') }}|"
        "{{ 2 ** 10 }}|{{ 'ab' * 3 }}|{{ [1] + [2] }}|{{ 'x'|center(5) }}|{{ ['a', 'b']|join(',') }}|"
        "{{ [{'n': 1}, {'n': 2}]|join('+', attribute='n') }}"
    )
    assert compile_prompt(source)({}) == (
        "1a22b2|[0, 1, 2]|5|True|[3, 2, 1, 0]|[2, 3]|1|a1|  x|1024|ababab|[1, 2]|  x  |a,b|1+2"
    )


def test_nested_loops_stop_at_the_render_time_limit() -> None:
    started = time.monotonic()
    assert refused(NESTED_RANGES) == "took more than 2 s to render (templates are limited to 2 s)"
    assert MAX_RENDER_SECONDS <= time.monotonic() - started < MAX_RENDER_SECONDS + 1.5


def test_a_condition_stops_at_the_render_time_limit() -> None:
    slow = compile_condition("([range(100000)] * 100000) | map('sum') | sum > 0")
    started = time.monotonic()
    with pytest.raises(TemplateError, match="took more than 2 s to render"):
        slow()
    assert time.monotonic() - started < MAX_RENDER_SECONDS + 1.5


def loop(text: str, **data: Any) -> Any:
    return loop_from_data(
        {"name": "bounded", "model": "m", "pipeline": [{"prompt": text, "label": "Big"}], **data}
    )


async def test_a_prompt_that_multiplies_a_huge_string_fails_its_step_with_the_limit() -> None:
    llm = ScriptedLLM()
    result = await run_loop(loop("Say {{ 'x' * 200000000 }}"), llm, store=InMemoryStore())
    assert (result.status, result.error_code, result.error) == (
        "failed",
        "template_limit",
        "pipeline[0]: the prompt template " + too_big("200,000,000", "*"),
    )
    assert llm.requests == []


async def test_a_prompt_with_nested_ranges_fails_within_the_time_limit() -> None:
    started = time.monotonic()
    result = await run_loop(loop(NESTED_RANGES), ScriptedLLM(), store=InMemoryStore())
    assert (result.status, result.error_code, result.error) == (
        "failed",
        "template_limit",
        "pipeline[0]: the prompt template took more than 2 s to render "
        "(templates are limited to 2 s)",
    )
    assert time.monotonic() - started < MAX_RENDER_SECONDS + 2


async def test_a_run_past_its_duration_limit_ends_once_the_render_stops() -> None:
    bounded = loop(NESTED_RANGES, budget={"maxDurationMinutes": 0.01})
    started = time.monotonic()
    result = await run_loop(bounded, ScriptedLLM(), store=InMemoryStore(), options=RunOptions())
    assert result.status in ("failed", "budget_exceeded")
    assert time.monotonic() - started < MAX_RENDER_SECONDS + 2


async def test_a_template_dividing_by_zero_fails_its_step_not_the_process() -> None:
    result = await run_loop(loop("{{ 1 // 0 }}"), ScriptedLLM(), store=InMemoryStore())
    assert (result.status, result.error_code, result.error) == (
        "failed",
        "template_error",
        "pipeline[0]: the prompt template failed: integer division or modulo by zero",
    )


def test_an_integer_longer_than_python_converts_is_a_positioned_error() -> None:
    text = f"name: huge\npipeline:\n  - prompt: a\n    retries: {'9' * 5000}\n"
    with pytest.raises(SpecError) as caught:
        load_loop(text, "loops/huge.yaml")
    assert caught.value.problems == [
        Problem(
            "this number is too large (5,000 characters); numbers in a loop file are limited "
            "to 4,000 digits",
            file="loops/huge.yaml",
            line=4,
            column=14,
            code="invalid_number",
            hint="quote it to keep it as text",
        )
    ]


def test_a_huge_hexadecimal_integer_is_refused_too_and_quoted_digits_are_text() -> None:
    with pytest.raises(SpecError) as caught:
        load_loop(f"name: hex\npipeline:\n  - prompt: a\n    retries: 0x{'f' * 5000}\n")
    assert caught.value.problems[0].code == "invalid_number"
    digits = "9" * 5000
    quoted = load_loop(f"name: text\npipeline:\n  - prompt: '{digits}'\n")
    assert quoted.pipeline[0].prompt == digits

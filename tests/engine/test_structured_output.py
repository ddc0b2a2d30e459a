"""Structured output (issue 12, point 4): a step with ``output: {schema: ...}`` is parsed,
validated, retried with the validation error and handed on as its parsed value;
against the real OpenAI-compatible test server, requests inspected."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from llm_server import LLMServer, Reply

from loopkit import spec
from loopkit.engine import RunOptions, run_loop
from loopkit.llm import DryRunProvider, LiteLLMProvider
from loopkit.memory import InMemoryStore
from loopkit.sinks import ListSink
from loopkit.structured import check, find_json, minimal_instance
from loopkit.yamlio import loop_from_data

MODEL = "openai/test"

SEVERITY = {
    "type": "object",
    "required": ["severity"],
    "properties": {"severity": {"enum": ["low", "high"]}, "reason": {"type": "string"}},
}


@pytest.fixture(scope="module")
def server() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh(server: LLMServer) -> None:
    server.reset()


def triage_loop(**classify: Any) -> spec.Loop:
    return loop_from_data(
        {
            "name": "triage",
            "model": MODEL,
            "pipeline": [
                {
                    "prompt": "Classify the incident.",
                    "label": "Classify",
                    "output": {"schema": SEVERITY},
                    **classify,
                },
                {
                    "when": "steps['Classify'].output.severity == 'high'",
                    "then": [
                        {
                            "prompt": "Page on-call: {{ steps['Classify'].output.severity }}.",
                            "label": "Escalate",
                        }
                    ],
                    "else": [{"prompt": "Queue the ticket.", "label": "Queue"}],
                },
            ],
        }
    )


async def run(server: LLMServer, loop: spec.Loop, **kwargs: Any) -> tuple[Any, ListSink]:
    sink = ListSink()
    options = kwargs.pop("options", None) or RunOptions(retry_base_delay=0.01)
    result = await run_loop(
        loop, LiteLLMProvider(api_base=server.url), sinks=[sink], options=options, **kwargs
    )
    return result, sink


async def test_later_steps_and_when_read_the_parsed_value_of_a_fenced_answer(
    server: LLMServer,
) -> None:
    server.when("Classify", Reply('Here it is:\n```json\n{"severity": "high"}\n```\nDone.'))
    result, sink = await run(server, triage_loop())
    assert result.status == "succeeded"
    assert result.outputs["Classify"] == '{"severity": "high"}'
    assert server.count("Page on-call: high.") == 1
    assert server.count("Queue the ticket.") == 0
    (classify,) = [e for e in sink.of_type("step_finished") if e.label == "Classify"]
    assert classify.output == '{"severity": "high"}'
    first = server.requests[0].body
    assert first["messages"][-1]["content"] == (
        "Classify the incident.\n\nAnswer with one JSON object matching this JSON Schema:\n"
        + json.dumps(SEVERITY)
    )


async def test_an_invalid_answer_is_sent_back_with_its_validation_error_and_asked_again(
    server: LLMServer,
) -> None:
    server.when("Classify", Reply('{"severity": "urgent"}'), times=1)
    server.when("Classify", Reply('{"severity": "low"}'))
    result, sink = await run(server, triage_loop())
    assert result.status == "succeeded"
    assert result.outputs["Classify"] == '{"severity": "low"}'
    assert server.count("Queue the ticket.") == 1
    retry = server.requests[1].body["messages"]
    assert retry[-2:] == [
        {"role": "assistant", "content": '{"severity": "urgent"}'},
        {
            "role": "user",
            "content": "Your answer does not match the JSON Schema: "
            "$.severity: 'urgent' is not one of ['low', 'high']\n"
            "Answer again with only the corrected JSON.",
        },
    ]
    (failed,) = sink.of_type("step_failed")
    assert (failed.code, failed.attempt, failed.will_retry) == ("invalid_output", 1, True)
    assert failed.error == (
        "Classify: the answer does not match the step's output schema: "
        "$.severity: 'urgent' is not one of ['low', 'high']"
    )


async def test_prose_instead_of_json_fails_the_step_after_its_retries(server: LLMServer) -> None:
    server.when("Classify", Reply("I think it is high."))
    result, sink = await run(server, triage_loop(retries=1))
    assert (result.status, result.error_code) == ("failed", "invalid_output")
    assert result.error == (
        "Classify: the answer does not match the step's output schema: "
        "the answer is not JSON (it reads 'I think it is high.') (after 2 answers)"
    )
    assert len(server.requests) == 2
    assert [e.will_retry for e in sink.of_type("step_failed")] == [True, False]


async def test_several_errors_are_named_with_their_paths(server: LLMServer) -> None:
    schema = {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {
                "type": "array",
                "items": {"type": "object", "required": ["name"], "properties": {"n": {}}},
            },
            "count": {"type": "integer"},
        },
    }
    value, problem = check('{"items": [{"n": 1}, {"name": "b"}], "count": "two"}', schema)
    assert value is None
    assert (
        problem
        == "$.count: 'two' is not of type 'integer'; $.items[0]: 'name' is a required property"
    )


async def test_a_resumed_run_hands_on_the_same_parsed_value(server: LLMServer) -> None:
    store = InMemoryStore()
    server.when("Classify", Reply('{"severity": "high", "reason": "db down"}'), times=1)
    server.when("Page on-call", Reply(status=401, error="bad key"), times=1)
    first, _ = await run(server, triage_loop(), store=store)
    assert first.status == "failed"
    server.requests.clear()
    resumed, sink = await run(
        server,
        triage_loop(),
        store=store,
        options=RunOptions(run_id=first.id, resume=True),
    )
    assert resumed.status == "succeeded"
    assert [r.text for r in server.completed()] == ["Page on-call: high."]
    (classify,) = [e for e in sink.of_type("step_finished") if e.label == "Classify"]
    assert classify.resumed and classify.output == '{"severity": "high", "reason": "db down"}'


async def test_an_invalid_schema_fails_the_step_naming_the_mistake(server: LLMServer) -> None:
    loop = loop_from_data(
        {
            "name": "bad",
            "model": MODEL,
            "pipeline": [{"prompt": "Go.", "label": "Go", "output": {"schema": {"type": 5}}}],
        }
    )
    result, _ = await run(server, loop)
    assert (result.status, result.error_code) == ("failed", "invalid_schema")
    assert result.error == (
        "Go: the step's output schema is not a valid JSON Schema: "
        "$.type: 5 is not valid under any of the given schemas"
    )


async def test_a_dry_run_answers_a_schema_step_with_a_value_the_schema_accepts() -> None:
    schema = {
        "type": "object",
        "required": ["severity", "labels", "owner", "score", "count"],
        "properties": {
            "severity": {"enum": ["high", "low"]},
            "labels": {"type": "array", "minItems": 2, "items": {"type": "string", "minLength": 3}},
            "owner": {
                "type": "object",
                "required": ["team"],
                "properties": {"team": {"$ref": "#/$defs/team"}},
            },
            "score": {"type": "number", "exclusiveMinimum": 0},
            "count": {"type": ["integer", "null"], "minimum": 2},
            "note": {"type": "string"},
        },
        "$defs": {"team": {"anyOf": [{"const": "infra"}, {"type": "string"}]}},
    }
    loop = loop_from_data(
        {
            "name": "dry",
            "pipeline": [
                {"prompt": "Classify.", "label": "Classify", "output": {"schema": schema}},
                {
                    "when": "steps['Classify'].output.severity == 'high'",
                    "then": [{"prompt": "Escalate.", "label": "Escalate"}],
                },
            ],
        }
    )
    result = await run_loop(loop, DryRunProvider())
    assert result.status == "succeeded"
    value = json.loads(result.outputs["Classify"])
    jsonschema.validate(value, schema)
    assert value == {
        "severity": "high",
        "labels": ["xxx", "xxx"],
        "owner": {"team": "infra"},
        "score": 1,
        "count": 2,
    }
    assert "Escalate" in result.outputs


def test_minimal_instances_validate_for_arrays_and_all_of() -> None:
    schemas: list[dict[str, Any]] = [
        {"type": "array", "items": {"type": "integer", "minimum": 3}, "minItems": 1},
        {
            "allOf": [
                {"type": "object", "required": ["a"], "properties": {"a": {"type": "boolean"}}},
                {"required": ["b"], "properties": {"b": {"type": "integer"}}},
            ]
        },
        {"type": "string"},
    ]
    values = [minimal_instance(s) for s in schemas]
    assert values == [[3], {"a": False, "b": 0}, ""]
    for value, schema in zip(values, schemas, strict=True):
        jsonschema.validate(value, schema)


def test_json_is_found_in_fences_and_prose() -> None:
    assert find_json("```\n[1, 2]\n```") == [1, 2]
    assert find_json('The verdict: {"pass": true} as asked.') == {"pass": True}
    assert find_json(" 42 ") == 42

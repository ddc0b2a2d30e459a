"""The ``plan`` step: a planner chooses steps among allowed templates, within limits.

Runs go through LiteLLM to the local OpenAI-compatible test server, which
answers the planner (recognised by its "Allowed steps" instructions) and the
executors (recognised by their rendered template prompts).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from llm_server import LLMServer, Reply

from loopkit import spec
from loopkit.engine import RunOptions, run_loop
from loopkit.errors import SpecError
from loopkit.llm import DryRunProvider, LiteLLMProvider
from loopkit.sinks import ListSink
from loopkit.yamlio import dump, load_loop, loop_from_data

PLANNER = "Allowed steps"


@pytest.fixture(scope="module")
def server() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh(server: LLMServer) -> None:
    server.reset()


def plan_reply(steps: list[tuple[str, str]], done: bool, summary: str | None = None) -> Reply:
    return Reply(
        json.dumps(
            {
                "steps": [{"template": t, "input": i} for t, i in steps],
                "done": done,
                "summary": summary,
            }
        )
    )


def triage_loop(**plan: Any) -> spec.Loop:
    step = {
        "plan": "Triage issue {{ inputs.issue }}",
        "label": "Triage",
        "planner": "lead",
        "executor": "worker",
        "templates": {
            "search": {
                "description": "Search the code",
                "prompt": "Search the code for: {{ input }}",
            },
            "reproduce": {
                "description": "Reproduce a bug",
                "prompt": "Reproduce {{ input }} (task: {{ task }}; {{ results | length }} results so far)",
            },
        },
        **plan,
    }
    return loop_from_data(
        {
            "name": "planner-loop",
            "model": "openai/test",
            "inputs": {"issue": {"default": "#42"}},
            "subagents": {
                "lead": {"role": "planner", "prompt": "You are the triage lead."},
                "worker": {"role": "executor", "prompt": "You do one task well."},
            },
            "pipeline": [
                step,
                {"prompt": "Report: {{ steps['Triage'].output }}", "label": "Report"},
            ],
        }
    )


async def run(server: LLMServer, loop: spec.Loop, **kwargs: Any) -> tuple[Any, ListSink]:
    sink = ListSink()
    result = await run_loop(
        loop,
        LiteLLMProvider(api_base=server.url),
        sinks=[sink],
        options=RunOptions(retry_base_delay=0.01),
        **kwargs,
    )
    return result, sink


def planner_requests(server: LLMServer) -> list[Any]:
    return [r for r in server.requests if PLANNER in r.text]


async def test_a_planner_plans_three_steps_runs_them_and_stops_at_its_iteration_limit(
    server: LLMServer,
) -> None:
    server.when(
        PLANNER,
        plan_reply(
            [
                ("search", "the login handler"),
                ("reproduce", "the 500"),
                ("search", "session expiry"),
            ],
            done=False,  # asks for more after these
        ),
    )
    server.default = Reply("step done")
    loop = triage_loop(maxSteps=3, maxIterations=1)

    result, sink = await run(server, loop)

    assert result.status == "succeeded", result.error
    assert len(planner_requests(server)) == 1
    executed = [e.label for e in sink.of_type("step_finished") if e.kind == "agent"]
    assert executed == [
        "Triage 1.1 search",
        "Triage 1.2 reproduce",
        "Triage 1.3 search",
        "Report",
    ]
    (made,) = [e.as_dict() for e in sink.of_type("plan_made")]
    assert made["limit_reached"] is True
    assert made["done"] is False
    assert (made["iteration"], made["max_iterations"]) == (1, 1)
    assert made["reason"] == (
        "the planner asked for more after 1 of 1 plan(s) (maxIterations): these steps run, "
        "then the plan step ends"
    )
    assert [s["template"] for s in made["steps"]] == ["search", "reproduce", "search"]
    texts = [r.text for r in server.requests]
    assert "Search the code for: the login handler" in texts[1]
    assert "Reproduce the 500 (task: Triage issue #42; 1 results so far)" in texts[2]
    assert "You do one task well." in texts[1]  # the executor subagent's prompt
    assert "You are the triage lead." in texts[0]  # the planner subagent's prompt
    plan_done = [e for e in sink.of_type("step_finished") if e.kind == "plan"]
    assert plan_done[0].output.startswith("## Triage 1.1 search\nstep done")
    assert plan_done[0].agents == 3
    assert result.requests == 5  # 1 plan + 3 executors + Report


async def test_the_planner_sees_results_and_finishes_with_a_summary(server: LLMServer) -> None:
    server.when(PLANNER, plan_reply([("search", "auth")], done=False), times=1)
    server.when(PLANNER, plan_reply([], done=True, summary="It is the session cookie."), times=1)
    server.when("Search the code for: auth", Reply("found it in cookie.py"))

    result, sink = await run(server, triage_loop(maxIterations=3))

    assert result.status == "succeeded", result.error
    second = planner_requests(server)[1].text
    assert "Results so far:" in second
    assert "### Triage 1.1 search (search: auth)\nfound it in cookie.py" in second
    assert result.outputs["Triage"] == "It is the session cookie."
    assert [e.done for e in sink.of_type("plan_made")] == [False, True]
    assert "Report: It is the session cookie." in server.requests[-1].text


async def test_an_invalid_plan_is_sent_back_once_with_the_problem(server: LLMServer) -> None:
    server.when(PLANNER, plan_reply([("deploy", "prod")], done=True), times=1)
    server.when(PLANNER, plan_reply([("search", "x")], done=True), times=1)

    result, _ = await run(server, triage_loop())

    assert result.status == "succeeded", result.error
    retry = planner_requests(server)[1].body["messages"]
    assert retry[-1]["content"] == (
        "That is not a valid plan: steps[0] uses the template 'deploy', which is not allowed "
        "(choose among: search, reproduce). Answer again."
    )


async def test_two_invalid_plans_in_a_row_fail_the_step(server: LLMServer) -> None:
    server.when(PLANNER, Reply("I think we should search."))

    result, _ = await run(server, triage_loop())

    assert result.status == "failed"
    assert result.error_code == "invalid_plan"
    assert result.error == (
        "Triage: the planner's answer was not a valid plan twice in a row "
        "(the answer is not JSON (Expecting value at character 0))"
    )


async def test_a_plan_longer_than_max_steps_is_refused(server: LLMServer) -> None:
    too_long = plan_reply([("search", str(i)) for i in range(3)], done=True)
    server.when(PLANNER, too_long)

    result, _ = await run(server, triage_loop(maxSteps=2))

    assert result.status == "failed"
    assert "the plan has 3 steps; at most 2 are allowed" in (result.error or "")
    assert len(planner_requests(server)) == 2


async def test_the_run_budget_stops_a_plan_midway(server: LLMServer) -> None:
    server.when(PLANNER, plan_reply([("search", "a"), ("search", "b"), ("search", "c")], done=True))
    loop = triage_loop()
    loop.budget = spec.Budget(max_model_calls=3)

    result, sink = await run(server, loop)

    assert result.status == "budget_exceeded"
    assert result.limit == "maxModelCalls"
    assert len(server.completed()) == 3  # the plan and two of its steps
    assert [e.label for e in sink.of_type("step_finished")] == [
        "Triage 1.1 search",
        "Triage 1.2 search",
    ]


async def test_model_text_in_a_plan_is_never_rendered_as_a_template(server: LLMServer) -> None:
    server.when(
        PLANNER, plan_reply([("search", "{{ inputs.issue }} {% if true %}x{% endif %}")], done=True)
    )

    result, _ = await run(server, triage_loop())

    assert result.status == "succeeded", result.error
    assert (
        "Search the code for: {{ inputs.issue }} {% if true %}x{% endif %}"
        in server.requests[1].text
    )


async def test_a_dry_run_plans_each_template_once() -> None:
    sink = ListSink()

    result = await run_loop(triage_loop(), DryRunProvider(), sinks=[sink])

    assert result.status == "succeeded", result.error
    (made,) = sink.of_type("plan_made")
    assert [s["label"] for s in made.steps] == ["Triage 1.1 search", "Triage 1.2 reproduce"]
    assert made.done is True


def test_a_plan_step_round_trips_through_yaml() -> None:
    text = dump(triage_loop(maxSteps=4, maxIterations=2))

    assert (
        "  - plan: Triage issue {{ inputs.issue }}\n    label: Triage\n    planner: lead\n" in text
    )
    assert "    maxSteps: 4\n    maxIterations: 2\n" in text
    assert dump(load_loop(text)) == text


def test_validation_checks_the_planner_roles_and_the_templates() -> None:
    with pytest.raises(SpecError) as caught:
        load_loop(
            """\
name: bad-plan
subagents:
  worker: {role: executor}
pipeline:
  - plan: Do it
    planner: worker
    executor: nobody
    templates:
      fetch:
        description: Fetch a page
        prompt: "Fetch {{ input"
        connectors: [web]
""",
            "bad.yaml",
        )

    assert [(p.path, p.code, p.message) for p in caught.value.problems] == [
        (
            "pipeline[0].planner",
            "wrong_role",
            "the planner 'worker' has role 'executor', not 'planner'",
        ),
        ("pipeline[0].executor", "unknown_subagent", "subagent 'nobody' is not defined"),
        (
            "pipeline[0].templates['fetch'].prompt",
            "invalid_prompt",
            "the prompt is not a valid template: unexpected end of template, expected 'end of print statement'. (template line 1)",
        ),
        (
            "pipeline[0].templates['fetch'].connectors[0]",
            "unknown_connector",
            "connector 'web' is not defined",
        ),
    ]
    assert caught.value.problems[0].line == 6


def test_a_plan_needs_at_least_one_template() -> None:
    with pytest.raises(SpecError) as caught:
        load_loop("name: p\npipeline:\n  - plan: Do it\n    templates: {}\n")

    (problem,) = caught.value.problems
    assert problem.path == "pipeline[0].templates"


async def test_a_plan_maker_plans_again_with_the_checkers_feedback(server: LLMServer) -> None:
    from llm_server import verdict

    checker = "You are an adversarial verifier"
    server.when(checker, verdict(False, 0.3, ["no root cause given"]), times=1)
    server.when(checker, verdict(True, 0.9))
    server.when(PLANNER, plan_reply([("search", "logs")], done=True))
    data = triage_loop().model_dump(by_alias=True, exclude_none=True)
    data["verify"] = {"maker": ["Triage"], "checker": "Adversarial Verifier", "maxRounds": 2}

    result, sink = await run(server, loop_from_data(data))

    assert result.status == "succeeded", result.error
    assert result.rounds == 2
    second_plan = planner_requests(server)[1].text
    assert (
        "A reviewer rejected the previous result. Address every issue:\n- no root cause given"
        in second_plan
    )
    executed = [e.label for e in sink.of_type("step_finished") if e.kind == "agent"]
    assert executed == ["Triage 1.1 search", "Report", "Triage r2 1.1 search"]


async def test_a_resumed_run_reuses_its_plan_and_finished_planned_steps() -> None:
    from loopkit.errors import ProviderError
    from loopkit.llm import ScriptedLLM
    from loopkit.memory import InMemoryStore

    store = InMemoryStore()
    loop = triage_loop()
    plan = json.dumps(
        {
            "steps": [
                {"template": "search", "input": "a"},
                {"template": "reproduce", "input": "b"},
            ],
            "done": True,
        }
    )
    broken = ScriptedLLM([plan, "searched", ProviderError("invalid key", status_code=401)])
    first = await run_loop(loop, broken, store=store)
    assert (first.status, first.error) == ("failed", "invalid key")

    fixed = ScriptedLLM(["reproduced", "report"])
    again = await run_loop(
        loop, fixed, store=store, options=RunOptions(run_id=first.id, resume=True)
    )

    assert again.status == "succeeded", again.error
    assert [r.step for r in fixed.requests] == ["Triage 1.2 reproduce", "Report"]
    assert (
        again.outputs["Triage"]
        == "## Triage 1.1 search\nsearched\n\n## Triage 1.2 reproduce\nreproduced"
    )

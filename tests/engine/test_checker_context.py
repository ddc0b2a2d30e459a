"""The checker sees what the makers saw (issue 12, point 5), and ``{{ round }}`` and
``{{ feedback }}`` render in a retry round, the feedback once; against the real
OpenAI-compatible test server, requests inspected."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llm_server import LLMServer, Reply, verdict

from loopkit import spec
from loopkit.engine import RunOptions, run_loop
from loopkit.engine.context import Feedback
from loopkit.engine.verify import VERDICT_INSTRUCTIONS
from loopkit.llm import LiteLLMProvider
from loopkit.sinks import ListSink
from loopkit.templating import environment
from loopkit.yamlio import loop_from_data

MODEL = "openai/test"
ARTICLE = "The quarterly report shows revenue up 12 % and costs flat."


@pytest.fixture(scope="module")
def server() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh(server: LLMServer) -> None:
    server.reset()


def summary_loop(prompt: str, **verify: Any) -> spec.Loop:
    return loop_from_data(
        {
            "name": "summary",
            "description": "Summarize an article faithfully.",
            "model": MODEL,
            "inputs": {"text": {"required": True}, "audience": {"default": "executives"}},
            "pipeline": [{"prompt": prompt, "label": "Summarizer"}],
            "verify": {"maker": "Summarizer", "checker": "Adversarial Verifier", **verify},
        }
    )


async def run(server: LLMServer, loop: spec.Loop, **inputs: Any) -> tuple[Any, ListSink]:
    sink = ListSink()
    result = await run_loop(
        loop,
        LiteLLMProvider(api_base=server.url),
        sinks=[sink],
        options=RunOptions(inputs=inputs),
    )
    return result, sink


async def test_the_checker_gets_the_rendered_instruction_the_inputs_and_the_output(
    server: LLMServer,
) -> None:
    server.when(lambda body: "adversarial" in body["messages"][0]["content"], verdict(True, 0.9))
    server.when("Summarize for", Reply("Revenue grew 12 %; costs were flat."))
    loop = summary_loop(
        "Summarize for {{ inputs.audience }}:\n{{ inputs.text }}"
        "{% if feedback %}\nFix: {{ feedback }}{% endif %}"
    )
    result, _ = await run(server, loop, text=ARTICLE)
    assert result.status == "succeeded"
    checker = server.requests[-1].body["messages"][1]["content"]
    assert checker == (
        "Task: Summarize an article faithfully.\n\n"
        "Inputs:\n"
        f"- text: {ARTICLE}\n"
        "- audience: executives\n\n"
        "## Summarizer\n"
        "Instruction:\n"
        f"Summarize for executives:\n{ARTICLE}\n"
        "Output:\n"
        "Revenue grew 12 %; costs were flat.\n\n" + VERDICT_INSTRUCTIONS
    )
    assert "{{" not in checker and "{%" not in checker


async def test_a_long_input_is_clipped_for_the_checker(server: LLMServer) -> None:
    server.when(lambda body: "adversarial" in body["messages"][0]["content"], verdict(True, 0.9))
    loop = summary_loop("Summarize the article.")
    await run(server, loop, text="a" * 1500)
    checker = server.requests[-1].body["messages"][1]["content"]
    assert f"- text: {'a' * 1000}... (500 more characters)\n" in checker


async def test_round_and_feedback_render_in_the_second_round_and_the_issues_come_once(
    server: LLMServer,
) -> None:
    def is_checker(body: dict[str, Any]) -> bool:
        return "adversarial" in body["messages"][0]["content"]

    server.when(is_checker, verdict(False, 0.3, ["too long", "no title"]), times=1)
    server.when(is_checker, verdict(True, 0.9))
    server.when("Round 1.", Reply("A long summary."))
    server.when("Round 2.", Reply("# Title\nShort."))
    loop = summary_loop(
        "Round {{ round }}. Summarize:\n{{ inputs.text }}"
        "{% if feedback %}\nFix these {{ feedback | length }} issues:\n{{ feedback }}{% endif %}",
        maxRounds=2,
    )
    result, _ = await run(server, loop, text=ARTICLE)
    assert (result.status, result.rounds) == ("succeeded", 2)
    makers = [r for r in server.requests if not is_checker(r.body)]
    assert len(makers) == 2
    second = makers[1].body["messages"][-1]["content"]
    assert second == (
        f"Round 2. Summarize:\n{ARTICLE}\n"
        "Fix these 2 issues:\n- too long\n- no title\n\n"
        "Your previous answer:\nA long summary."
    )
    assert second.count("too long") == 1
    checker = server.requests[-1].body["messages"][1]["content"]
    assert (
        f"Instruction:\nRound 2. Summarize:\n{ARTICLE}\n"
        "Fix these 2 issues:\n- too long\n- no title\nOutput:\n# Title\nShort.\n" in checker
    )


async def test_a_maker_whose_prompt_does_not_read_feedback_gets_the_issues_appended_once(
    server: LLMServer,
) -> None:
    def is_checker(body: dict[str, Any]) -> bool:
        return "adversarial" in body["messages"][0]["content"]

    server.when(is_checker, verdict(False, 0.3, ["too long", "no title"]), times=1)
    server.when(is_checker, verdict(True, 0.9))
    server.default = Reply("A summary.")
    result, _ = await run(server, summary_loop("Summarize the article.", maxRounds=2), text="x")
    assert result.status == "succeeded"
    second = [r for r in server.requests if not is_checker(r.body)][1]
    assert second.body["messages"][-1]["content"] == (
        "Summarize the article.\n\n"
        "A reviewer rejected the previous answer (round 1). Address every issue:\n"
        "- too long\n- no title\n\n"
        "Your previous answer:\nA summary."
    )


def test_feedback_renders_as_lines_and_still_behaves_as_a_list() -> None:
    template = environment().from_string(
        "{{ feedback }}|{{ feedback | length }}|{% for i in feedback %}[{{ i }}]{% endfor %}"
        "|{{ 'yes' if feedback else 'no' }}"
    )
    assert template.render(feedback=Feedback(["one", "two"])) == "- one\n- two|2|[one][two]|yes"
    assert template.render(feedback=Feedback()) == "|0||no"

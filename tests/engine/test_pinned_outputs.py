"""Pinned outputs (the editor's test runs): a pinned step is answered with its pin, no model call."""

from __future__ import annotations

from typing import Any

from loopkit.engine import RunOptions, run_loop_sync
from loopkit.llm import ScriptedLLM
from loopkit.memory import InMemoryStore
from loopkit.sinks import ListSink
from loopkit.yamlio import loop_from_data


def review_loop(**extra: Any) -> Any:
    return loop_from_data(
        {
            "name": "pinned",
            "model": "test-model",
            "pipeline": [
                {"prompt": "Find the bugs.", "label": "Find"},
                {"prompt": "Fix these: {{ steps['Find'].output }}", "label": "Fix"},
            ],
            **extra,
        }
    )


def test_a_pinned_step_is_not_sent_to_the_model_and_later_steps_read_its_pin() -> None:
    llm = ScriptedLLM(default="patched")
    sink = ListSink()
    result = run_loop_sync(
        review_loop(), llm, sinks=[sink], options=RunOptions(pinned={"Find": "bug in line 3"})
    )

    assert result.status == "succeeded"
    assert [r.messages[-1]["content"] for r in llm.requests] == ["Fix these: bug in line 3"]
    assert result.outputs == {"Find": "bug in line 3", "Fix": "patched"}
    finished = {e.label: e for e in sink.events if e.type == "step_finished"}
    assert (finished["Find"].pinned, finished["Find"].tokens.total, finished["Find"].cost) == (
        True,
        0,
        0.0,
    )
    assert finished["Find"].output == "bug in line 3"
    assert finished["Fix"].pinned is False
    started = [e for e in sink.events if e.type == "step_started" and e.label == "Find"]
    assert [e.pinned for e in started] == [True]
    assert result.requests == 1


def test_a_step_is_pinned_by_its_path_when_it_has_no_label() -> None:
    loop = loop_from_data(
        {
            "name": "p",
            "model": "m",
            "pipeline": [{"prompt": "a"}, {"prompt": "{{ steps['pipeline[0]'].output }}"}],
        }
    )
    llm = ScriptedLLM(default="second")
    result = run_loop_sync(loop, llm, options=RunOptions(pinned={"pipeline[0]": "first"}))

    assert [r.messages[-1]["content"] for r in llm.requests] == ["first"]
    assert result.outputs == {"pipeline[0]": "first", "pipeline[1]": "second"}


def test_a_pinned_structured_output_is_read_by_field_and_a_pinned_parallel_member_skips_its_call() -> (
    None
):
    loop = loop_from_data(
        {
            "name": "p",
            "model": "m",
            "pipeline": [
                {
                    "parallel": [
                        {
                            "prompt": "Rate it.",
                            "label": "Rate",
                            "output": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"score": {"type": "integer"}},
                                }
                            },
                        },
                        {"prompt": "Describe it.", "label": "Describe"},
                    ]
                },
                {"prompt": "Score {{ steps['Rate'].output.score }}", "label": "Report"},
            ],
        }
    )
    llm = ScriptedLLM(default="described")
    result = run_loop_sync(loop, llm, options=RunOptions(pinned={"Rate": '{"score": 7}'}))

    assert result.status == "succeeded"
    assert sorted(r.messages[-1]["content"] for r in llm.requests) == ["Describe it.", "Score 7"]


def test_a_run_that_does_not_remember_leaves_the_loops_memory_alone() -> None:
    store = InMemoryStore()
    run_loop_sync(review_loop(), ScriptedLLM(), store=store, options=RunOptions(remember=False))
    assert store.get_memory("pinned") == {}
    run_loop_sync(review_loop(), ScriptedLLM(), store=store)
    assert store.get_memory("pinned")["Fix"] == "ok"

"""The promise as a property: a loop that validates with no errors dry-runs to success.

Loops are generated with templates that reference what may or may not exist
when they render: inputs declared or not, steps that run before, after or
beside the step (a sibling in a parallel group), steps in a branch that may
not be taken, ``trigger.payload`` paths that the trigger's event has or has
not, memory keys, ``round`` and ``feedback``, and actions after verification
(``onPass`` / ``onFail``, a tool step) that read ``verification``. Whatever ``analyze`` accepts
must run: the dry run (no inputs, no payload, an in-memory store, approvals
granted as ``loopkit run --dry-run`` grants them) ends ``succeeded``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from loopkit.document import analyze
from loopkit.engine import RunOptions, StaticApprover, run_loop
from loopkit.llm import DryRunProvider
from loopkit.memory import InMemoryStore

LABELS = ["Fetch", "Review", "Summary", "Check", "Publish"]
INPUTS = ["diff", "repo", "limit", "strict"]

triggers = st.sampled_from(
    [
        None,
        {"type": "manual"},
        {"type": "cron", "schedule": "0 9 * * 1-5", "timezone": "Europe/Paris"},
        {"type": "webhook", "event": "pull_request", "actions": ["opened"]},
        {"type": "webhook", "event": "push"},
        {"type": "webhook", "event": "issues", "actions": ["labeled"]},
        {"type": "event", "loop": "nightly", "status": ["failed"]},
        {"type": "event", "event": "release.tagged"},
    ]
)

declared_inputs = st.dictionaries(
    st.sampled_from(INPUTS),
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["string", "number", "integer", "boolean"]),
            "required": st.booleans(),
        },
    ),
    max_size=3,
)

#: Paths read below ``trigger.payload``: some exist for some events, some for none.
PAYLOAD_PATHS = [
    "pull_request.number",
    "pull_request.title",
    "pull_request.head.sha",
    "pull_request.nope",
    "action",
    "ref",
    "commits[0].id",
    "issue.title",
    "label.name",
    "schedule",
    "due_time",
    "loop",
    "status",
    "data.version",
]


def references(labels: list[str]) -> st.SearchStrategy[str]:
    """Return template expressions a prompt or condition may read."""
    return st.one_of(
        st.sampled_from(INPUTS).map(lambda n: f"inputs.{n}"),
        st.sampled_from(labels).map(lambda label: f"steps['{label}'].output"),
        st.sampled_from(PAYLOAD_PATHS).map(lambda p: f"trigger.payload.{p}"),
        st.sampled_from(["memory.get('last_run')", "memory.last_run", "memory['Review']"]),
        st.sampled_from(["round", "feedback", "loop.name", "run.id", "run.round", "trigger.type"]),
    )


@st.composite
def prompts(draw: st.DrawFn, labels: list[str]) -> str:
    parts = ["Work."]
    for _ in range(draw(st.integers(0, 3))):
        ref = draw(references(labels))
        form = draw(st.sampled_from(["plain", "default", "if"]))
        if form == "plain":
            parts.append(f"{{{{ {ref} }}}}")
        elif form == "default":
            parts.append(f"{{{{ {ref} | default('none') }}}}")
        else:
            parts.append(f"{{% if {ref} is defined %}}{{{{ {ref} }}}}{{% endif %}}")
    if draw(st.booleans()):
        parts.append("{% if feedback %}Fix: {{ feedback }}{% endif %}")
    return " ".join(parts)


@st.composite
def conditions(draw: st.DrawFn, labels: list[str]) -> str:
    ref = draw(references(labels))
    return draw(
        st.sampled_from(
            [
                "true",
                f"{ref} is defined",
                f"{ref} != ''",
                f"({ref} | default('')) != ''",
            ]
        )
    )


@st.composite
def loops(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(1, len(LABELS)))
    labels = LABELS[:count]
    pipeline: list[dict[str, Any]] = []
    makers: list[str] = []
    for label in labels:
        kind = draw(st.sampled_from(["agent", "agent", "parallel", "when", "approve"]))
        if kind == "agent":
            pipeline.append({"prompt": draw(prompts(LABELS)), "label": label})
            makers.append(label)
        elif kind == "parallel":
            members = [
                {"prompt": draw(prompts(LABELS)), "label": f"{label} {n}"} for n in ("A", "B")
            ]
            pipeline.append({"parallel": members, "label": label})
        elif kind == "when":
            branch: dict[str, Any] = {
                "when": draw(conditions(LABELS)),
                "then": [{"prompt": draw(prompts(LABELS)), "label": f"{label} Then"}],
                "label": label,
            }
            if draw(st.booleans()):
                branch["else"] = [{"prompt": draw(prompts(LABELS)), "label": f"{label} Else"}]
            pipeline.append(branch)
        else:
            pipeline.append({"approve": draw(prompts(LABELS)), "label": label})
    data: dict[str, Any] = {"name": "generated", "pipeline": pipeline}
    trigger = draw(triggers)
    if trigger is not None:
        data["trigger"] = trigger
    inputs = draw(declared_inputs)
    if inputs:
        data["inputs"] = inputs
    if makers and draw(st.booleans()):
        data["verify"] = {"maker": makers[:2], "checker": "Adversarial Verifier", "maxRounds": 2}
    # Actions after verification: an agent, and a tool step whose arguments are templates.
    if draw(st.booleans()):
        on_pass: list[dict[str, Any]] = [
            {"prompt": draw(prompts(LABELS)) + " {{ verification.score }}", "label": "Deliver"}
        ]
        if draw(st.booleans()):
            data["connectors"] = {
                "api": {
                    "type": "http",
                    "baseUrl": "https://api.example.com",
                    "operations": {"post": {"method": "POST", "path": "/posts"}},
                }
            }
            on_pass.append(
                {
                    "tool": "api.post",
                    "label": "Post",
                    "arguments": {
                        "body": draw(prompts(LABELS)),
                        "value": f"{{{{ {draw(references(LABELS))} }}}}",
                        "passed": "{{ verification.passed }}",
                    },
                }
            )
        data["onPass"] = on_pass
    if "verify" in data and draw(st.booleans()):
        data["onFail"] = [{"prompt": "Explain: {{ verification.issues }}", "label": "Explain"}]
    return data


async def dry_run(loop: Any) -> Any:
    return await run_loop(
        loop,
        DryRunProvider(),
        store=InMemoryStore(),
        approver=StaticApprover(True, by="dry run"),
        options=RunOptions(),
    )


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(loops())
def test_a_loop_that_validates_dry_runs_to_success_with_no_arguments(data: dict[str, Any]) -> None:
    analysis = analyze(data)
    if not analysis.ok or analysis.loop is None:
        return  # the promise is about loops that validate
    note(analysis.yaml or "")
    result = asyncio.run(dry_run(analysis.loop))
    assert (result.status, result.error) == ("succeeded", None)

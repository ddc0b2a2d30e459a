"""Property tests: ``load(dump(m)) == m`` and ``dump(load(x))`` is idempotent."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopkit import lrs, spec
from loopkit.errors import SpecError
from loopkit.templating import TemplateSyntaxError, check_prompt
from loopkit.yamlio import dump, load_loop, loop_from_data, to_data

# Text as people (and models) write it: any printable character, including
# YAML indicators, quotes, colons, leading/trailing spaces and line breaks.
_FRAGMENTS = [
    "\n",
    ": ",
    "#",
    "- ",
    "'",
    '"',
    "{{ loop.name }}",
    "{",
    "[",
    "&a",
    "*a",
    "!",
    "%",
    "@",
    "`",
    "yes",
    "~",
    "0x1F",
    "1e3",
    "2026-11-24",
    "  ",
    "\t",
    "null",
    "|",
    ">",
    "\\",
]
_PLAIN = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufeff{}"),
    max_size=12,
)


def _is_template_safe(value: str) -> bool:
    if value.strip() == "":
        return False
    try:
        check_prompt(value)
    except TemplateSyntaxError:
        return False
    return True


text = (
    st.lists(st.one_of(_PLAIN, st.sampled_from(_FRAGMENTS)), min_size=1, max_size=6)
    .map("".join)
    .filter(_is_template_safe)
)
names = st.from_regex(r"\A[a-z][a-z0-9-]{0,20}\Z")
labels = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij _-", min_size=1, max_size=12
).filter(lambda s: s.strip() == s and s != "")
numbers = st.one_of(
    st.integers(1, 10**7), st.floats(0.01, 10**4, allow_nan=False, allow_infinity=False)
)


def _agent(label: str | None) -> st.SearchStrategy[dict[str, Any]]:
    base: dict[str, Any] = {"prompt": text}
    optional = {
        "model": st.sampled_from(["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5"]),
        "timeout": numbers,
        "retries": st.integers(0, 10),
        "maxToolRounds": st.integers(1, 100),
        "output": st.just("text"),
    }
    return st.fixed_dictionaries(
        {**base, **({"label": st.just(label)} if label else {})}, optional=optional
    )


@st.composite
def pipelines(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 6))
    used = draw(st.lists(labels, min_size=count, max_size=count, unique=True))
    steps: list[dict[str, Any]] = []
    index = 0
    while index < count:
        kind = draw(st.sampled_from(["agent", "parallel", "sequential", "when", "approve"]))
        label = used[index]
        index += 1
        if kind == "agent":
            steps.append(draw(_agent(label)))
        elif kind in ("parallel", "sequential"):
            members = [draw(_agent(None)) for _ in range(draw(st.integers(1, 3)))]
            steps.append({kind: members, "label": label})
        elif kind == "when":
            branch = {
                "when": draw(st.sampled_from(["true", "steps | length > 0", "loop.name == 'a'"])),
                "then": [draw(_agent(None))],
            }
            if draw(st.booleans()):
                branch["else"] = [draw(_agent(None))]
            steps.append(branch)
        else:
            steps.append(
                {
                    "approve": draw(text),
                    "label": label,
                    "approvers": draw(
                        st.lists(st.sampled_from(["owner", "admin", "editor"]), max_size=2)
                    ),
                    "onTimeout": draw(st.sampled_from(["reject", "approve"])),
                }
            )
    return steps


triggers = st.one_of(
    st.just({"type": "manual"}),
    st.fixed_dictionaries(
        {
            "type": st.just("cron"),
            "schedule": st.sampled_from(["0 9 * * 1-5", "*/15 * * * *", "30 2 1 * *"]),
        },
        optional={
            "timezone": st.sampled_from(["UTC", "Europe/Paris", "America/New_York"]),
            "catchUp": st.sampled_from(["all", "latest"]),
            "catchUpMinutes": st.integers(1, 10080),
        },
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("webhook"),
            "event": st.sampled_from(
                ["pull_request", "push", "issues", "release", "workflow_dispatch"]
            ),
        },
        optional={
            "actions": st.lists(st.sampled_from(["opened", "closed"]), max_size=2),
            "secretEnv": st.just("HOOK_SECRET"),
        },
    ),
    st.fixed_dictionaries({"type": st.just("event"), "event": names}),
)
connectors = st.dictionaries(
    names,
    st.one_of(
        st.fixed_dictionaries(
            {"type": st.just("mcp"), "command": text},
            optional={
                "args": st.lists(text, max_size=3),
                "env": st.dictionaries(names, text, max_size=2),
            },
        ),
        st.fixed_dictionaries(
            {
                "type": st.just("mcp"),
                "transport": st.just("http"),
                "url": st.just("http://127.0.0.1:9/mcp"),
            }
        ),
        st.fixed_dictionaries(
            {"type": st.just("http"), "baseUrl": st.just("https://api.example.com")},
            optional={
                "headers": st.dictionaries(
                    st.sampled_from(["Accept", "on", "yes", "404"]), text, max_size=2
                ),
                "operations": st.dictionaries(
                    names,
                    st.fixed_dictionaries(
                        {"path": st.just("/things/{id}")},
                        optional={
                            "method": st.sampled_from(["GET", "POST", "DELETE"]),
                            "parameters": st.just({"type": "object", "properties": {}}),
                        },
                    ),
                    max_size=2,
                ),
            },
        ),
        st.fixed_dictionaries(
            {"type": st.just("sql"), "url": st.just("${DATABASE_URL}")},
            optional={"rowLimit": st.integers(1, 1000), "timeoutSeconds": numbers},
        ),
    ),
    max_size=2,
)
budgets = st.fixed_dictionaries(
    {},
    optional={
        "maxTokens": st.integers(1, 10**7),
        "maxDurationMinutes": numbers,
        "maxCostUsd": numbers,
        "maxIterations": st.integers(1, 1000),
        "maxModelCalls": st.integers(1, 1000),
    },
)


@st.composite
def loops(draw: st.DrawFn) -> dict[str, Any]:
    pipeline = draw(pipelines())
    data: dict[str, Any] = {"name": draw(names), "pipeline": pipeline}
    if draw(st.booleans()):
        data["description"] = draw(text)
    if draw(st.booleans()):
        data["tags"] = draw(st.lists(names, max_size=3))
    if draw(st.booleans()):
        data["trigger"] = draw(triggers)
    if draw(st.booleans()):
        data["budget"] = draw(budgets)
    if draw(st.booleans()):
        data["memory"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "store": st.sampled_from(["filesystem", "database", "memory"]),
                    "path": st.just(".loopkit/state"),
                    "persistence": st.sampled_from(["full", "summary", "minimal"]),
                },
            )
        )
    if draw(st.booleans()):
        data["connectors"] = draw(connectors)
    if draw(st.booleans()):
        data["subagents"] = {
            "judge": draw(
                st.fixed_dictionaries(
                    {"role": st.just("verifier")},
                    optional={
                        "model": st.just("openai/gpt-4o"),
                        "prompt": text,
                        "description": text,
                        "maxToolRounds": st.integers(1, 100),
                    },
                )
            )
        }
    if draw(st.booleans()):
        data["inputs"] = draw(
            st.dictionaries(
                names,
                st.fixed_dictionaries(
                    {},
                    optional={
                        "description": text,
                        "default": st.one_of(text, st.integers(), st.booleans()),
                        "required": st.booleans(),
                    },
                ),
                max_size=2,
            )
        )
    top_labels = [s["label"] for s in pipeline if "prompt" in s and "label" in s]
    if top_labels and draw(st.booleans()):
        data["verify"] = {
            "maker": top_labels[:2],
            "checker": "judge" if "subagents" in data else "Adversarial Verifier",
            **draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "maxRounds": st.integers(1, 20),
                        "autoRetry": st.booleans(),
                        "passScore": st.sampled_from([0, 0.5, 0.85, 1]),
                        "require": st.sampled_from(["all", "majority"]),
                        "blockOn": st.sampled_from(
                            [["blocker"], ["blocker", "major"], ["blocker", "major", "minor"]]
                        ),
                        "onFail": st.sampled_from(["fail", "accept-best", "escalate"]),
                        "stallOnRepeat": st.booleans(),
                    },
                )
            ),
        }
    # Actions after verification: agent steps and (with an HTTP connector) a tool step.
    if draw(st.booleans()):
        data["onPass"] = [draw(_agent(f"Pass {n}")) for n in range(draw(st.integers(1, 2)))]
        http = [
            (name, op)
            for name, c in data.get("connectors", {}).items()
            if c["type"] == "http"
            for op in c.get("operations", {})
        ]
        if http and draw(st.booleans()):
            name, op = http[0]
            data["onPass"].append(
                {"tool": f"{name}.{op}", "label": "Deliver", "arguments": {"id": draw(text)}}
            )
    if "verify" in data and draw(st.booleans()):
        data["onFail"] = [draw(_agent("Fail 1"))]
    return data


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(loops())
def test_load_of_dump_gives_back_the_same_model(data: dict[str, Any]) -> None:
    model = loop_from_data(data)
    assert load_loop(dump(model)) == model


@SETTINGS
@given(loops())
def test_dump_of_load_is_idempotent(data: dict[str, Any]) -> None:
    first = dump(loop_from_data(data))
    second = dump(load_loop(first))
    assert second == first
    assert dump(load_loop(second)) == second


@SETTINGS
@given(loops())
def test_to_data_is_a_fixed_point_of_validation(data: dict[str, Any]) -> None:
    model = loop_from_data(data)
    assert to_data(loop_from_data(to_data(model))) == to_data(model)


@SETTINGS
@given(loops())
def test_every_generated_loop_gets_a_well_formed_report(data: dict[str, Any]) -> None:
    report = lrs.score(loop_from_data(data)).as_dict()
    assert 0 <= report["score"] <= 100
    assert report["grade"] == lrs.grade_for(report["score"])
    assert all(d["points"] <= d["max"] for d in report["dimensions"])


def test_the_json_schema_is_stable() -> None:
    assert spec.json_schema() == spec.json_schema()


# ── Robustness: any input gives a loop or a SpecError, never another exception ──

_yamlish = st.lists(
    st.sampled_from(
        [
            "name: x\n",
            "pipeline:\n",
            "  - prompt: a\n",
            "    label: A\n",
            "  - parallel:\n",
            "      - prompt: b\n",
            "verify:\n",
            "  maker: [A]\n",
            "  checker: A\n",
            "budget:\n",
            "  maxTokens: 5\n",
            "trigger: {type: cron, schedule: '* * * * *'}\n",
            "  - when: x ==\n",
            "    then: []\n",
            "&a ",
            "*a\n",
            "<<: *a\n",
            "!!str ",
            "!!python/name:x ",
            "[",
            "]",
            "{",
            "}",
            ": ",
            "- ",
            "'",
            '"',
            "\t",
            "\n",
            "---\n",
            "%YAML 1.1\n",
            "? ",
            "|\n",
            ">-\n",
            "#c\n",
            "\u00e9",
            "\x00",
            "\ufeff",
            "~",
            "null",
            "1e5",
            "0o17",
            "yes",
            ".inf",
        ]
    ),
    max_size=25,
).map("".join)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(_yamlish | st.text(max_size=200))
def test_any_text_loads_or_gives_spec_errors_with_messages(source: str) -> None:
    try:
        load_loop(source, "fuzz.yaml")
    except SpecError as exc:
        assert exc.problems
        assert all(p.message and p.file == "fuzz.yaml" for p in exc.problems)


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["name", "pipeline", "verify", "budget", "trigger", "memory", "x"]), _json
    )
)
def test_any_json_data_validates_or_gives_spec_errors(data: dict[str, Any]) -> None:
    try:
        loop_from_data(data)
    except SpecError as exc:
        assert exc.problems


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(loops())
def test_the_json_schema_accepts_every_canonical_loop(data: dict[str, Any]) -> None:
    import jsonschema

    canonical = to_data(loop_from_data(data))
    errors = [e.message for e in jsonschema.Draft202012Validator(SCHEMA).iter_errors(canonical)]
    assert errors == []


SCHEMA = spec.json_schema()


def _merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(loops())
def test_every_one_click_fix_gives_a_valid_loop_that_scores_no_lower(data: dict[str, Any]) -> None:
    loop = loop_from_data(data)
    before = lrs.score(loop)
    for finding in before.findings:
        if finding.fix is None:
            continue
        patched = loop_from_data(_merge_patch(to_data(loop), finding.fix.patch))
        after = lrs.score(patched)
        assert after.score >= before.score, (finding.message, after.findings)
        assert finding.message not in [f.message for f in after.findings], finding.message

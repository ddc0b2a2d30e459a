"""Deterministic checks before the judge (issue 18, item 3): ``verify.checks`` run first
each round and cost no model call. Against the real OpenAI-compatible test server
(its request count says whether the checker was asked) and, for tool checks, a real
HTTP API connector to a local service started by the test."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from llm_server import LLMServer, Reply, verdict

from loopkit import spec
from loopkit.connectors.provider import ConnectorTools
from loopkit.engine import RunOptions, run_loop
from loopkit.engine import checks as engine_checks
from loopkit.engine.events import ToolCalled, VerificationRound
from loopkit.engine.runner import RunResult
from loopkit.llm import DryRunProvider, LiteLLMProvider
from loopkit.memory import InMemoryStore
from loopkit.sinks import ListSink
from loopkit.yamlio import loop_from_data

MODEL = "openai/test"
REPORT_SCHEMA = {
    "type": "object",
    "required": ["title", "severity"],
    "properties": {"title": {"type": "string"}, "severity": {"enum": ["low", "high"]}},
}


@pytest.fixture(scope="module")
def server() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh(server: LLMServer) -> None:
    server.reset()


def is_checker(body: dict[str, Any]) -> bool:
    return "adversarial verifier" in body["messages"][0]["content"].lower()


def checker_requests(server: LLMServer) -> int:
    return sum(1 for r in server.requests if is_checker(r.body))


def report_loop(checks: list[dict[str, Any]], **extra: Any) -> spec.Loop:
    verify = {
        "maker": "Reporter",
        "checker": "Adversarial Verifier",
        "maxRounds": 1,
        "checks": checks,
    }
    verify.update(extra.pop("verify", {}))
    return loop_from_data(
        {
            "name": "report",
            "description": "Write a bug report as JSON.",
            "model": MODEL,
            "inputs": {"branch": {"default": "main"}, "pr": {"type": "integer", "default": 7}},
            "pipeline": [
                {
                    "prompt": "Report the bug.{% if feedback %}\nFix: {{ feedback }}{% endif %}",
                    "label": "Reporter",
                }
            ],
            "verify": verify,
            **extra,
        }
    )


async def run(
    loop: spec.Loop, llm: Any, *, tools: Any = None, **inputs: Any
) -> tuple[RunResult, ListSink]:
    sink = ListSink()
    result = await run_loop(
        loop, llm, sinks=[sink], tool_provider=tools, options=RunOptions(inputs=inputs)
    )
    return result, sink


def rounds(sink: ListSink) -> list[VerificationRound]:
    return [e for e in sink.events if isinstance(e, VerificationRound)]


# ── Schema and regular expression checks ─────────────────────────────────


async def test_a_failing_schema_check_fails_the_round_without_asking_the_checker(
    server: LLMServer,
) -> None:
    server.when(is_checker, verdict(True, 0.95))
    server.default = Reply('{"title": "crash on save", "severity": "urgent"}')
    loop = report_loop([{"name": "report shape", "step": "Reporter", "schema": REPORT_SCHEMA}])

    result, sink = await run(loop, LiteLLMProvider(api_base=server.url))

    assert result.status == "verification_failed"
    assert len(server.requests) == 1  # the maker's call only: no model call for the check
    assert checker_requests(server) == 0
    (round_,) = rounds(sink)
    assert not round_.passed and round_.score is None
    assert round_.issues == [
        "check 'report shape': the output of 'Reporter' does not match the schema: "
        "$.severity: 'urgent' is not one of ['low', 'high']"
    ]
    assert round_.reason == (
        "deterministic checks failed ('report shape'): the checker was not asked"
    )
    assert round_.tokens.total == 0 and round_.cost == 0.0
    (check,) = round_.checks
    assert check["name"] == "report shape" and check["kind"] == "schema"
    assert check["passed"] is False and check["severity"] == "blocker"
    assert check["duration_ms"] >= 0 and not check["skipped"]
    assert result.error == round_.issues[0]


async def test_passing_checks_let_the_checker_judge_the_round(server: LLMServer) -> None:
    server.when(is_checker, verdict(True, 0.9))
    server.default = Reply('```json\n{"title": "crash on save", "severity": "high"}\n```')
    loop = report_loop(
        [
            {"step": "Reporter", "schema": REPORT_SCHEMA},
            {"step": "Reporter", "regex": r'"severity":\s*"(low|high)"'},
            {"step": "Reporter", "regex": "(?i)lorem ipsum", "mustNotMatch": True},
        ]
    )

    result, sink = await run(loop, LiteLLMProvider(api_base=server.url))

    assert result.status == "succeeded"
    assert len(server.requests) == 2 and checker_requests(server) == 1
    (round_,) = rounds(sink)
    assert round_.passed and round_.issues == []
    assert [(c["name"], c["passed"]) for c in round_.checks] == [
        ("Reporter schema", True),
        ("Reporter regex", True),
        ("Reporter must not match", True),
    ]


async def test_a_failed_check_goes_back_to_the_makers_then_the_checker_judges_the_fix(
    server: LLMServer,
) -> None:
    server.when(is_checker, verdict(True, 0.9))
    server.script(
        Reply("Title: crash\nTODO: find the severity"), Reply("Title: crash\nSeverity: high")
    )
    loop = report_loop(
        [{"name": "no TODO", "step": "Reporter", "regex": "TODO", "mustNotMatch": True}],
        verify={"maxRounds": 2},
    )

    result, sink = await run(loop, LiteLLMProvider(api_base=server.url))

    assert result.status == "succeeded"
    # maker, maker again (no checker in round 1), then the checker on the fix
    assert [is_checker(r.body) for r in server.requests] == [False, False, True]
    first, second = rounds(sink)
    assert not first.passed and first.will_retry
    assert first.issues == [
        "check 'no TODO': the output of 'Reporter' matches /TODO/ at line 2: 'TODO'"
    ]
    assert second.passed and second.checks[0]["passed"] is True
    retry_prompt = server.requests[1].body["messages"][-1]["content"]
    assert "Fix: - check 'no TODO': the output of 'Reporter' matches /TODO/" in retry_prompt


async def test_a_minor_failure_is_reported_but_does_not_block(server: LLMServer) -> None:
    server.when(is_checker, verdict(True, 0.9))
    server.default = Reply("The report: it crashes on save. TODO: severity")
    loop = report_loop(
        [
            {
                "name": "no TODO",
                "step": "Reporter",
                "regex": "TODO",
                "mustNotMatch": True,
                "severity": "minor",
                "message": "leave no TODO in a report",
            }
        ]
    )

    result, sink = await run(loop, LiteLLMProvider(api_base=server.url))

    assert result.status == "succeeded"
    assert checker_requests(server) == 1
    (round_,) = rounds(sink)
    assert round_.passed
    assert round_.minor == [
        "check 'no TODO': leave no TODO in a report: the output of 'Reporter' "
        "matches /TODO/ at line 1: 'TODO'"
    ]
    assert round_.checks[0]["passed"] is False and round_.checks[0]["severity"] == "minor"


async def test_a_major_failure_blocks_like_a_blocker(server: LLMServer) -> None:
    server.when(is_checker, verdict(True, 0.9))
    server.default = Reply("no heading here")
    loop = report_loop(
        [
            {"step": "Reporter", "regex": "^# ", "severity": "major"},
            {"step": "Reporter", "regex": "x{3}", "severity": "minor"},
        ]
    )

    result, sink = await run(loop, LiteLLMProvider(api_base=server.url))

    assert result.status == "verification_failed"
    assert checker_requests(server) == 0
    (round_,) = rounds(sink)
    # The blocking failure is an issue of the round, the minor one is reported as minor;
    # the reason names the blocking ones.
    assert [i.split(":")[0] for i in round_.issues] == ["check 'Reporter regex'"]
    assert [i.split(":")[0] for i in round_.minor] == ["check 'Reporter regex'"]
    assert round_.reason == (
        "deterministic checks failed ('Reporter regex'): the checker was not asked"
    )


async def test_a_pattern_that_backtracks_without_end_fails_its_check_instead_of_holding_the_run(
    server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_checks, "REGEX_TIMEOUT", 0.05)
    server.when(is_checker, verdict(True, 0.9))
    server.default = Reply("a" * 60 + "!")
    loop = report_loop([{"step": "Reporter", "regex": "^(a|aa)+$"}])

    result, sink = await run(loop, LiteLLMProvider(api_base=server.url))

    assert result.status == "verification_failed"
    assert checker_requests(server) == 0
    assert "took more than 0.05 s" in rounds(sink)[0].issues[0]


async def test_a_resumed_run_replays_a_round_with_its_checks(server: LLMServer) -> None:
    server.default = Reply("not json")
    loop = report_loop([{"step": "Reporter", "schema": REPORT_SCHEMA}])
    store = InMemoryStore()
    first = await run_loop(
        loop, LiteLLMProvider(api_base=server.url), store=store, options=RunOptions(run_id="r1")
    )
    assert first.status == "verification_failed"
    sink = ListSink()
    await run_loop(
        loop,
        LiteLLMProvider(api_base=server.url),
        sinks=[sink],
        store=store,
        options=RunOptions(run_id="r1", resume=True),
    )
    (round_,) = rounds(sink)
    assert round_.resumed and round_.checks[0]["passed"] is False
    assert len(server.requests) == 1  # nothing was asked again


# ── Tool checks against a real HTTP API connector ────────────────────────


class CI(ThreadingHTTPServer):
    """A test-runner API: POST /runs answers the exit code it is set to; GET /broken is a 500."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CIHandler)
        self.exit_code = 0
        self.requests: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _CIHandler(BaseHTTPRequestHandler):
    server: CI

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append({"method": self.command, "path": self.path, "body": body})
        if self.path.startswith("/broken"):
            status, payload = 500, {"error": "the runner is down"}
        else:
            code = self.server.exit_code
            status = 200
            payload = {"exit_code": code, "summary": "12 passed" if code == 0 else "3 failed"}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer


@pytest.fixture
def ci() -> Iterator[CI]:
    service = CI()
    thread = threading.Thread(target=service.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield service
    service.shutdown()
    service.server_close()


def ci_loop(ci: CI, check: dict[str, Any], **verify: Any) -> spec.Loop:
    return report_loop(
        [check],
        verify=verify,
        connectors={
            "ci": {
                "type": "http",
                "baseUrl": ci.url,
                "operations": {
                    "run_tests": {
                        "method": "POST",
                        "path": "/runs",
                        "parameters": {
                            "type": "object",
                            "properties": {
                                "branch": {"type": "string"},
                                "suite": {"type": "string"},
                                "pr": {"type": "integer"},
                                "title": {"type": "string"},
                            },
                            "required": ["branch"],
                        },
                    },
                    "broken": {"path": "/broken"},
                },
            }
        },
    )


TESTS_PASS = {
    "name": "tests pass",
    "tool": "ci.run_tests",
    "arguments": {"branch": "{{ inputs.branch }}", "suite": "unit", "pr": "{{ inputs.pr }}"},
    "expect": "result.exit_code == 0",
}


async def test_a_tool_check_calls_the_connector_and_passes_on_its_result(
    server: LLMServer, ci: CI
) -> None:
    server.when(is_checker, verdict(True, 0.9))
    loop = ci_loop(ci, TESTS_PASS)

    result, sink = await run(
        loop, LiteLLMProvider(api_base=server.url), tools=ConnectorTools(loop), branch="fix-42"
    )

    assert result.status == "succeeded"
    assert ci.requests == [
        {"method": "POST", "path": "/runs", "body": {"branch": "fix-42", "suite": "unit", "pr": 7}}
    ]
    assert checker_requests(server) == 1
    (call,) = [e for e in sink.events if isinstance(e, ToolCalled)]
    assert call.key == "verify.checks[0]" and call.name == "ci__run_tests"
    assert call.arguments == {"branch": "fix-42", "suite": "unit", "pr": 7} and not call.is_error
    assert rounds(sink)[0].checks[0]["passed"] is True


async def test_a_tool_check_whose_result_breaks_the_condition_fails_the_round(
    server: LLMServer, ci: CI
) -> None:
    ci.exit_code = 1
    server.when(is_checker, verdict(True, 0.9))
    loop = ci_loop(ci, {**TESTS_PASS, "message": "the tests must pass"})

    result, sink = await run(loop, LiteLLMProvider(api_base=server.url), tools=ConnectorTools(loop))

    assert result.status == "verification_failed"
    assert len(ci.requests) == 1 and checker_requests(server) == 0
    assert rounds(sink)[0].issues == [
        "check 'tests pass': the tests must pass: ci.run_tests answered, but "
        '\'result.exit_code == 0\' is false (result: \'{"exit_code": 1, "summary": "3 failed"}\')'
    ]


async def test_a_tool_check_reads_a_text_condition_and_fails_on_an_error_answer(
    server: LLMServer, ci: CI
) -> None:
    server.when(is_checker, verdict(True, 0.9))
    text = ci_loop(
        ci,
        {
            "tool": "ci.run_tests",
            "arguments": {"branch": "main"},
            "expect": "'passed' in result.summary",
        },
    )
    broken = ci_loop(ci, {"tool": "ci.broken"})

    passed, _ = await run(text, LiteLLMProvider(api_base=server.url), tools=ConnectorTools(text))
    failed, sink = await run(
        broken, LiteLLMProvider(api_base=server.url), tools=ConnectorTools(broken)
    )

    assert passed.status == "succeeded"
    assert failed.status == "verification_failed"
    (issue,) = rounds(sink)[0].issues
    assert issue.startswith("check 'ci.broken': ci.broken failed: 'HTTP 500")
    assert "the runner is down" in issue


async def test_a_dry_run_calls_no_tool_and_enforces_no_check_on_placeholders(ci: CI) -> None:
    loop = ci_loop(
        ci,
        TESTS_PASS,
    ).model_copy(deep=True)
    assert loop.verify is not None
    loop.verify.checks.append(
        spec.RegexCheck.model_validate({"step": "Reporter", "regex": "^Title:"})
    )
    llm = DryRunProvider()

    result, sink = await run(loop, llm)

    assert result.status == "succeeded"
    assert ci.requests == []  # the tool was not called
    assert not [e for e in sink.events if isinstance(e, ToolCalled)]
    (round_,) = rounds(sink)
    assert round_.passed and round_.issues == []
    tool, pattern = round_.checks
    assert tool["skipped"] and tool["passed"] is None
    assert tool["message"] == "dry run: ci.run_tests was not called"
    assert pattern["passed"] is False
    assert pattern["message"].endswith("(dry run: the output is a placeholder; not enforced)")
    assert [r.role for r in llm.requests] == ["maker", "checker"]


async def test_a_live_run_without_a_tool_provider_fails_a_tool_check(
    server: LLMServer, ci: CI
) -> None:
    server.when(is_checker, verdict(True, 0.9))
    loop = ci_loop(ci, TESTS_PASS)

    result, sink = await run(loop, LiteLLMProvider(api_base=server.url))

    assert result.status == "verification_failed"
    assert ci.requests == []
    assert "no tool provider" in rounds(sink)[0].issues[0]


async def test_the_console_transcript_counts_the_checks_and_shows_a_minor_failure(
    server: LLMServer,
) -> None:
    import io

    from loopkit.sinks import ConsoleSink

    server.when(is_checker, verdict(True, 0.9))
    server.default = Reply("Title: crash\nTODO: severity")
    loop = report_loop(
        [
            {"step": "Reporter", "regex": "^Title:"},
            {"name": "no TODO", "step": "Reporter", "regex": "TODO", "mustNotMatch": True}
            | {"severity": "minor"},
        ]
    )
    out = io.StringIO()

    await run_loop(loop, LiteLLMProvider(api_base=server.url), sinks=[ConsoleSink(out)])

    transcript = out.getvalue()
    assert (
        "  Round 1: [ok] PASS (score: 0.90)\n"
        "    checks: 1 passed, 1 failed\n"
        "    ~ check 'no TODO': the output of 'Reporter' matches /TODO/ at line 2: 'TODO' (minor)\n"
    ) in transcript


async def test_an_argument_that_is_one_expression_keeps_its_type_and_other_text_renders(
    server: LLMServer, ci: CI
) -> None:
    server.when(is_checker, verdict(True, 0.9))
    check = {
        "tool": "ci.run_tests",
        "arguments": {
            "branch": "{{ inputs.branch }}",
            "pr": "{{ inputs.pr + 1 }}",
            "title": "PR {{ inputs.pr }} round {{ round }}",
        },
    }
    loop = ci_loop(ci, check)

    result, _ = await run(loop, LiteLLMProvider(api_base=server.url), tools=ConnectorTools(loop))

    assert result.status == "succeeded"
    assert ci.requests[0]["body"] == {"branch": "main", "pr": 8, "title": "PR 7 round 1"}

"""Actions after verification (issue 18, item 5), against the real test servers.

The model is the project's OpenAI-compatible test server (``llm_server``),
reached through LiteLLM; the connector is a real HTTP connector pointed at a
small GitHub-like service started here on 127.0.0.1, which counts the posts
it receives. A review is posted (``onPass``) only after the checker passed
it; ``onFail`` runs after a failed verification; a resumed run does not post
twice; a dry run posts nothing and reports the call it would make.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from llm_server import LLMServer, Reply, verdict

from loopkit import spec
from loopkit.connectors.provider import ConnectorTools
from loopkit.engine import RunOptions, run_loop
from loopkit.engine.runner import RunResult
from loopkit.llm import DryRunProvider, LiteLLMProvider
from loopkit.memory import FileStore, Store
from loopkit.sinks import ListSink
from loopkit.yamlio import loop_from_data

MODEL = "openai/test"
DIFF = "diff --git a/app.py b/app.py\n-    return a - b\n+    return a + b\n"
TOKEN = "ghp_ActionsTestToken_0123456789"


class GitHub(ThreadingHTTPServer):
    """A GitHub-like service: serves a pull request's diff, counts and keeps the posts."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.posts: list[dict[str, Any]] = []
        self.gets: list[str] = []
        #: Answer posts to these paths with 422 (a refused comment).
        self.refuse: set[str] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def posted(self, path: str) -> list[dict[str, Any]]:
        return [p for p in self.posts if p["path"] == path]


class _Handler(BaseHTTPRequestHandler):
    server: GitHub

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.gets.append(self.path)
        if self.headers.get("Accept") == "application/vnd.github.diff":
            self._send(200, DIFF.encode(), "text/x-diff")
        else:
            self._send(
                200,
                json.dumps({"number": 7, "head": {"sha": "abc123"}}).encode(),
                "application/json",
            )

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path in self.server.refuse:
            self._send(422, b'{"message": "Validation Failed"}', "application/json")
            return
        self.server.posts.append(
            {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
        )
        answer = {"id": len(self.server.posts), "html_url": f"https://github.example/{self.path}"}
        self._send(201, json.dumps(answer).encode(), "application/json")


@pytest.fixture
def github() -> Iterator[GitHub]:
    service = GitHub()
    threading.Thread(target=service.serve_forever, args=(0.02,), daemon=True).start()
    yield service
    service.shutdown()
    service.server_close()


@pytest.fixture(scope="module")
def llm() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh(llm: LLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    llm.reset()
    monkeypatch.setenv("LK_ACTIONS_GITHUB_TOKEN", TOKEN)


def is_checker(body: dict[str, Any]) -> bool:
    return "adversarial" in body["messages"][0]["content"]


VERIFY: dict[str, Any] = {
    "maker": ["Bug Review"],
    "checker": "Adversarial Verifier",
    "maxRounds": 2,
}


def review_loop(base_url: str, **extra: Any) -> spec.Loop:
    """A pull request review: fetch the diff (a tool step), review it, post the review
    after a pass (onPass), report a failed verification (onFail)."""
    data: dict[str, Any] = {
        "name": "review",
        "description": "Review a pull request.",
        "model": MODEL,
        "trigger": {"type": "webhook", "event": "pull_request"},
        "connectors": {
            "github": {
                "type": "http",
                "baseUrl": base_url,
                "headers": {"Authorization": "Bearer ${LK_ACTIONS_GITHUB_TOKEN}"},
                "operations": {
                    "get_diff": {
                        "path": "/repos/{owner}/{repo}/pulls/{number}",
                        "headers": {"Accept": "application/vnd.github.diff"},
                        "parameters": {"number": {"type": "integer"}},
                    },
                    "create_review": {
                        "method": "POST",
                        "path": "/repos/{owner}/{repo}/pulls/{number}/reviews",
                        "parameters": {
                            "type": "object",
                            "properties": {
                                "number": {"type": "integer"},
                                "body": {"type": "string"},
                                "event": {"type": "string", "enum": ["COMMENT"]},
                            },
                            "required": ["body"],
                        },
                    },
                    "comment": {
                        "method": "POST",
                        "path": "/repos/{owner}/{repo}/issues/{number}/comments",
                        "parameters": {"number": {"type": "integer"}, "body": {"type": "string"}},
                    },
                },
            }
        },
        "pipeline": [
            {
                "tool": "github.get_diff",
                "label": "Diff",
                "arguments": {
                    "owner": "{{ trigger.payload.repository.owner.login }}",
                    "repo": "{{ trigger.payload.repository.name }}",
                    "number": "{{ trigger.payload.pull_request.number }}",
                },
            },
            {
                "prompt": "Review this diff for bugs:\n{{ steps['Diff'].output }}",
                "label": "Bug Review",
            },
        ],
        "verify": VERIFY,
        "onPass": [
            {
                "tool": "github.create_review",
                "label": "Post Review",
                "arguments": {
                    "owner": "{{ trigger.payload.repository.owner.login }}",
                    "repo": "{{ trigger.payload.repository.name }}",
                    "number": "{{ trigger.payload.pull_request.number }}",
                    "event": "COMMENT",
                    "body": "{{ steps['Bug Review'].output }}\n\n"
                    "(verified: score {{ verification.score }} after {{ verification.rounds }} "
                    "round(s))",
                },
            }
        ],
        "onFail": [
            {
                "tool": "github.comment",
                "label": "Report Failure",
                "arguments": {
                    "owner": "{{ trigger.payload.repository.owner.login }}",
                    "repo": "{{ trigger.payload.repository.name }}",
                    "number": "{{ trigger.payload.pull_request.number }}",
                    "body": "The automated review did not pass its checker:\n"
                    "{{ verification.issues }}",
                },
            }
        ],
    }
    data.update(extra)
    return loop_from_data(data)


PAYLOAD = {
    "action": "opened",
    "pull_request": {"number": 7, "title": "Fix the sum"},
    "repository": {"name": "app", "owner": {"login": "acme"}},
}
REVIEWS = "/repos/acme/app/pulls/7/reviews"
COMMENTS = "/repos/acme/app/issues/7/comments"


async def run(
    llm: LLMServer,
    loop: spec.Loop,
    tmp_path: Path,
    *,
    store: Store | None = None,
    dry: bool = False,
    **options: Any,
) -> tuple[RunResult, ListSink]:
    sink = ListSink()
    result = await run_loop(
        loop,
        DryRunProvider() if dry else LiteLLMProvider(api_base=llm.url),
        sinks=[sink],
        store=store,
        options=RunOptions(payload=PAYLOAD, retry_base_delay=0.01, **options),
        tool_provider=ConnectorTools(loop, root=tmp_path),
    )
    return result, sink


async def test_the_review_is_posted_once_after_the_checker_passes_it(
    llm: LLMServer, github: GitHub, tmp_path: Path
) -> None:
    llm.when(is_checker, verdict(True, 0.92))
    llm.when("Review this diff", Reply("Line 2 adds instead of subtracting: fine, it is the fix."))

    result, sink = await run(llm, review_loop(github.url), tmp_path)

    assert result.status == "succeeded", result.error
    # The diff came through the connector and reached the reviewer.
    assert github.gets == ["/repos/acme/app/pulls/7"]
    assert DIFF.strip() in llm.requests[0].text
    # One post, after the pass, with the verified review and the verification's figures.
    assert len(github.posts) == 1
    (post,) = github.posted(REVIEWS)
    assert post["body"] == {
        "body": "Line 2 adds instead of subtracting: fine, it is the fix.\n\n"
        "(verified: score 0.92 after 1 round(s))",
        "event": "COMMENT",
    }
    assert post["auth"] == f"Bearer {TOKEN}"
    assert len(llm.requests) == 2  # the reviewer and the checker: a tool step calls no model
    # Events: the actions come after the verification round, under onPass keys.
    types = [(e.type, getattr(e, "key", None)) for e in sink.events]
    assert types.index(("verification_round", None)) < types.index(("step_started", "onPass"))
    started = [e.key for e in sink.of_type("step_started")]
    assert started == ["pipeline[0]", "pipeline[1]", "onPass", "onPass[0]"]
    (called,) = [e for e in sink.of_type("tool_called") if e.key == "onPass[0]"]
    assert (called.name, called.is_error, called.dry_run) == ("github.create_review", False, False)
    assert called.arguments["number"] == 7  # one {{ expression }}: its type is kept
    assert json.loads(result.outputs["Post Review"])["id"] == 1
    # The token never reaches an event.
    assert TOKEN not in json.dumps([e.as_dict() for e in sink.events], default=str)


async def test_nothing_is_posted_when_verification_fails_and_on_fail_reports_it(
    llm: LLMServer, github: GitHub, tmp_path: Path
) -> None:
    llm.when(is_checker, verdict(False, 0.4, ["misses the off-by-one in line 9"]))
    llm.when("Review this diff", Reply("Looks good to me."))

    result, sink = await run(llm, review_loop(github.url), tmp_path)

    assert (result.status, result.rounds) == ("verification_failed", 2)
    assert github.posted(REVIEWS) == []
    (report,) = github.posted(COMMENTS)
    assert report["body"]["body"] == (
        "The automated review did not pass its checker:\n- misses the off-by-one in line 9"
    )
    assert len(github.posts) == 1
    assert len(llm.requests) == 4  # two rounds of reviewer and checker, then the onFail call
    assert [e.key for e in sink.of_type("step_started")][-2:] == ["onFail", "onFail[0]"]


async def test_a_loop_without_verify_delivers_after_its_pipeline_succeeded(
    llm: LLMServer, github: GitHub, tmp_path: Path
) -> None:
    llm.default = Reply("No bugs found.")
    loop = review_loop(github.url, verify=None, onFail=[])

    result, _ = await run(llm, loop, tmp_path)

    assert result.status == "succeeded", result.error
    (post,) = github.posted(REVIEWS)
    assert post["body"]["body"].startswith("No bugs found.\n\n(verified: score None after 0 round")


async def test_a_refused_post_fails_the_run_with_the_reason(
    llm: LLMServer, github: GitHub, tmp_path: Path
) -> None:
    llm.when(is_checker, verdict(True, 0.9))
    github.refuse.add(REVIEWS)

    result, sink = await run(llm, review_loop(github.url), tmp_path)

    assert (result.status, result.error_code) == ("failed", "tool_error")
    assert result.error == (
        "Post Review: the tool github.create_review failed: HTTP 422 Unprocessable Entity from "
        'POST /repos/{owner}/{repo}/pulls/{number}/reviews: {"message": "Validation Failed"} '
        "(in onPass)"
    )
    (failed,) = sink.of_type("step_failed")
    assert (failed.key, failed.kind, failed.code) == ("onPass[0]", "tool", "tool_error")


async def test_a_resumed_run_does_not_post_the_review_again(
    llm: LLMServer, github: GitHub, tmp_path: Path
) -> None:
    """The review is posted, then the next action fails; the resumed run answers the
    posted review from its checkpoint and only runs what had not finished."""
    llm.when(is_checker, verdict(True, 0.9))
    llm.when("Review this diff", Reply("One bug: the sum."))
    llm.when("Summarise for the changelog", Reply(status=400, error="bad request"), times=1)
    llm.when("Summarise for the changelog", Reply("Fixed the sum."))
    loop = review_loop(github.url)
    loop.on_pass.append(
        spec.AgentStep(
            prompt="Summarise for the changelog: {{ steps['Bug Review'].output }}",
            label="Changelog",
        )
    )
    store = FileStore(tmp_path / "state")

    first, _ = await run(llm, loop, tmp_path, store=store)

    assert (first.status, first.error_code) == ("failed", "provider_error")
    assert first.error == (
        "Changelog: BadRequestError: litellm.BadRequestError: OpenAIException - bad request "
        "(in onPass)"
    )
    assert len(github.posted(REVIEWS)) == 1
    requests = len(llm.requests)

    second, sink = await run(llm, loop, tmp_path, store=store, run_id=first.id, resume=True)

    assert second.status == "succeeded", second.error
    assert len(github.posted(REVIEWS)) == 1  # not posted twice
    assert github.gets == ["/repos/acme/app/pulls/7"]  # nor the diff fetched twice
    assert second.outputs["Changelog"] == "Fixed the sum."
    assert len(llm.requests) == requests + 1  # only the changelog step asked the model
    resumed = {e.key for e in sink.of_type("step_finished") if e.resumed}
    assert {"pipeline[0]", "pipeline[1]", "onPass[0]"} <= resumed


async def test_a_dry_run_posts_nothing_and_reports_the_call_it_would_make(
    llm: LLMServer, github: GitHub, tmp_path: Path
) -> None:
    result, sink = await run(llm, review_loop(github.url), tmp_path, dry=True)

    assert result.status == "succeeded", result.error
    assert github.posts == [] and github.gets == []
    calls = {e.key: e for e in sink.of_type("tool_called")}
    assert set(calls) == {"pipeline[0]", "onPass[0]"}
    would = calls["onPass[0]"]
    assert (would.name, would.dry_run, would.result) == ("github.create_review", True, "")
    assert would.arguments["number"] == 7 and would.arguments["owner"] == "acme"
    assert would.arguments["body"] == (
        "[dry run] Bug Review: no model was called (round 1).\n\n"
        "(verified: score 0.95 after 1 round(s))"
    )
    assert result.outputs["Diff"] == "<github.get_diff result>"


async def test_actions_count_against_the_budget(
    llm: LLMServer, github: GitHub, tmp_path: Path
) -> None:
    llm.when(is_checker, verdict(True, 0.9))
    loop = review_loop(github.url, budget={"maxModelCalls": 2})
    loop.on_pass.insert(0, spec.AgentStep(prompt="Shorten the review.", label="Shorten"))

    result, _ = await run(llm, loop, tmp_path)

    assert (result.status, result.limit) == ("budget_exceeded", "maxModelCalls")
    assert github.posts == []


async def test_a_stalled_loop_runs_on_fail_with_the_outcome_and_posts_no_review(
    llm: LLMServer, github: GitHub, tmp_path: Path
) -> None:
    llm.when(is_checker, verdict(False, 0.4, ["misses the off-by-one in line 9"]))
    loop = review_loop(github.url, verify={**VERIFY, "maxRounds": 5})
    loop.on_fail[0].arguments["body"] = (  # type: ignore[union-attr]
        "{{ verification.outcome }} after {{ verification.rounds }} rounds:\n"
        "{{ verification.issues }}"
    )

    result, _ = await run(llm, loop, tmp_path)

    assert (result.status, result.error_code, result.rounds) == (
        "verification_failed",
        "stalled",
        2,
    )
    assert github.posted(REVIEWS) == []
    (report,) = github.posted(COMMENTS)
    assert report["body"]["body"] == ("stalled after 2 rounds:\n- misses the off-by-one in line 9")


async def test_an_accepted_best_round_is_not_a_pass_but_on_fail_may_deliver_it(
    llm: LLMServer, github: GitHub, tmp_path: Path
) -> None:
    """accept-best: the run succeeds with the best round, onFail runs (not onPass),
    and reads which round was accepted and its score."""
    llm.when(is_checker, verdict(False, 0.6, ["too vague"]), times=1)
    llm.when(is_checker, verdict(False, 0.5, ["misses the off-by-one"]))
    llm.when("Round 1", Reply("First review."))
    llm.when("Round 2", Reply("Second review."))
    loop = review_loop(github.url, verify={**VERIFY, "onFail": "accept-best"})
    loop.pipeline[1].prompt = "Round {{ round }}. " + loop.pipeline[1].prompt  # type: ignore[union-attr]
    loop.on_fail = [
        spec.ConditionalStep(
            when="verification.accepted == 'best'",
            then=[
                spec.ToolStep(
                    tool="github.create_review",
                    label="Post Best Review",
                    arguments={
                        **loop.on_pass[0].arguments,  # type: ignore[union-attr]
                        "body": "{{ steps['Bug Review'].output }} "
                        "({{ verification.outcome }}, best score {{ verification.score }})",
                    },
                )
            ],
        )
    ]

    result, sink = await run(llm, loop, tmp_path)

    assert result.status == "succeeded", result.error
    (post,) = github.posted(REVIEWS)
    assert post["body"]["body"] == "First review. (failed, best score 0.6)"
    assert [e.key for e in sink.of_type("step_started")][-3:] == [
        "onFail",
        "onFail[0]",
        "onFail[0].then[0]",
    ]

"""Record a live run into a cassette, then ``loopkit test`` replays it offline.

Every test goes through the command line (``loopkit.cli.main``, in process,
in a project folder): ``loopkit run LOOP --record`` against the project's
OpenAI-compatible test server, then ``loopkit test`` with that server stopped.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from llm_server import LLMServer, Reply, verdict

from loopkit.cli import main
from loopkit.testing import replay

REVIEW = """\
name: review
description: Review a change.
inputs:
  topic:
    type: string
    default: caching
pipeline:
  - prompt: "Write a short note about {{ inputs.topic }}."
    label: Note
  - parallel:
      - prompt: "List bugs in: {{ steps['Note'].output }}"
        label: Bugs
      - prompt: "List risks in: {{ steps['Note'].output }}"
        label: Risks
verify:
  maker: [Bugs, Risks]
  checker: Adversarial Verifier
  maxRounds: 2
budget:
  maxTokens: 100000
"""


def script_review(server: LLMServer) -> None:
    server.reset()
    server.when("adversarial verifier", verdict(False, 0.5, ["too vague"]), times=1)
    server.when("adversarial verifier", verdict(True, 0.9))
    server.when("List bugs", Reply("Bug: the cache never expires."))
    server.when("List the bugs", Reply("Bug: the cache never expires (edited)."))
    server.default = Reply("A note about caching.")


def cli(*argv: str) -> int:
    return main(list(argv))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "loops").mkdir()
    (tmp_path / "loops" / "review.yaml").write_text(REVIEW)
    monkeypatch.chdir(tmp_path)
    for name in ("LOOPKIT_MODEL", "LOOPKIT_CHECKER_MODEL", "LOOPKIT_API_BASE", "GITHUB_ACTIONS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMServer]:
    """A running test server the CLI's live runs call (LOOPKIT_API_BASE)."""
    server = LLMServer().start()
    monkeypatch.setenv("LOOPKIT_API_BASE", server.url)
    monkeypatch.setenv("LOOPKIT_MODEL", "openai/test")
    try:
        yield server
    finally:
        server.stop()


def offline(monkeypatch: pytest.MonkeyPatch, server: LLMServer) -> None:
    """Stop the server and forget where it was: nothing can be called any more."""
    server.stop()
    monkeypatch.delenv("LOOPKIT_API_BASE")
    monkeypatch.delenv("LOOPKIT_MODEL")


def test_a_recorded_run_passes_offline_fails_after_a_prompt_edit_and_passes_after_record_missing(
    project: Path,
    live: LLMServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    script_review(live)
    assert cli("run", "review", "--record") == 0
    err = capsys.readouterr().err
    assert (
        "Recorded 7 model call(s), 0 tool call(s) and 0 approval(s) to tests/review.cassette.yaml"
        in err
    )
    assert (
        (project / "tests" / "review.test.yaml")
        .read_text()
        .endswith(
            "loop: ../loops/review.yaml\n"
            "cassette: review.cassette.yaml\n"
            "expect:\n"
            "  status: succeeded\n"
            "  verification:\n"
            "    passed: true\n"
            "    rounds: 2\n"
        )
    )
    offline(monkeypatch, live)

    assert cli("test") == 0
    out = capsys.readouterr().out
    assert (
        "PASS    review  review  succeeded, verification passed in 2 round(s), 7 call(s) replayed"
        in out
    )
    assert out.endswith("1 test(s), 1 passed, 0 failed\n")

    loop_file = project / "loops" / "review.yaml"
    loop_file.write_text(REVIEW.replace("List bugs in", "List the bugs in"))
    assert cli("test") == 1
    out = capsys.readouterr().out
    assert (
        "  loops/review.yaml:11:17: the request of step 'Bugs' (maker, round 1) is not in the "
        "cassette: message 1 (user) changed\n"
        "    --- cassette: Bugs (maker, round 1)\n"
        "    +++ this run: Bugs (maker, round 1)\n"
        "    @@ -1,3 +1,3 @@\n"
        "     model: openai/test\n"
        "     --- message 1 (user)\n"
        "    -List bugs in: A note about caching.\n"
        "    +List the bugs in: A note about caching.\n"
    ) in out

    again = LLMServer().start()
    try:
        script_review(again)
        monkeypatch.setenv("LOOPKIT_API_BASE", again.url)
        assert cli("test", "--record-missing") == 0
        out = capsys.readouterr().out
        assert "cassette updated: tests/review.cassette.yaml" in out
        # Only what changed was asked: the edited maker and the checkers that judge it.
        asked = [r.text for r in again.completed()]
        assert any("List the bugs in" in text for text in asked)
        assert not any(text.startswith("Write a short note") for text in asked)
        assert not any(text.startswith("List risks") for text in asked)
    finally:
        again.stop()
    monkeypatch.delenv("LOOPKIT_API_BASE")

    assert cli("test") == 0
    cassette = (project / "tests" / "review.cassette.yaml").read_text()
    assert "List bugs in" not in cassette  # the stale request is gone
    assert "List the bugs in: A note about caching." in cassette


def test_a_replay_produces_the_recorded_events_and_outputs(
    project: Path,
    live: LLMServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    script_review(live)
    assert cli("run", "review", "--record", "--json") == 0  # the answers streamed
    lines = capsys.readouterr().out.splitlines()
    events = [json.loads(line) for line in lines]
    assert any(e["type"] == "step_output" for e in events)
    # A cassette keeps whole answers: a replay has no streamed pieces.
    recorded = [e for e in events if e["type"] != "step_output"]
    offline(monkeypatch, live)

    result = replay(project / "tests" / "review.test.yaml")

    assert result.passed, result.failures
    assert normalised(result.events) == normalised(recorded)
    finished = recorded[-1]
    assert finished["type"] == "run_finished"
    assert result.outputs == {
        "Note": "A note about caching.",
        "Bugs": "Bug: the cache never expires.",
        "Risks": "A note about caching.",
    }
    assert result.events[-1]["tokens"] == finished["tokens"]


def normalised(events: list[dict[str, object]]) -> list[str]:
    """The events without what differs between two runs (ids, times, durations), sorted
    (the members of a parallel group start and finish in either order)."""
    varying = {"run_id", "ts", "at", "duration_ms", "seq"}
    return sorted(
        json.dumps({k: v for k, v in e.items() if k not in varying}, sort_keys=True) for e in events
    )


def test_recording_the_same_run_twice_writes_the_same_cassette(
    project: Path, live: LLMServer, capsys: pytest.CaptureFixture[str]
) -> None:
    script_review(live)
    assert cli("run", "review", "--record", "--cassette", "tests/first.cassette.yaml") == 0
    script_review(live)
    assert cli("run", "review", "--record", "--cassette", "tests/second.cassette.yaml") == 0

    first = (project / "tests" / "first.cassette.yaml").read_text()
    second = (project / "tests" / "second.cassette.yaml").read_text()
    assert first == second
    assert (project / "tests" / "second.test.yaml").is_file()


TOOLS = """\
name: fetch-and-post
description: Read the models list, summarise it, post it after approval.
connectors:
  svc:
    type: http
    baseUrl: {url}
    headers:
      Authorization: Bearer ${{SERVICE_TOKEN}}
    operations:
      list_models:
        path: /models
        description: The models the service has.
pipeline:
  - tool: svc.list_models
    label: Models
  - prompt: "Summarise: {{{{ steps['Models'].output }}}}"
    label: Summary
    connectors: [svc]
  - approve: "Post the summary?"
    label: Gate
"""


def test_tool_calls_approvals_and_masked_secrets_are_replayed(
    project: Path,
    live: LLMServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = "svc-secret-token-1234"
    monkeypatch.setenv("SERVICE_TOKEN", token)
    (project / "loops" / "fetch-and-post.yaml").write_text(TOOLS.format(url=live.url))
    live.reset()
    live.tool_call("svc__list_models", {})
    live.default = Reply(f"One model. (The key was {token}.)")

    assert cli("run", "fetch-and-post", "--record", "--approve") == 0
    err = capsys.readouterr().err
    assert "Recorded 2 model call(s), 2 tool call(s) and 1 approval(s)" in err
    cassette = (project / "tests" / "fetch-and-post.cassette.yaml").read_text()
    assert token not in cassette
    assert "The key was [redacted:SERVICE_TOKEN]." in cassette
    assert "by: --approve" in cassette
    offline(monkeypatch, live)
    monkeypatch.delenv("SERVICE_TOKEN")

    result = replay(project / "tests" / "fetch-and-post.test.yaml")

    assert result.passed, result.failures
    assert result.status == "succeeded"
    tools = [e for e in result.events if e["type"] == "tool_called"]
    assert [t["name"] for t in tools] == ["svc.list_models", "svc__list_models"]
    assert all('"object": "list"' in str(t["result"]) for t in tools)
    (resolved,) = [e for e in result.events if e["type"] == "approval_resolved"]
    assert (resolved["approved"], resolved["by"]) == (True, "--approve")
    assert result.outputs["Summary"] == "One model. (The key was [redacted:SERVICE_TOKEN].)"

    loop_file = project / "loops" / "fetch-and-post.yaml"
    loop_file.write_text(
        loop_file.read_text().replace(
            "  - tool: svc.list_models\n",
            "  - tool: svc.list_models\n    arguments: {owner: acme}\n",
        )
    )
    changed = replay(project / "tests" / "fetch-and-post.test.yaml")
    (failure,) = changed.failures
    assert failure.message == (
        "the cassette holds no call of the tool svc.list_models with these arguments"
    )
    assert failure.diff == (
        "--- cassette: svc__list_models\n+++ this run: svc__list_models\n@@ -1 +1,3 @@\n"
        '-{}\n+{\n+ "owner": "acme"\n+}'
    )


def test_a_failed_expectation_is_reported_at_its_line_for_github_and_junit(
    project: Path,
    live: LLMServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    script_review(live)
    assert cli("run", "review", "--record") == 0
    offline(monkeypatch, live)
    test_file = project / "tests" / "review.test.yaml"
    test_file.write_text(
        "loop: ../loops/review.yaml\n"
        "expect:\n"
        "  status: succeeded\n"
        "  outputs:\n"
        "    Bugs:\n"
        "      contains: never expires\n"
        "      matches: '^Bug: '\n"
        "    Note: {equals: A different note}\n"
        "  maxTokens: 10\n"
        "  steps: {taken: [Note, Risks], skipped: [Bugs]}\n"
    )
    capsys.readouterr()
    monkeypatch.setenv("GITHUB_ACTIONS", "true")

    assert cli("test", "--junit", "out/junit.xml") == 1

    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("::")]
    assert lines[0] == (
        "::error file=tests/review.test.yaml,line=8,col=20,title=loopkit test%3A review::"
        "output of 'Note': expected 'A different note', got 'A note about caching.'"
    )
    assert lines[1].startswith("::error file=tests/review.test.yaml,line=9,col=14,")
    assert lines[1].endswith("::tokens: expected at most 10, used 760")
    assert lines[2] == (
        "::error file=tests/review.test.yaml,line=10,col=43,title=loopkit test%3A review::"
        "step 'Bugs' was expected to be skipped; it ran"
    )
    assert len(lines) == 3
    suite = ET.parse(project / "out" / "junit.xml").getroot()
    assert suite.tag == "testsuites"
    assert suite.attrib["tests"] == "1" and suite.attrib["failures"] == "1"
    (case,) = suite.iter("testcase")
    assert case.attrib["name"] == "review"
    assert case.attrib["file"] == "tests/review.test.yaml"
    failure = case.find("failure")
    assert failure is not None
    assert failure.attrib["message"] == (
        "output of 'Note': expected 'A different note', got 'A note about caching.'"
    )
    assert failure.text is not None and "tests/review.test.yaml:10:43: step 'Bugs'" in failure.text


def test_a_bad_test_file_is_reported_with_positions_and_exit_code_2(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tests = project / "tests"
    tests.mkdir()
    (tests / "bad.test.yaml").write_text(
        "loop: ../loops/review.yaml\n"
        "expcet:\n"
        "  status: succeeded\n"
        "expect:\n"
        "  verification: {rounds: two}\n"
        "  outputs:\n"
        "    Bugs: {matches: '(unclosed'}\n"
    )
    (tests / "lost.test.yaml").write_text("loop: ../loops/review.yaml\n")

    assert cli("test") == 2

    out = capsys.readouterr().out
    assert "ERROR   bad   -       could not run" in out
    assert (
        "  tests/bad.test.yaml:2:1: unknown key 'expcet' (expcet) Hint: did you mean 'expect'?\n"
        "  tests/bad.test.yaml:5:26: expected a whole number, got 'two' (expect.verification.rounds)\n"
    ) in out
    assert (
        "  tests/lost.cassette.yaml: the cassette does not exist Hint: record it with "
        "'loopkit run LOOP --record' (or 'loopkit test --record-missing')\n"
    ) in out


def test_a_bad_pattern_in_a_test_file_is_reported_at_its_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tests = project / "tests"
    tests.mkdir()
    (tests / "bad.test.yaml").write_text(
        "loop: ../loops/review.yaml\nexpect:\n  outputs:\n    Bugs: {matches: '(unclosed'}\n"
    )

    assert cli("test", "tests/bad.test.yaml") == 2

    out = capsys.readouterr().out
    assert (
        "tests/bad.test.yaml:4:21: not a valid pattern: missing ), unterminated subpattern at "
        "position 0 (expect.outputs.Bugs.matches)"
    ) in out


def test_record_refuses_a_dry_run(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("run", "review", "--record", "--dry-run") == 2
    assert capsys.readouterr().err == (
        "loopkit run: --record records a whole live run (a dry run calls no model)\n"
    )
    assert not (project / "tests").exists()


def test_a_recording_that_failed_before_any_call_writes_no_cassette_or_test(
    project: Path, live: LLMServer, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "loops" / "slug.yaml").write_text(
        "name: slug\ninputs:\n  title:\n    required: true\n"
        "pipeline:\n  - prompt: 'Slug of {{ inputs.title }}'\n    label: Slug\n"
    )
    assert cli("run", "slug", "--record") == 1
    err = capsys.readouterr().err
    assert (
        "Nothing recorded: the run failed before any model or tool call (missing required"
        " input(s): title (pass them as --input title=VALUE)); tests/slug.cassette.yaml is unchanged"
    ) in err
    assert not (project / "tests").exists()

    # Recorded again with the input, the test file expects what the real run did.
    assert cli("run", "slug", "--record", "--input", "title=Hello") == 0
    assert "status: succeeded" in (project / "tests" / "slug.test.yaml").read_text()


def test_a_recording_with_inputs_given_in_any_order_replays(
    project: Path,
    live: LLMServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The checker's prompt lists the inputs; the cassette stores them in its own key order
    # ('version' first), so the run must list them in one order whatever the command line's.
    (project / "loops" / "notes.yaml").write_text(
        "name: notes\ninputs:\n  repository: {required: true}\n  version: {required: true}\n"
        "pipeline:\n  - prompt: 'Notes for {{ inputs.repository }} {{ inputs.version }}'\n"
        "    label: Notes\nverify:\n  maker: [Notes]\n  checker: Adversarial Verifier\n"
    )
    live.when("adversarial verifier", verdict(True, 0.9))
    argv = ("run", "notes", "--record", "--input", "repository=a/b", "--input", "version=1.0")
    assert cli(*argv) == 0
    offline(monkeypatch, live)
    capsys.readouterr()

    assert cli("test") == 0, capsys.readouterr().out


def test_no_test_files_is_not_a_failure(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("test") == 0
    assert "no test files (*.test.yaml)" in capsys.readouterr().out


def test_a_missing_path_is_a_usage_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("test", "nowhere") == 2
    assert capsys.readouterr().err == "loopkit test: nowhere: no such file or folder\n"


def test_record_missing_records_the_cassette_of_a_hand_written_test_file(
    project: Path,
    live: LLMServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    script_review(live)
    (project / "tests").mkdir()
    (project / "tests" / "by-hand.test.yaml").write_text(
        "loop: ../loops/review.yaml\nexpect:\n  status: succeeded\n"
        "  outputs:\n    Bugs: {contains: never expires}\n"
    )

    assert cli("test", "--record-missing") == 0
    assert "cassette updated: tests/by-hand.cassette.yaml" in capsys.readouterr().out
    offline(monkeypatch, live)

    assert cli("test") == 0
    assert (
        "defaults:\n  model: openai/test\n"
        in (project / "tests" / "by-hand.cassette.yaml").read_text()
    )

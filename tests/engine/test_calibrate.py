"""``loopkit calibrate``: a loop's checker against labelled examples, on a real model server.

The checker is LiteLLM calling the project's OpenAI-compatible test server
through the provider written in ``loopkit.yaml``, as ``loopkit run`` calls it;
the server answers as the checker, passing an output that says ``VERDICT:pass``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_server import LLMServer, Reply, verdict

from loopkit import lrs
from loopkit.calibrate import content_hash, last_calibration, record_path
from loopkit.cli import main
from loopkit.project import find_project
from loopkit.yamlio import load_loop

LOOP = """\
name: summary
description: Summarise the changes to one part of the product for its users.
inputs:
  topic:
    description: The part of the product.
    required: true
pipeline:
  - prompt: Summarise the changes to {{ inputs.topic }} for users.
    label: Summary
    timeout: 60
    retries: 1
verify:
  maker: Summary
  checker: Adversarial Verifier
"""

#: Five examples: three agreements, one false pass (c), one false fail (d).
LABELS = [
    {
        "id": "a",
        "inputs": {"topic": "auth"},
        "output": "Login is faster. VERDICT:pass",
        "pass": True,
    },
    {"id": "b", "inputs": {"topic": "billing"}, "output": "Stuff. VERDICT:fail", "pass": False},
    {
        "id": "c",
        "inputs": {"topic": "search"},
        "output": "Adds a --gpu flag. VERDICT:pass",
        "pass": False,
        "issues": ["invents a flag no change added"],
    },
    {"id": "d", "inputs": {"topic": "export"}, "output": "CSV export. VERDICT:fail", "pass": True},
    {
        "id": "e",
        "inputs": {"topic": "import"},
        "output": "Imports resume. VERDICT:pass",
        "pass": True,
    },
]


def answer_as_checker(body: dict[str, Any]) -> Reply:
    text = body["messages"][-1]["content"]
    if "VERDICT:pass" in text:
        return verdict(True, 0.9)
    return verdict(False, 0.3, ["the summary is wrong"])


@pytest.fixture(scope="module")
def shared_server() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


@pytest.fixture
def server(shared_server: LLMServer) -> LLMServer:
    shared_server.reset()
    shared_server.responder = answer_as_checker
    return shared_server


@pytest.fixture
def project(tmp_path: Path, server: LLMServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose default provider is the test server (a model LiteLLM has prices for)."""
    (tmp_path / "loops").mkdir()
    (tmp_path / "loopkit.yaml").write_text(
        "version: 1\n"
        "providers:\n"
        "  local:\n"
        "    model: openai/gpt-4o-mini\n"
        f"    apiBase: {server.url}\n"
        "    apiKey: ${CALIBRATE_TEST_KEY}\n"
        "    default: true\n"
    )
    (tmp_path / "loops" / "summary.yaml").write_text(LOOP)
    write_jsonl(tmp_path / "labels.jsonl", LABELS)
    monkeypatch.chdir(tmp_path)
    for name in ("LOOPKIT_MODEL", "LOOPKIT_CHECKER_MODEL", "LOOPKIT_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CALIBRATE_TEST_KEY", "sk-calibrate-test")
    return tmp_path


def write_jsonl(path: Path, examples: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in examples))


def calibrate_json(*extra: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    code = main(["calibrate", "summary", "--labels", "labels.jsonl", "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def validate_json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    main(["validate", "summary", "--json"])
    report: dict[str, Any] = json.loads(capsys.readouterr().out)["loops"][0]["lrs"]
    return report


# ── Figures ──────────────────────────────────────────────────────────────


def test_the_report_counts_agreement_false_passes_and_false_fails(
    project: Path, server: LLMServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["calibrate", "summary", "--labels", "labels.jsonl"])

    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "summary — checker calibration on 5 examples (labels.jsonl)"
    assert lines[1] == "  checker: Adversarial Verifier (team:local)"
    assert lines[2] == "  agreement: 60% (3 of 5)"
    assert lines[3] == (
        "  false passes: 1 — the checker passed 1 of the 2 examples a person failed (c)"
    )
    assert lines[4] == (
        "  false fails: 1 — the checker failed 1 of the 3 examples a person passed (d)"
    )
    assert lines[5].startswith("  usage: 5 model calls, ")
    assert (
        lines[6] == "  saved: .loopkit/state/calibration/summary.json (loopkit validate shows it)"
    )
    checker_calls = server.completed()
    assert len(checker_calls) == 5
    assert all(r.is_checker for r in checker_calls)
    assert {r.headers["authorization"] for r in checker_calls} == {"Bearer sk-calibrate-test"}


def test_each_example_renders_the_checker_prompt_with_its_own_inputs(
    project: Path, server: LLMServer, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["calibrate", "summary", "--labels", "labels.jsonl"])

    prompts = sorted(r.body["messages"][-1]["content"] for r in server.completed())
    auth = next(p for p in prompts if "Login is faster." in p)
    assert "- topic: auth" in auth
    assert "Instruction:\nSummarise the changes to auth for users." in auth
    assert "Output:\nLogin is faster. VERDICT:pass" in auth


def test_the_json_document_has_the_figures_usage_and_every_example(
    project: Path, server: LLMServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, document = calibrate_json(capsys=capsys)

    assert code == 0
    figures = {
        k: document[k]
        for k in ("examples", "judged", "agreed", "falsePasses", "falseFails", "errors")
    }
    assert figures == {
        "examples": 5,
        "judged": 5,
        "agreed": 3,
        "falsePasses": 1,
        "falseFails": 1,
        "errors": 0,
    }
    assert document["agreement"] == 0.6
    assert (document["humanPassed"], document["humanFailed"]) == (3, 2)
    assert document["checkers"] == ["Adversarial Verifier"]
    assert document["models"] == {"Adversarial Verifier": "team:local"}
    assert document["requests"] == 5
    assert len(server.completed()) == 5
    assert document["tokens"]["total"] == sum(r["tokens"]["total"] for r in document["results"])
    assert document["tokens"]["total"] > 0
    assert document["cost"] is not None and document["cost"] > 0
    assert document["saved"] == ".loopkit/state/calibration/summary.json"
    outcomes = {r["id"]: (r["pass"], r["checkerPass"], r["outcome"]) for r in document["results"]}
    assert outcomes == {
        "a": (True, True, "agree"),
        "b": (False, False, "agree"),
        "c": (False, True, "false_pass"),
        "d": (True, False, "false_fail"),
        "e": (True, True, "agree"),
    }
    c = next(r for r in document["results"] if r["id"] == "c")
    assert (c["line"], c["score"], c["expectedIssues"]) == (
        3,
        0.9,
        ["invents a flag no change added"],
    )
    d = next(r for r in document["results"] if r["id"] == "d")
    assert d["issues"] == ["the summary is wrong"]


def test_verbose_prints_each_example_with_the_checker_and_expected_issues(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["calibrate", "summary", "--labels", "labels.jsonl", "--verbose"])

    out = capsys.readouterr().out
    assert "  [ok] a, line 1: agree (person pass, checker pass 0.90)\n" in out
    assert (
        "  [x]  c, line 3: FALSE PASS (person fail, checker pass 0.90)\n"
        "       expected: invents a flag no change added\n"
    ) in out
    assert (
        "  [!]  d, line 4: false fail (person pass, checker fail 0.30)\n"
        "       - the summary is wrong\n"
    ) in out


def test_min_agreement_sets_the_exit_code(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    at, _ = calibrate_json("--min-agreement", "60", capsys=capsys)
    above, document = calibrate_json("--min-agreement", "80", capsys=capsys)

    assert (at, above) == (0, 1)
    assert (document["minAgreement"], document["ok"]) == (80, False)
    code = main(["calibrate", "summary", "--labels", "labels.jsonl", "--min-agreement", "80"])
    assert code == 1
    assert "  below --min-agreement 80%\n" in capsys.readouterr().out


def test_no_more_checker_calls_are_in_flight_than_the_concurrency(
    project: Path, server: LLMServer, capsys: pytest.CaptureFixture[str]
) -> None:
    def slow(body: dict[str, Any]) -> Reply:
        reply = answer_as_checker(body)
        reply.delay = 0.3
        return reply

    server.responder = slow
    code, document = calibrate_json("--concurrency", "2", capsys=capsys)

    assert code == 0 and document["agreed"] == 3
    spans = [(r.started, r.finished) for r in server.completed()]
    in_flight = max(sum(1 for s, f in spans if s <= t < f) for t, _ in spans)
    assert in_flight == 2


def test_with_several_checkers_an_example_passes_only_when_every_checker_passes(
    project: Path, server: LLMServer, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "loops" / "summary.yaml").write_text(
        LOOP.replace("checker: Adversarial Verifier", "checker: [Adversarial Verifier, style]")
        + "subagents:\n"
        "  style:\n"
        "    role: verifier\n"
        "    model: team:other\n"
        "    prompt: You check the style of summaries.\n"
    )
    with (project / "loopkit.yaml").open("a") as file:
        file.write(f"  other:\n    model: openai/gpt-4o\n    apiBase: {server.url}\n")

    def two_checkers(body: dict[str, Any]) -> Reply:
        if "check the style" in body["messages"][0]["content"]:
            if "Stuff." in body["messages"][-1]["content"]:
                return verdict(False, 0.2, ["says nothing"])
            return verdict(True, 0.8)
        return verdict(True, 0.9)  # the adversarial verifier passes everything

    server.responder = two_checkers
    code, document = calibrate_json(capsys=capsys)

    assert code == 0
    assert document["models"] == {"Adversarial Verifier": "team:local", "style": "team:other"}
    assert document["requests"] == 10
    assert (
        sorted(r.body["model"] for r in server.completed()) == ["gpt-4o"] * 5 + ["gpt-4o-mini"] * 5
    )
    outcomes = {r["id"]: r["outcome"] for r in document["results"]}
    assert outcomes == {
        "a": "agree",
        "b": "agree",
        "c": "false_pass",
        "d": "agree",
        "e": "agree",
    }
    b = next(r for r in document["results"] if r["id"] == "b")
    assert (b["checkerPass"], b["issues"]) == (False, ["style: says nothing"])


def test_an_example_the_provider_refuses_is_an_error_and_nothing_is_saved(
    project: Path, server: LLMServer, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse_billing(body: dict[str, Any]) -> Reply:
        if "billing" in body["messages"][-1]["content"]:
            return Reply(status=400, error="this prompt is refused")
        return answer_as_checker(body)

    server.responder = refuse_billing
    code, document = calibrate_json(capsys=capsys)

    assert code == 1
    assert (document["errors"], document["judged"], document["agreed"]) == (1, 4, 2)
    assert document["agreement"] == 0.5
    b = next(r for r in document["results"] if r["id"] == "b")
    assert b["outcome"] == "error" and "this prompt is refused" in b["error"]
    assert document["saved"] is None
    assert not (project / ".loopkit" / "state" / "calibration" / "summary.json").exists()


def test_a_dry_run_needs_no_model_and_saves_nothing(
    project: Path, server: LLMServer, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "loopkit.yaml").write_text("version: 1\n")  # no provider, no model anywhere

    code = main(
        ["calibrate", "summary", "--labels", "labels.jsonl", "--dry-run", "--min-agreement", "99"]
    )

    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0] == (
        "summary — checker calibration on 5 examples (labels.jsonl) (dry run: no model was called)"
    )
    assert "  agreement: 60% (3 of 5)\n" in out  # the dry-run checker passes everything
    assert "  not saved: a dry run's figures are not the checker's\n" in out
    assert "  --min-agreement 99 is not applied in a dry run\n" in out
    assert server.requests == []
    assert not (project / ".loopkit").exists()


def test_a_live_calibration_without_a_model_says_how_to_configure_one(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "loopkit.yaml").write_text("version: 1\n")

    assert main(["calibrate", "summary", "--labels", "labels.jsonl"]) == 2
    assert "loopkit calibrate: no model configured" in capsys.readouterr().err


# ── The labels file ──────────────────────────────────────────────────────


def test_mistakes_in_a_jsonl_labels_file_are_reported_at_file_and_line(
    project: Path, server: LLMServer, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "bad.jsonl").write_text(
        json.dumps(LABELS[0])
        + "\n"
        + json.dumps({"inputs": {"topic": "x"}, "output": "y", "passed": True})
        + "\n\n"
        + json.dumps({"inputs": {"topc": "x"}, "output": "y", "pass": "yes"})
        + "\n"
    )

    code = main(["calibrate", "summary", "--labels", "bad.jsonl"])

    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        "bad.jsonl:2: example 2: unknown key 'passed' (passed)",
        "  hint: did you mean 'pass'?",
        "bad.jsonl:2: example 2: no 'pass': say whether a person passed these outputs "
        "(pass: true or false)",
        "bad.jsonl:4: example 3: 'pass' must be true or false, not the text 'yes' (pass)",
        "bad.jsonl:4: example 3: the loop declares no input 'topc' (its inputs: topic) (inputs)",
        "  hint: did you mean 'topic'?",
        "bad.jsonl:4: example 3: no value for the required input 'topic' (a run would be "
        "refused without it) (inputs)",
    ]
    assert server.requests == []


def test_a_line_that_is_not_json_is_reported_with_its_column(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "bad.jsonl").write_text(json.dumps(LABELS[0]) + "\n" + '{"output": "x",}\n')

    assert main(["calibrate", "summary", "--labels", "bad.jsonl"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "bad.jsonl:2:16: this line is not JSON: Expecting property name enclosed in double quotes",
        "  hint: JSON Lines: one whole JSON object per line",
    ]


def test_mistakes_in_a_yaml_labels_file_are_reported_at_line_and_column(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "labels.yaml").write_text(
        "examples:\n"
        "  - id: ok\n"
        "    inputs: {topic: auth}\n"
        "    output: Fine.\n"
        "    pass: true\n"
        "  - id: two\n"
        "    inputs: {topic: auth}\n"
        "    outputs:\n"
        "      Sumary: Fine.\n"
        "    pass: false\n"
    )

    assert main(["calibrate", "summary", "--labels", "labels.yaml"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "labels.yaml:8:5: example 2: 'outputs' names 'Sumary', which is no step of the loop "
        "(makers: Summary) (outputs)",
        "  hint: did you mean 'Summary'?",
    ]


def test_one_output_for_a_loop_with_several_makers_is_refused(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    two = LOOP.replace(
        "pipeline:\n",
        "pipeline:\n  - prompt: List the changes to {{ inputs.topic }}.\n    label: Changes\n",
    ).replace("maker: Summary", "maker: [Changes, Summary]")
    (project / "loops" / "summary.yaml").write_text(two)
    (project / "labels.yaml").write_text(
        "- {inputs: {topic: a}, output: x, pass: true}\n"
        "- {inputs: {topic: a}, outputs: {Summary: x}, pass: true}\n"
    )

    assert main(["calibrate", "summary", "--labels", "labels.yaml"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "labels.yaml:1:24: example 1: the loop has 2 makers (Changes, Summary): give 'outputs' "
        "by maker label instead of one 'output' (output)",
        "labels.yaml:2:24: example 2: no output for maker 'Changes' (every maker's output is "
        'shown to the checker; write "" for one that produced nothing) (outputs)',
    ]


def test_a_loop_without_verification_has_nothing_to_calibrate(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "loops" / "summary.yaml").write_text(LOOP.split("verify:")[0])

    assert main(["calibrate", "summary", "--labels", "labels.jsonl"]) == 2
    assert capsys.readouterr().err == (
        "loopkit calibrate: the loop 'summary' has no 'verify:': there is no checker to calibrate\n"
    )


# ── The record and the LRS ───────────────────────────────────────────────


def test_the_record_keeps_the_time_hash_model_and_figures(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calibrate_json(capsys=capsys)

    context = find_project()
    loop = context.load("summary")
    record = json.loads(record_path(loop, context).read_text())
    assert record["loop"] == "summary"
    assert record["loopHash"] == content_hash(loop, context.project)
    assert record["labels"] == "labels.jsonl"
    assert record["labelsHash"].startswith("sha256:")
    assert record["models"] == {"Adversarial Verifier": "team:local"}
    assert (record["judged"], record["agreed"], record["falsePasses"], record["falseFails"]) == (
        5,
        3,
        1,
        1,
    )
    assert record["at"] > 0 and record["cost"] > 0


def test_validate_shows_the_last_calibration_without_changing_the_score(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = validate_json(capsys)
    calibrate_json(capsys=capsys)
    after = validate_json(capsys)

    assert (after["score"], after["dimensions"]) == (before["score"], before["dimensions"])
    added = [f for f in after["findings"] if f not in before["findings"]]
    assert len(added) == 1
    finding = added[0]
    assert finding["level"] == "warn" and finding["dimension"] == "verification"
    assert finding["message"].startswith("Checker calibrated 20")
    assert finding["message"].endswith(": 60% agreement on 5 examples, 1 false pass")
    assert finding["hint"] == (
        "the checker passed 1 example a person failed: sharpen its prompt (or give it "
        "another model) and calibrate again"
    )
    # It comes right after the verification dimension's own findings.
    dimensions = [f["dimension"] for f in after["findings"]]
    assert dimensions.index("budget") == dimensions.index("verification") + 2


def test_a_loop_changed_since_its_calibration_gets_a_warning(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calibrate_json(capsys=capsys)
    loop_file = project / "loops" / "summary.yaml"
    loop_file.write_text(loop_file.read_text().replace("for users.", "for its users, briefly."))

    main(["validate", "summary"])

    out = capsys.readouterr().out
    assert "  [!] The loop changed since its checker was calibrated (20" in out
    assert (
        "       the figures may no longer hold: run 'loopkit calibrate LOOP --labels FILE' again\n"
    ) in out


def test_comments_and_layout_do_not_make_a_calibration_stale(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calibrate_json(capsys=capsys)
    loop_file = project / "loops" / "summary.yaml"
    loop_file.write_text("# reviewed by the docs team\n" + loop_file.read_text())

    context = find_project()
    calibration = last_calibration(context.load("summary"), context)

    assert calibration is not None and calibration.current
    assert (calibration.examples, calibration.false_passes, calibration.agreement) == (5, 1, 0.6)


def test_a_calibration_without_false_passes_is_an_ok_finding(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_jsonl(project / "labels.jsonl", [e for e in LABELS if e["id"] != "c"])
    calibrate_json(capsys=capsys)

    main(["validate", "summary"])

    out = capsys.readouterr().out
    assert ": 75% agreement on 4 examples, 0 false passes\n" in out
    line = next(line for line in out.splitlines() if "Checker calibrated" in line)
    assert line.startswith("  [ok] Checker calibrated ")


def test_with_calibration_adds_findings_after_verification_and_keeps_the_score() -> None:
    loop = load_loop(LOOP, "summary.yaml")
    report = lrs.score(loop)

    unchanged = lrs.with_calibration(report, None)
    calibrated = lrs.with_calibration(
        report,
        lrs.Calibration(
            at=1796083200.0,  # 2026-12-01
            agreement=0.92,
            examples=25,
            false_passes=1,
            false_fails=1,
            current=False,
        ),
    )

    assert unchanged is report
    assert (calibrated.score, calibrated.grade) == (report.score, report.grade)
    added = [f for f in calibrated.findings if f not in report.findings]
    assert [(f.level, f.message) for f in added] == [
        ("warn", "Checker calibrated 2026-12-01: 92% agreement on 25 examples, 1 false pass"),
        ("warn", "The loop changed since its checker was calibrated (2026-12-01)"),
    ]
    first = calibrated.findings.index(added[0])
    assert calibrated.findings[first - 1].dimension == "verification"


def test_an_agreement_short_of_one_never_reads_as_100_percent() -> None:
    assert (lrs.percent(0.999), lrs.percent(1.0), lrs.percent(0.915), lrs.percent(0.0)) == (
        99,
        100,
        92,
        0,
    )

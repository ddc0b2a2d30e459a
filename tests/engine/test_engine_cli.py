"""``loopkit run``, ``loopkit status`` and ``loopkit-runtime`` as real processes."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from llm_server import LLMServer, Reply

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("LOOPKIT_")}
    out.update(extra)
    return out


def write(project: Path, name: str, text: str) -> None:
    (project / "loops").mkdir(exist_ok=True)
    (project / "loops" / f"{name}.yaml").write_text(text)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "loops").mkdir()
    shutil.copy(REPO / "loops" / "pr-review.yaml", tmp_path / "loops" / "pr-review.yaml")
    return tmp_path


@pytest.fixture(scope="module")
def server() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


SEED = [
    "============================================================",
    "  Running Loop: pr-review",
    "============================================================",
    "Config: loops/pr-review.yaml",
    "Pipeline: 2 step(s)",
    "Verification: Maker=['Bug Review', 'Security Review',",
    "              'Quality Review', 'Performance Review']",
    "              | Checker=Adversarial Verifier",
    "",
    "── Pipeline Execution ────────────────────────────────",
    # Issue 18: the diff comes through the GitHub connector (a dry run calls no tool).
    "  -> Tool: Diff...",
    "    tool github.get_pull_diff [dry run: not called]",
    "  Running 4 agents in parallel...",
    "  -> Agent: Bug Review...",
    "  -> Agent: Security Review...",
    "  -> Agent: Quality Review...",
    "  -> Agent: Performance Review...",
    re.compile(r"    \+ Completed \(\d+ms, 0 up/0 down tokens, \$0\.0000\)"),
    "",
    "── Maker/Checker Verification ────────────────────────",
    "  Round 1: [ok] PASS (score: 0.95)",
    "",
    # ... and the verified review is posted after the pass.
    "── After Verification (onPass) ───────────────────────",
    "  -> Tool: Post Review...",
    "    tool github.create_review [dry run: not called]",
    "",
    "── Results ───────────────────────────────────────────",
    "[ok] Loop 'pr-review' completed successfully",
    re.compile(r"  Duration: \d+ms"),
    "  Steps: 4",
    "  Est. Cost: $0.0000",
]


def assert_lines(lines: list[str], expected: list[str | re.Pattern[str]]) -> None:
    assert len(lines) >= len(expected), lines
    for got, want in zip(lines, expected, strict=False):
        if isinstance(want, str):
            assert got == want
        else:
            assert want.fullmatch(got), got


def test_the_runtime_dry_run_prints_the_seed_transcript(project: Path) -> None:
    done = subprocess.run(
        [str(BIN / "loopkit-runtime"), "--dry-run", "run", "pr-review"],
        cwd=project,
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert_lines(lines, SEED)
    assert lines[len(SEED)] == (
        "  Projected live cost: unknown (no model configured: set 'model:' or LOOPKIT_MODEL)"
    )
    assert done.stderr == ""


def test_a_dry_run_projects_the_live_cost_of_the_configured_model(project: Path) -> None:
    done = subprocess.run(
        [str(BIN / "loopkit-runtime"), "--dry-run", "run", "pr-review"],
        cwd=project,
        env=env(LOOPKIT_MODEL="gpt-4o-mini"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    projected = done.stdout.splitlines()[len(SEED)]
    assert re.fullmatch(
        r"  Projected live cost: \$0\.\d{4} \(gpt-4o-mini; [\d,]+ input tokens counted, "
        r"~2,150 output tokens estimated\)",
        projected,
    ), projected


def test_a_dry_run_can_demonstrate_failing_rounds(project: Path) -> None:
    text = (project / "loops" / "pr-review.yaml").read_text()
    write(project, "pr-review", text + "dryRun:\n  checkerScores: [0.5, 0.9]\n")
    done = subprocess.run(
        [str(BIN / "loopkit"), "run", "pr-review", "--dry-run"],
        cwd=project,
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert (
        "  Round 1: [x] FAIL (score: 0.50)\n    - dry run: the checker scored round 1 at 0.5\n"
        in out
    )
    assert "  Round 2: [ok] PASS (score: 0.90)" in out
    assert "  Steps: 8" in out


def test_json_output_is_one_numbered_event_per_line(project: Path) -> None:
    done = subprocess.run(
        [str(BIN / "loopkit"), "run", "pr-review", "--dry-run", "--json"],
        cwd=project,
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_finished"
    assert events[-1]["status"] == "succeeded"
    assert len({e["run_id"] for e in events}) == 1


def test_an_unknown_loop_is_a_clear_error(project: Path) -> None:
    done = subprocess.run(
        [str(BIN / "loopkit"), "run", "nope"],
        cwd=project,
        env=env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("nope: no loop named 'nope' in ")
    assert "<string>" not in done.stderr
    assert "Traceback" not in done.stderr


THREE = """\
name: three
model: openai/test
pipeline:
  - prompt: "Step A: write the first part."
    label: A
  - prompt: "Step B: write the second part."
    label: B
  - prompt: "Step C: write the third part."
    label: C
"""


def runs_of(project: Path) -> list[dict[str, object]]:
    folder = project / ".loopkit" / "state" / "runs"
    return [json.loads((d / "run.json").read_text()) for d in folder.iterdir()]


def test_a_killed_run_resumes_without_paying_finished_steps_twice(
    tmp_path: Path, server: LLMServer
) -> None:
    server.reset()
    write(tmp_path, "three", THREE)
    server.when("Step C", Reply("slow", delay=60), times=1)
    live = env(LOOPKIT_API_BASE=server.url)
    proc = subprocess.Popen(
        [str(BIN / "loopkit"), "run", "three", "--json"],
        cwd=tmp_path,
        env=live,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while server.count("Step C", status=None) == 0:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    (record,) = runs_of(tmp_path)
    assert record["status"] == "running"
    run_id = str(record["id"])

    done = subprocess.run(
        [str(BIN / "loopkit"), "run", "three", "--resume", run_id, "--json"],
        cwd=tmp_path,
        env=live,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert server.count("Step A") == 1
    assert server.count("Step B") == 1
    assert server.count("Step C", status=None) == 2  # the killed call and the resumed one
    events = [json.loads(line) for line in done.stdout.splitlines()]
    finished = {e["label"]: e["resumed"] for e in events if e["type"] == "step_finished"}
    assert finished == {"A": True, "B": True, "C": False}
    assert events[-1]["status"] == "succeeded"
    assert events[-1]["requests"] == 3  # A and B counted once, from their checkpoints
    assert events[0]["seq"] > 4  # numbering goes on after the killed process's events
    (record,) = runs_of(tmp_path)
    assert (record["id"], record["status"]) == (run_id, "succeeded")


SLOW = """\
name: slow
pipeline:
  - prompt: "First."
    label: First
  - prompt: "Second."
    label: Second
dryRun:
  latencyMs: 20000
"""


def test_ctrl_c_cancels_cleanly_and_status_lists_the_run(tmp_path: Path) -> None:
    write(tmp_path, "slow", SLOW)
    proc = subprocess.Popen(
        [str(BIN / "loopkit"), "run", "slow", "--dry-run", "--json"],
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if json.loads(line)["type"] == "step_started":
            break
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, err
    assert json.loads(rest.splitlines()[-1])["status"] == "cancelled"
    (record,) = runs_of(tmp_path)
    assert (record["status"], record["error"]) == ("cancelled", "interrupted (Ctrl-C)")

    status = subprocess.run(
        [str(BIN / "loopkit"), "status"], cwd=tmp_path, env=env(), capture_output=True, text=True
    )
    assert status.returncode == 0, status.stderr
    header, row = status.stdout.splitlines()
    assert header.split() == [
        "RUN",
        "ID",
        "LOOP",
        "STATUS",
        "STARTED",
        "DURATION",
        "TOKENS",
        "COST",
    ]
    assert row.split()[:4] == [str(record["id"]), "slow", "cancelled", "(dry)"]


def test_a_dry_run_never_imports_litellm(project: Path) -> None:
    code = (
        "import sys; from loopkit.cli import runtime_main; "
        "code = runtime_main(['--dry-run', 'run', 'pr-review']); "
        "print('LITELLM' if 'litellm' in sys.modules else 'NO-LITELLM', code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=project,
        env=env(LOOPKIT_MODEL="gpt-4o-mini"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.splitlines()[-1] == "NO-LITELLM 0", done.stderr

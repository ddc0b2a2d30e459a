"""A dry run and a live run never share a run record: resuming one as the other is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from llm_server import LLMServer, Reply

from loopkit.engine import RunOptions, run_loop
from loopkit.llm import DryRunProvider, LiteLLMProvider
from loopkit.memory import InMemoryStore
from loopkit.sinks import ListSink
from loopkit.yamlio import loop_from_data

REPO = Path(__file__).resolve().parents[2]

TWO = {
    "name": "two",
    "model": "openai/test",
    "pipeline": [
        {"prompt": "Step A: write the first part.", "label": "A", "retries": 0},
        {"prompt": "Step B: write the second part.", "label": "B", "retries": 0},
    ],
}


@pytest.fixture(scope="module")
def server() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


async def test_a_failed_live_run_cannot_be_resumed_as_a_dry_run(server: LLMServer) -> None:
    server.reset()
    server.when("Step B", Reply(status=400, error="bad request"))
    loop, store = loop_from_data(TWO), InMemoryStore()
    live = await run_loop(loop, LiteLLMProvider(api_base=server.url), store=store)
    assert live.status == "failed"
    before = store.get_run(live.id)

    sink = ListSink()
    dry = await run_loop(
        loop,
        DryRunProvider(),
        sinks=[sink],
        store=store,
        options=RunOptions(run_id=live.id, resume=True),
    )

    assert (dry.status, dry.error_code) == ("failed", "resume_refused")
    assert dry.error == f"run '{live.id}' was a live run; resume it without --dry-run"
    assert store.get_run(live.id) == before  # the live record is untouched
    assert before is not None and (before.status, before.dry_run) == ("failed", False)
    assert [e.type for e in sink.events] == ["run_started", "run_finished"]


async def test_a_stopped_dry_run_cannot_be_resumed_as_a_live_run(server: LLMServer) -> None:
    server.reset()
    loop = loop_from_data({**TWO, "budget": {"maxModelCalls": 1}})
    store = InMemoryStore()
    dry = await run_loop(loop, DryRunProvider(), store=store)
    assert (dry.status, dry.limit) == ("budget_exceeded", "maxModelCalls")

    live = await run_loop(
        loop_from_data(TWO),
        LiteLLMProvider(api_base=server.url),
        store=store,
        options=RunOptions(run_id=dry.id, resume=True),
    )

    assert (live.status, live.error_code) == ("failed", "resume_refused")
    assert live.error == f"run '{dry.id}' was a dry run; resume it with --dry-run"
    assert server.requests == []
    record = store.get_run(dry.id)
    assert record is not None and (record.status, record.dry_run) == ("budget_exceeded", True)


THREE = """\
name: three
model: openai/test
pipeline:
  - prompt: "Step A: write the first part."
    label: A
    retries: 0
  - prompt: "Step B: write the second part."
    label: B
    retries: 0
"""


def cli(cwd: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPKIT_")}
    env.update(PYTHONPATH=str(REPO), **env_extra)
    return subprocess.run(
        [sys.executable, "-m", "loopkit.cli", "run", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_cli_refuses_a_dry_resume_of_a_failed_live_run_and_resumes_it_live(
    tmp_path: Path, server: LLMServer
) -> None:
    server.reset()
    server.when("Step B", Reply(status=400, error="bad request"), times=1)
    (tmp_path / "loops").mkdir()
    (tmp_path / "loops" / "three.yaml").write_text(THREE)
    live_env = {"LOOPKIT_API_BASE": server.url}

    failed = cli(tmp_path, "three", "--json", **live_env)
    assert failed.returncode == 1, failed.stderr
    run_id = json.loads(failed.stdout.splitlines()[-1])["run_id"]
    record_file = tmp_path / ".loopkit" / "state" / "runs" / run_id / "run.json"
    before = json.loads(record_file.read_text())
    assert (before["status"], before["dry_run"]) == ("failed", False)

    refused = cli(tmp_path, "three", "--dry-run", "--resume", run_id, "--json")
    assert refused.returncode == 1
    finished = json.loads(refused.stdout.splitlines()[-1])
    assert (finished["status"], finished["error"]) == (
        "failed",
        f"run '{run_id}' was a live run; resume it without --dry-run",
    )
    assert json.loads(record_file.read_text()) == before

    resumed = cli(tmp_path, "three", "--resume", run_id, "--json", **live_env)
    assert resumed.returncode == 0, resumed.stderr
    after = json.loads(record_file.read_text())
    assert (after["status"], after["dry_run"], after["requests"]) == ("succeeded", False, 2)
    assert server.count("Step A") == 1  # answered from its checkpoint on resume


def test_the_transcript_resumes_a_dry_run_dry_and_offers_no_resume_after_a_refusal(
    tmp_path: Path,
) -> None:
    (tmp_path / "loops").mkdir()
    (tmp_path / "loops" / "three.yaml").write_text(THREE + "budget:\n  maxModelCalls: 1\n")

    stopped = cli(tmp_path, "three", "--dry-run")
    assert stopped.returncode == 1, stopped.stderr
    (run_dir,) = (tmp_path / ".loopkit" / "state" / "runs").iterdir()
    run_id = run_dir.name
    assert stopped.stdout.splitlines()[-1] == (
        f"  Run: {run_id} (continue with: loopkit run three --dry-run --resume {run_id})"
    )

    refused = cli(tmp_path, "three", "--resume", run_id)
    assert refused.returncode == 1
    lines = refused.stdout.splitlines()
    assert (
        f"[x] Loop 'three' failed: run '{run_id}' was a dry run; resume it with --dry-run" in lines
    )
    assert not any("continue with" in line for line in lines)

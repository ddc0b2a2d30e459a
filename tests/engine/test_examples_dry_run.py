"""Every example loop runs end to end with the dry-run provider, on a realistic trigger."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from pathlib import Path

import pytest

from loopkit.cli import main

ROOT = Path(__file__).resolve().parents[2]

REPOSITORY = {"name": "app", "full_name": "acme/app", "owner": {"login": "acme"}}
PAYLOADS: dict[str, dict[str, object]] = {
    "pr-review": {
        "action": "opened",
        "pull_request": {
            "number": 3,
            "title": "Fix login",
            "diff_url": "https://example.com/3.diff",
        },
        "repository": REPOSITORY,
    },
    "ci-failure-sweeper": {
        "action": "completed",
        "workflow_run": {
            "id": 42,
            "name": "tests",
            "conclusion": "failure",
            "head_branch": "main",
            "head_sha": "0123456789abcdef",
        },
    },
    "post-merge-cleanup": {
        "action": "closed",
        "pull_request": {
            "number": 7,
            "title": "Add caching",
            "merged": True,
            "user": {"login": "ada"},
        },
        "repository": REPOSITORY,
    },
    "dependency-update-review": {
        "action": "opened",
        "pull_request": {
            "number": 9,
            "title": "Bump requests",
            "user": {"login": "dependabot[bot]"},
        },
        "repository": REPOSITORY,
    },
}
INPUTS = {"release-notes": ["version=1.4.0"], "incident-summary": ["incidentId=INC-7"]}
# Agent steps each loop runs on the trigger above (the conditionals' branches taken; tool
# steps make no model call and are not counted).
STEPS = {
    "pr-review": 4,
    "daily-triage": 3,
    "ci-failure-sweeper": 4,
    "post-merge-cleanup": 4,
    "dependency-update-review": 4,
    "docs-drift-check": 3,
    "release-notes": 2,
    "incident-summary": 2,
}

# The connector write each loop delivers its verified result with (onPass).
DELIVERS = {
    "pr-review": "github.create_review",
    "post-merge-cleanup": "github.create_issue",
    "dependency-update-review": "github.create_comment",
    "release-notes": "github.create_release",
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    shutil.copytree(ROOT / "loops", root / "loops")
    shutil.copytree(ROOT / "skills", root / "skills")
    return root


@pytest.mark.parametrize("name", sorted(STEPS))
def test_each_example_loop_completes_a_dry_run(project: Path, name: str) -> None:
    args = ["run", "--dry-run", "--approve", name]
    if name in PAYLOADS:
        payload = project / f"{name}.json"
        payload.write_text(json.dumps(PAYLOADS[name]))
        args += ["--payload", str(payload)]
    for value in INPUTS.get(name, []):
        args += ["--input", value]
    code, text = run_cli(project, args)
    assert code == 0, text
    assert f"[ok] Loop '{name}' completed successfully" in text
    assert f"Steps: {STEPS[name]}\n" in text
    if name in DELIVERS:  # the verified result is delivered after the pass: not in a dry run
        assert "── After Verification (onPass) " in text
        assert f"    tool {DELIVERS[name]} [dry run: not called]\n" in text


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "loops").glob("*.yaml")))
def test_each_example_file_dry_runs_to_success_with_no_arguments(project: Path, name: str) -> None:
    code, text = run_cli(project, ["run", f"loops/{name}.yaml", "--dry-run"])
    assert code == 0, text
    assert f"[ok] Loop '{name}' completed successfully" in text


def run_cli(project: Path, args: list[str]) -> tuple[int, str]:
    """Run ``loopkit ARGS`` in-process from the project's folder; return its code and output."""
    out = io.StringIO()
    before = Path.cwd()
    os.chdir(project)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main(args)
    finally:
        os.chdir(before)
    return code, out.getvalue()

"""``loopkit validate --format github``: annotations at file:line, as a GitHub runner reads them."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loopkit.annotations import Annotation, escape_data, escape_property

LOOPKIT = str(Path(sys.executable).parent / "loopkit")

GOOD = """\
name: good
description: Summarise a text.
pipeline:
  - prompt: Summarise {{ inputs.text }}
    label: Summary
    timeout: 60
    retries: 2
inputs:
  text:
    default: hello
verify:
  maker: [Summary]
  checker: Adversarial Verifier
  maxRounds: 3
budget:
  maxTokens: 50000
  maxDurationMinutes: 5
  maxCostUsd: 0.5
  maxModelCalls: 10
memory:
  store: filesystem
"""

BROKEN = """\
name: broken
pipeline:
  - prompt: hi
    lable: Summary
"""

# Scores below 80: no verification; its budget has no model-call cap (line 4).
WEAK = """\
name: weak
pipeline:
  - prompt: hi
budget:
  maxTokens: 50000
"""


def loopkit(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``loopkit`` in this process (fast), with only the ``GITHUB_*`` variables given."""
    from loopkit.cli import main

    saved = dict(os.environ)
    out, err = io.StringIO(), io.StringIO()
    before = Path.cwd()
    try:
        for key in [k for k in os.environ if k.startswith("GITHUB_")]:
            del os.environ[key]
        os.environ.update(env)
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        os.chdir(before)
        os.environ.clear()
        os.environ.update(saved)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def console(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the real ``loopkit`` console script, as a CI job does."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    return subprocess.run(
        [LOOPKIT, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=60,
        check=False,
    )


def commands(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("::")]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "loopkit.yaml").write_text("name: acme\n")
    (tmp_path / "loops").mkdir()
    (tmp_path / "loops" / "good.yaml").write_text(GOOD)
    return tmp_path


def test_escaping_follows_the_runners_rules_for_messages_and_properties() -> None:
    assert escape_data("100% done\r\nnext: a, b") == "100%25 done%0D%0Anext: a, b"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    annotation = Annotation(
        "warning", "50% of\nsteps", file="loops/a,b.yaml", line=3, column=5, title="LRS: x, y"
    )
    assert str(annotation) == (
        "::warning file=loops/a%2Cb.yaml,line=3,col=5,title=LRS%3A x%2C y::50%25 of%0Asteps"
    )
    assert str(Annotation("error", "bare")) == "::error::bare"


def test_an_error_is_annotated_at_its_file_line_and_column(project: Path) -> None:
    (project / "loops" / "broken.yaml").write_text(BROKEN)
    done = loopkit("validate", "--format", "github", cwd=project)
    assert done.returncode == 1
    assert commands(done.stdout) == [
        "::error file=loops/broken.yaml,line=4,col=5,title=LoopKit%3A broken is invalid::"
        "unknown key 'lable' (pipeline[0].lable)%0Ahint: did you mean 'label'?"
    ]
    # The human report is still there, above the commands.
    assert done.stdout.startswith("broken — invalid (1 error)\n")


def test_a_loop_below_min_score_is_an_error_at_its_name_with_its_findings_as_warnings(
    project: Path,
) -> None:
    (project / "loops" / "weak.yaml").write_text(WEAK)
    done = loopkit("validate", "--format", "github", "--min-score", "80", cwd=project)
    assert done.returncode == 1
    found = commands(done.stdout)
    score = next(line for line in done.stdout.splitlines() if line.startswith("weak — LRS: "))
    points = score.split("LRS: ")[1].split("/")[0]
    assert int(points) < 80
    assert found[0].startswith(
        "::error file=loops/weak.yaml,line=1,col=1,"
        "title=LoopKit LRS%3A weak below --min-score 80::"
        f"weak scores {points}/100 (grade "
    )
    assert "below --min-score 80" in found[0].split("::")[2]
    # The missing model-call cap points at the budget the file has (line 4), not line 1.
    assert (
        "::warning file=loops/weak.yaml,line=4,col=1,title=LoopKit LRS (weak)%3A Budget controls::"
        "[!] Budget has no limit on maxDurationMinutes, maxCostUsd (budget)"
    ) in [line.split("%0A")[0] for line in found]
    assert any(
        line.startswith("::warning file=loops/weak.yaml,line=1,col=1,")
        and "[!] Verification missing (verify)" in line
        for line in found
    )
    # The good loop meets the bar: nothing is said about it.
    assert not [line for line in found if "good.yaml" in line]


def test_a_step_finding_points_at_the_steps_line(project: Path) -> None:
    (project / "loops" / "good.yaml").write_text(
        GOOD.replace("    timeout: 60\n    retries: 2\n", "")
    )
    done = loopkit("validate", "--format", "github", cwd=project)
    assert done.returncode == 0
    [warning] = commands(done.stdout)
    assert warning.startswith(
        "::warning file=loops/good.yaml,line=4,col=5,title=LoopKit LRS (good)%3A Failure recovery::"
        "[!] 1 of 1 agent step without a timeout or retries (pipeline[0])%0Ahint: set timeout"
    )


def test_github_actions_turns_annotations_on_and_format_text_turns_them_off(
    project: Path,
) -> None:
    (project / "loops" / "broken.yaml").write_text(BROKEN)
    on = console("validate", cwd=project, GITHUB_ACTIONS="true")
    assert len(commands(on.stdout)) == 1
    off = loopkit("validate", "--format", "text", cwd=project, GITHUB_ACTIONS="true")
    assert commands(off.stdout) == []
    as_json = loopkit("validate", "--json", cwd=project, GITHUB_ACTIONS="true")
    assert as_json.stdout.startswith("{")
    assert commands(as_json.stdout) == []


def test_json_and_another_format_together_are_a_usage_error(project: Path) -> None:
    done = loopkit("validate", "--json", "--format", "github", cwd=project)
    assert done.returncode == 2
    assert done.stderr == ("loopkit validate: --json and --format are two ways to say one thing\n")


def test_annotated_files_are_relative_to_the_github_workspace(project: Path) -> None:
    (project / "loops" / "broken.yaml").write_text(BROKEN)
    # The step runs in loops/ (its working-directory); GitHub wants repository paths.
    done = loopkit(
        "validate",
        "broken.yaml",
        cwd=project / "loops",
        GITHUB_ACTIONS="true",
        GITHUB_WORKSPACE=str(project),
    )
    assert commands(done.stdout)[0].startswith("::error file=loops/broken.yaml,line=4,col=5,")


def test_an_inline_loops_findings_point_into_the_project_file(tmp_path: Path) -> None:
    (tmp_path / "loopkit.yaml").write_text(
        "name: acme\nloops:\n  solo:\n    name: solo\n    pipeline:\n      - prompt: hi\n"
    )
    done = loopkit("validate", "--format", "github", cwd=tmp_path)
    found = commands(done.stdout)
    assert any(
        line.startswith("::warning file=loopkit.yaml,line=6,col=9,")
        and "without a timeout or retries (pipeline[0])" in line
        for line in found
    ), found


def test_summary_appends_a_markdown_table_of_the_scores(project: Path) -> None:
    (project / "loops" / "broken.yaml").write_text(BROKEN)
    (project / "loops" / "weak.yaml").write_text(WEAK)
    summary = project / "summary.md"
    summary.write_text("before\n")
    done = loopkit("validate", "--min-score", "80", "--summary", str(summary), cwd=project)
    assert done.returncode == 1
    lines = summary.read_text().splitlines()
    assert lines[:5] == [
        "before",
        "### LoopKit: loop readiness (--min-score 80)",
        "",
        "| Loop | File | LRS | Result |",
        "| --- | --- | --- | --- |",
    ]
    assert lines[5] == "| broken | `loops/broken.yaml` | — | ❌ invalid (1 error) |"
    assert lines[6].startswith("| good | `loops/good.yaml` | 100/100 (A) | ✅ ok |")
    assert lines[7].startswith("| weak | `loops/weak.yaml` | ") and lines[7].endswith(
        "| ❌ below 80 |"
    )


def test_an_unwritable_summary_is_a_clear_error(project: Path) -> None:
    done = loopkit("validate", "--summary", str(project / "no" / "such" / "file.md"), cwd=project)
    assert done.returncode == 2
    assert done.stderr.startswith(f"loopkit validate: cannot write {project / 'no'}")
    assert "Traceback" not in done.stderr

"""``loopkit validate`` through the real console script, as CI would run it."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BROKEN = Path(__file__).resolve().parent / "broken"
LOOPKIT = str(Path(sys.executable).parent / "loopkit")


def loopkit(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LOOPKIT, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )


def in_process(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run ``loopkit`` in this process (fast); the console-script tests above use a real one."""
    from loopkit.cli import main

    out, err = io.StringIO(), io.StringIO()
    before = Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        os.chdir(before)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def test_it_prints_each_loops_score_and_findings_in_the_seeds_layout() -> None:
    done = loopkit("validate", "loops/pr-review.yaml", "loops/daily-triage.yaml")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "pr-review — LRS: 91/100 (Grade A)"
    assert "  [ok] Maker/Checker separation enforced" in lines
    assert "  [ok] Budget controls configured (3 dimensions)" in lines
    triage = lines.index("daily-triage — LRS: 55/100 (Grade D)")
    assert lines[triage + 1] == "  [ok] Max iterations set"
    assert "  [!] Add budget controls for production" in lines[triage:]
    assert "  [!] Verification missing" in lines[triage:]
    assert lines[-1] == "2 loops, 2 valid"
    assert "\033[" not in done.stdout  # not a terminal: no colour


def test_it_validates_the_projects_loops_folder_by_default() -> None:
    done = loopkit("validate")
    assert done.returncode == 0, done.stdout + done.stderr
    count = len(list((ROOT / "loops").glob("*.yaml")))
    assert done.stdout.splitlines()[-1] == f"{count} loops, {count} valid"


def test_json_output_carries_the_lrs_report_of_each_loop() -> None:
    done = loopkit("validate", "--json", "loops/")
    assert done.returncode == 0
    document = json.loads(done.stdout)
    assert document["ok"] is True
    by_name = {entry["name"]: entry for entry in document["loops"]}
    triage = by_name["daily-triage"]
    assert triage["ok"] is True and triage["errors"] == []
    assert triage["lrs"]["grade"] == "D"
    budget = next(f for f in triage["lrs"]["findings"] if f["dimension"] == "budget")
    assert budget["fix"] == {
        "label": "Add budget controls",
        "patch": {"budget": {"maxTokens": 200000, "maxDurationMinutes": 30, "maxCostUsd": 5}},
    }


def test_min_score_fails_the_build_below_it_and_passes_at_it() -> None:
    below = loopkit("validate", "--min-score", "60", "loops/")
    assert below.returncode == 1
    assert below.stdout.splitlines()[-1].endswith("1 below --min-score 60 (daily-triage)")
    at = loopkit("validate", "--min-score", "55", "loops/")
    assert at.returncode == 0
    as_json = loopkit("validate", "--json", "--min-score", "95", "loops/pr-review.yaml")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["ok"] is False


@pytest.mark.parametrize(
    ("name", "error"),
    [
        (
            "bad-indentation",
            "bad-indentation.yaml:4:11: YAML syntax error: unexpected ':' (bad indentation, or a "
            "value with ': ' that needs quotes)",
        ),
        ("unknown-key", "unknown-key.yaml:4:5: unknown key 'lable' (pipeline[0].lable)"),
        (
            "wrong-type",
            "wrong-type.yaml:6:14: expected a whole number, got 'lots' (budget.maxTokens)",
        ),
        (
            "missing-checker",
            "missing-checker.yaml:6:3: missing required key 'checker' (verify.checker)",
        ),
        (
            "duplicate-labels",
            "duplicate-labels.yaml:7:16: duplicate label 'Review' (already used at "
            "pipeline[0].parallel[0]) (pipeline[0].parallel[1].label)",
        ),
        (
            "bad-cron",
            "bad-cron.yaml:4:13: '0 25 * * *' is not a valid cron expression: hour 25 is out of "
            "range (0-23) (trigger.schedule)",
        ),
        (
            "bad-when",
            "bad-when.yaml:5:11: 'when' is not a valid expression: unexpected end of expression "
            "(pipeline[1].when)",
        ),
    ],
)
def test_each_broken_loop_gives_one_clear_error_and_no_traceback(name: str, error: str) -> None:
    done = in_process("validate", str(BROKEN / f"{name}.yaml"))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0] == f"{name} — invalid (1 error)"
    assert lines[1] == f"  {BROKEN.relative_to(ROOT)}/{error}"
    assert "Traceback" not in done.stdout + done.stderr


def test_the_broken_folder_fails_as_a_whole_with_every_error_listed() -> None:
    done = loopkit("validate", "--json", str(BROKEN))
    assert done.returncode == 1
    document = json.loads(done.stdout)
    assert len(document["loops"]) == 7
    for entry in document["loops"]:
        assert entry["ok"] is False and entry["lrs"] is None
        [error] = entry["errors"]
        assert error["line"] is not None and error["column"] is not None
        assert error["file"].endswith(f"{entry['name']}.yaml")


def test_a_missing_path_is_a_usage_error() -> None:
    done = loopkit("validate", "no/such/loop.yaml")
    assert done.returncode == 2
    assert done.stderr == "loopkit validate: no/such/loop.yaml: no such file, folder or loop\n"


def test_colour_is_used_only_when_asked_and_never_with_no_color() -> None:
    forced = in_process("validate", "--color", "always", "loops/pr-review.yaml")
    assert "\033[32m[ok]\033[0m" in forced.stdout
    never = in_process("validate", "--color", "never", "loops/pr-review.yaml")
    assert "\033[" not in never.stdout


def test_no_color_turns_colour_off_on_a_terminal() -> None:
    from loopkit.commands.validate import _use_color

    class Terminal:
        def isatty(self) -> bool:
            return True

    os.environ.pop("NO_COLOR", None)
    assert _use_color("auto", Terminal()) is True  # type: ignore[arg-type]
    os.environ["NO_COLOR"] = "1"
    try:
        assert _use_color("auto", Terminal()) is False  # type: ignore[arg-type]
    finally:
        del os.environ["NO_COLOR"]


def test_a_blocking_finding_fails_validation(tmp_path: Path) -> None:
    (tmp_path / "loopkit.yaml").write_text("defaults:\n  enforceMakerChecker: true\n")
    (tmp_path / "loops").mkdir()
    (tmp_path / "loops" / "solo.yaml").write_text("name: solo\npipeline:\n  - prompt: a\n")
    done = in_process("validate", cwd=tmp_path)
    assert done.returncode == 1
    assert "  [x] Verification missing (the project enforces Maker/Checker)" in done.stdout


def test_an_invalid_project_file_is_reported_with_its_position(tmp_path: Path) -> None:
    (tmp_path / "loopkit.yaml").write_text("defaults:\n  budgett: {}\n")
    done = in_process("validate", cwd=tmp_path)
    assert done.returncode == 1
    assert "loopkit.yaml:2:3: unknown key 'budgett' (defaults.budgett)" in done.stdout
    assert "Traceback" not in done.stderr


def test_first_release_inline_loops_in_loopkit_yaml_are_validated(tmp_path: Path) -> None:
    (tmp_path / "loopkit.yaml").write_text(
        'version: "1"\nsettings:\n  enforceMakerChecker: false\n'
        "loops:\n  hello:\n    pipeline:\n      - prompt: Say hello\n"
    )
    done = in_process("validate", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("hello — LRS: ")


def test_two_loops_with_one_name_are_an_error(tmp_path: Path) -> None:
    for file in ("a.yaml", "b.yaml"):
        (tmp_path / file).write_text("name: same\npipeline:\n  - prompt: a\n")
    done = in_process("validate", str(tmp_path))
    assert done.returncode == 1
    assert "loop name 'same' is already used by" in done.stdout


def test_validate_never_imports_litellm_or_django() -> None:
    probe = (
        "import sys, io, contextlib\n"
        "from loopkit.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    code = main(['validate', 'loops/'])\n"
        "heavy = [m for m in ('litellm', 'django', 'channels', 'huey') if m in sys.modules]\n"
        "print(code, heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout == "0 []\n", done.stderr


def test_schema_prints_the_json_schema() -> None:
    done = in_process("schema")
    assert done.returncode == 0
    schema = json.loads(done.stdout)
    assert schema["title"] == "LoopKit loop"
    project = json.loads(in_process("schema", "--project").stdout)
    assert project["title"] == "LoopKit project (loopkit.yaml)"


def test_an_inline_loops_error_names_its_line_in_loopkit_yaml(tmp_path: Path) -> None:
    (tmp_path / "loopkit.yaml").write_text(
        "loops:\n  hello:\n    pipeline:\n      - prompt: Say hello\n        label: Hello\n"
        "    verify:\n      maker: [Helo]\n      checker: Adversarial Verifier\n"
    )
    done = in_process("validate", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.splitlines()[:3] == [
        "hello — invalid (1 error)",
        "  loopkit.yaml:7:15: maker 'Helo' is not the label of any step (loops.hello.verify.maker[0])",
        "    hint: did you mean 'Hello'?",
    ]


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    done = subprocess.run(
        f"'{LOOPKIT}' validate loops/ | head -c 10",
        shell=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in done.stderr


def test_an_ascii_only_terminal_gets_a_plain_dash() -> None:
    done = loopkit("validate", "loops/pr-review.yaml", env={"PYTHONIOENCODING": "ascii"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("pr-review - LRS: 91/100 (Grade A)\n")


def test_a_loop_can_be_named_instead_of_given_as_a_path() -> None:
    done = in_process("validate", "daily-triage")
    assert done.returncode == 0
    assert done.stdout.startswith("daily-triage — LRS: 55/100 (Grade D)\n")


def test_a_folder_without_loops_is_an_error(tmp_path: Path) -> None:
    done = in_process("validate", str(tmp_path))
    assert (done.returncode, done.stderr) == (1, f"loopkit validate: no loop files in {tmp_path}\n")


def test_validate_dot_in_a_project_validates_its_loops_and_skips_test_files(
    tmp_path: Path,
) -> None:
    assert in_process("init", str(tmp_path)).returncode == 0
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "example.test.yaml").write_text("loop: ../loops/example.yaml\n")
    (tmp_path / "tests" / "example.cassette.yaml").write_text("version: 1\nloop: example\n")

    done = in_process("validate", ".", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("3 loops, 3 valid\n")
    # A folder of loopkit test's files holds no loop (not ten 'unknown key' errors).
    done = in_process("validate", "tests", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (1, "loopkit validate: no loop files in tests\n")


def test_an_undeclared_input_in_a_prompt_is_reported_at_its_line_with_a_hint(
    tmp_path: Path,
) -> None:
    path = tmp_path / "review.yaml"
    path.write_text(
        "name: review\n"
        "inputs:\n"
        "  diffs:\n"
        "    required: true\n"
        "pipeline:\n"
        "  - prompt: Review {{ inputs.diff }}\n"
    )
    done = loopkit("validate", path.name, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "review — invalid (1 error)",
        "  review.yaml:6:13: inputs.diff: no input 'diff' is declared (pipeline[0].prompt)",
        "    hint: did you mean 'diffs'?",
    ]


def test_a_number_too_long_for_python_is_a_positioned_error_not_a_traceback(
    tmp_path: Path,
) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text(f"name: huge\npipeline:\n  - prompt: a\n    retries: {'9' * 5000}\n")
    done = loopkit("validate", path.name, cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stdout.splitlines()[:3] == [
        "huge — invalid (1 error)",
        "  huge.yaml:4:14: this number is too large (5,000 characters); numbers in a loop file "
        "are limited to 4,000 digits",
        "    hint: quote it to keep it as text",
    ]

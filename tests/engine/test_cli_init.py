"""``loopkit init``: a project that validates at once, and no silent overwrites."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from loopkit.cli import main
from loopkit.project import find_project
from loopkit.yamlio import load_loop_file


def test_it_creates_a_project_that_validates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "acme"
    assert main(["init", str(target)]) == 0
    assert (target / "loopkit.yaml").is_file()
    assert (target / ".gitignore").read_text() == ".loopkit/\n"
    context = find_project(target)
    assert context.project.name == "acme"
    assert context.project.defaults is not None and context.project.defaults.budget is not None
    loop = load_loop_file(target / "loops" / "example.yaml", project=context.project)
    assert loop.name == "example"
    out = capsys.readouterr().out
    assert f"Created {target / 'loopkit.yaml'}" in out


def test_the_example_loop_scores_an_a(tmp_path: Path) -> None:
    from loopkit import lrs

    main(["init", str(tmp_path)])
    loop = load_loop_file(tmp_path / "loops" / "example.yaml")
    assert lrs.score(loop).grade == "A"


def test_it_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "loopkit.yaml").write_text("name: mine\n")
    assert main(["init", str(tmp_path)]) == 1
    assert (tmp_path / "loopkit.yaml").read_text() == "name: mine\n"
    assert not (tmp_path / "loops").exists()
    err = capsys.readouterr().err
    assert f"loopkit init: {tmp_path / 'loopkit.yaml'} already exists" in err
    assert "use --force to overwrite" in err


def test_force_overwrites(tmp_path: Path) -> None:
    (tmp_path / "loopkit.yaml").write_text("name: mine\n")
    assert main(["init", "--force", str(tmp_path)]) == 0
    assert "defaults:" in (tmp_path / "loopkit.yaml").read_text()


def test_it_adds_to_an_existing_gitignore_once(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("__pycache__/")
    main(["init", str(tmp_path)])
    main(["init", "--force", str(tmp_path)])
    assert (tmp_path / ".gitignore").read_text() == "__pycache__/\n.loopkit/\n"


@pytest.mark.parametrize("folder", ["yes", "2026", "my project"])
def test_awkward_folder_names_still_make_a_valid_project(tmp_path: Path, folder: str) -> None:
    target = tmp_path / folder
    assert main(["init", str(target)]) == 0
    assert find_project(target).project.name == folder.replace(" ", "-")


def test_it_refuses_a_file_as_the_project_folder(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    assert main(["init", str(tmp_path / "file")]) == 1


def test_an_unwritable_place_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    assert main(["init", str(tmp_path / "file" / "project")]) == 1
    assert capsys.readouterr().err.startswith("loopkit init: cannot write ")


def test_schema_to_an_unwritable_place_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schema", "-o", str(tmp_path / "missing" / "loop.schema.json")]) == 1
    assert capsys.readouterr().err.startswith("loopkit schema: cannot write ")


def test_schema_writes_a_file(tmp_path: Path) -> None:
    import json

    target = tmp_path / "loop.schema.json"
    assert main(["schema", "-o", str(target)]) == 0
    assert json.loads(target.read_text())["title"] == "LoopKit loop"


# ── The seed's quick start, verbatim ─────────────────────────────────────

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TRANSCRIPT = (
    Path(__file__).resolve().parent / "fixtures" / "first-release" / "README-transcript.txt"
)


def run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOOPKIT_")}
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def without_figures(line: str) -> str:
    """Return a transcript line with its durations and path separators made neutral."""
    return re.sub(r"\d+ms", "<ms>", line).replace("loops\\", "loops/")


def test_init_writes_the_seeds_loops_as_the_repository_has_them(tmp_path: Path) -> None:
    assert main(["init", str(tmp_path)]) == 0

    for name in ("pr-review", "daily-triage"):
        written = (tmp_path / "loops" / f"{name}.yaml").read_bytes()
        assert written == (REPO / "loops" / f"{name}.yaml").read_bytes()
    assert sorted(p.name for p in (tmp_path / "loops").iterdir()) == [
        "daily-triage.yaml",
        "example.yaml",
        "pr-review.yaml",
    ]


def test_the_quick_start_dry_run_prints_the_first_release_transcript(tmp_path: Path) -> None:
    init = run("loopkit", "init", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert init.stdout.endswith(
        "Next:\n  loopkit validate\n  loopkit-runtime --dry-run run pr-review\n"
    )

    done = run("loopkit-runtime", "--dry-run", "run", "pr-review", cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    text = TRANSCRIPT.read_text(encoding="utf-8").split("```\n")[2]
    expected = with_delivery([without_figures(line) for line in text.splitlines()])
    got = [without_figures(line) for line in done.stdout.splitlines()]
    assert got[: len(expected)] == expected
    assert got[len(expected) :] == [
        "  Projected live cost: unknown (no model configured: set 'model:' or LOOPKIT_MODEL)"
    ]
    assert done.stderr == ""


def with_delivery(lines: list[str]) -> list[str]:
    """The first release's transcript, with what issue 18 added to pr-review: the diff
    fetched through the GitHub connector before the reviews, and the review posted
    after the pass (a dry run calls neither: it reports the calls it would make)."""
    out = [line.replace("Pipeline: 1 step(s)", "Pipeline: 2 step(s)") for line in lines]
    at = out.index("  Running 4 agents in parallel...")
    out[at:at] = ["  -> Tool: Diff...", "    tool github.get_pull_diff [dry run: not called]"]
    at = out.index("── Results ───────────────────────────────────────────")
    out[at:at] = [
        "── After Verification (onPass) ───────────────────────",
        "  -> Tool: Post Review...",
        "    tool github.create_review [dry run: not called]",
        "",
    ]
    return out


def test_loopkit_validate_in_a_fresh_project_scores_every_loop_in_the_seeds_layout(
    tmp_path: Path,
) -> None:
    assert run("loopkit", "init", cwd=tmp_path).returncode == 0

    done = run("loopkit", "validate", cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    heads = [line for line in lines if " — LRS: " in line]
    assert [h.split(" — ")[0] for h in heads] == ["daily-triage", "example", "pr-review"]
    for head in heads:
        assert re.fullmatch(r"[a-z-]+ — LRS: \d{1,3}/100 \(Grade [A-F]\)", head), head
    assert "example — LRS: 100/100 (Grade A)" in heads
    findings = [line for line in lines if line.startswith("  [")]
    assert findings and all(re.match(r"  \[(ok|!)\] \S", line) for line in findings)
    assert lines[-1] == "3 loops, 3 valid"


def test_the_help_says_what_init_creates(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one line, whatever the terminal
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "init      create a project: loopkit.yaml, example loops, a GitHub workflow" in (
        capsys.readouterr().out
    )

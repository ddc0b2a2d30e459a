"""The first release's files validate and run, through the command line.

``fixtures/first-release`` holds the files of the first LoopKit release as its
repository laid them out: ``first/`` (loopkit.yaml) and ``last/`` (after the
rename to LoopCode: loopcode.yaml), each with ``loops/pr-review.yaml`` and
``loops/daily-triage.yaml``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from llm_server import LLMServer, Reply, verdict

from loopkit import lrs
from loopkit.engine.verify import ADVERSARIAL_PROMPT
from loopkit.errors import SpecError
from loopkit.project import find_project
from loopkit.sinks import verification_lines
from loopkit.skills import discover, resolve
from loopkit.yamlio import load_loop

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "first-release"
BIN = Path(sys.executable).parent
COMMITS = {"first": "loopkit.yaml", "last": "loopcode.yaml"}


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("LOOPKIT_")}
    out.update(extra)
    return out


def cli(command: str, *args: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / command), *args],
        cwd=cwd,
        env=env(**extra),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(params=sorted(COMMITS))
def release(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A copy of one commit of the first release, laid out as its repository was."""
    target = tmp_path / request.param
    shutil.copytree(FIXTURES / request.param, target)
    return target


@pytest.fixture(scope="module")
def server() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


# ── Validation ───────────────────────────────────────────────────────────


def test_loopkit_validate_in_a_first_release_project_passes_every_loop(release: Path) -> None:
    done = cli("loopkit", "validate", cwd=release)

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    heads = [line for line in lines if " — " in line]
    assert [h.split(" — ")[0] for h in heads] == ["daily-triage", "pr-review"]
    for head in heads:
        assert re.fullmatch(r"[a-z-]+ — LRS: \d+/100 \(Grade [A-F]\)", head), head
    assert "  [ok] Maker/Checker separation enforced" in lines
    assert lines[-1] == "2 loops, 2 valid"
    assert done.stderr == ""


def test_every_file_of_the_first_release_validates_by_path(release: Path) -> None:
    project_file = COMMITS[release.name]
    for path in (project_file, "loops/pr-review.yaml", "loops/daily-triage.yaml"):
        done = cli("loopkit", "validate", path, cwd=release)
        assert done.returncode == 0, (path, done.stdout, done.stderr)
        assert "invalid" not in done.stdout


def test_a_project_file_given_by_path_stands_for_its_project(release: Path) -> None:
    done = cli("loopkit", "validate", f"{release.name}/{COMMITS[release.name]}", cwd=release.parent)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "2 loops, 2 valid"


def test_the_first_release_settings_become_the_project_defaults(release: Path) -> None:
    context = find_project(release)

    assert context.file == release / COMMITS[release.name]
    defaults = context.project.defaults
    assert defaults is not None and defaults.budget is not None and defaults.memory is not None
    assert (defaults.budget.max_tokens, defaults.budget.max_duration_minutes) == (500000, 30)
    assert defaults.budget.max_iterations == 10
    state = ".loopkit/state" if release.name == "first" else ".loopcode/state"
    assert (defaults.memory.store, defaults.memory.path) == ("filesystem", state)
    assert defaults.enforce_maker_checker is True


def test_loopkit_yaml_wins_over_loopcode_yaml_in_the_same_folder(tmp_path: Path) -> None:
    (tmp_path / "loopcode.yaml").write_text("name: old\n")
    (tmp_path / "loopkit.yaml").write_text("name: new\n")
    (tmp_path / "loops").mkdir()

    context = find_project(tmp_path / "loops")

    assert (context.file, context.project.name) == (tmp_path / "loopkit.yaml", "new")


def test_a_folder_holding_only_loopcode_yaml_validates(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "last" / "loopcode.yaml", tmp_path / "loopcode.yaml")

    done = cli("loopkit", "validate", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout == "loopcode.yaml — a valid project file with no loops yet\n"


# ── Dry runs ─────────────────────────────────────────────────────────────


def test_the_first_release_pr_review_dry_runs_to_success(release: Path) -> None:
    done = cli("loopkit-runtime", "--dry-run", "run", "pr-review", cwd=release)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "              | Checker=Adversarial Verifier" in done.stdout
    assert "  Round 1: [ok] PASS (score: 0.95)" in done.stdout
    assert "[ok] Loop 'pr-review' completed successfully" in done.stdout


def test_the_first_release_daily_triage_dry_runs_its_checker_to_success(release: Path) -> None:
    # maxIterations: 1 with maxRounds: 2 means one pass of the loop, the checker included.
    done = cli("loopkit-runtime", "--dry-run", "run", "daily-triage", cwd=release)

    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "Verification: Maker=['Issue Triage']\n              | Checker=Triage Verifier\n"
        in done.stdout
    )
    assert "  Round 1: [ok] PASS (score: 0.95)" in done.stdout
    assert "[ok] Loop 'daily-triage' completed successfully" in done.stdout


def test_loopkit_run_dry_runs_the_first_release_loops_by_path(release: Path) -> None:
    done = cli("loopkit", "run", "loops/pr-review.yaml", "--dry-run", cwd=release)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Config: loops/pr-review.yaml" in done.stdout


# ── Checkers ─────────────────────────────────────────────────────────────


def test_a_checker_name_that_is_no_subagent_runs_the_adversarial_verifier_under_it(
    tmp_path: Path, server: LLMServer
) -> None:
    server.reset()
    server.when(lambda body: "adversarial verifier" in str(body["messages"]), verdict(True, 0.9))
    server.default = Reply("Issue 7 is a bug, high priority.")
    (tmp_path / "loops").mkdir()
    shutil.copy(FIXTURES / "last" / "loopcode.yaml", tmp_path / "loopcode.yaml")
    text = (FIXTURES / "last" / "loops" / "daily-triage.yaml").read_text()
    # Room for the checker's call whatever maxIterations counts.
    text = text.replace("maxIterations: 1", "maxIterations: 5")
    (tmp_path / "loops" / "daily-triage.yaml").write_text(text)

    done = cli(
        "loopkit",
        "run",
        "daily-triage",
        cwd=tmp_path,
        LOOPKIT_API_BASE=server.url,
        LOOPKIT_MODEL="openai/test",
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "Verification: Maker=['Issue Triage']\n              | Checker=Triage Verifier\n"
        in done.stdout
    )
    assert "  Round 1: [ok] PASS (score: 0.90)" in done.stdout
    checker = [r for r in server.completed() if r.is_checker]
    assert len(checker) == 1
    assert checker[0].body["messages"][0] == {"role": "system", "content": ADVERSARIAL_PROMPT}
    assert "Issue 7 is a bug, high priority." in checker[0].body["messages"][1]["content"]


CHECKED_TWICE = """\
name: checked-twice
description: Summarise the release.
pipeline:
  - prompt: Summarise the release.
    label: Summary
subagents:
  style:
    role: verifier
    prompt: You check the style of summaries.
verify:
  maker: Summary
  checker: [Fact Verifier, style]
  maxRounds: 2
"""


def test_a_checker_list_passes_only_when_every_checker_passes(
    tmp_path: Path, server: LLMServer
) -> None:
    server.reset()
    server.when("check the style", verdict(False, 0.4, ["too long"]), times=1)
    server.when("check the style", verdict(True, 0.85))
    server.when("adversarial verifier", verdict(True, 0.95))
    server.default = Reply("A short summary.")
    (tmp_path / "loops").mkdir()
    (tmp_path / "loops" / "checked-twice.yaml").write_text(CHECKED_TWICE)

    done = cli(
        "loopkit",
        "run",
        "checked-twice",
        cwd=tmp_path,
        LOOPKIT_API_BASE=server.url,
        LOOPKIT_MODEL="openai/test",
    )

    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "Verification: Maker=['Summary']\n              | Checker=Fact Verifier, style\n" in out
    assert "  Round 1: [x] FAIL (score: 0.40)\n    - style: too long\n" in out
    assert "  Round 2: [ok] PASS (score: 0.85)" in out
    checkers = [r for r in server.completed() if r.is_checker]
    assert len(checkers) == 4  # both checkers, both rounds
    makers = [r for r in server.completed() if not r.is_checker]
    assert len(makers) == 2


def test_a_checker_named_like_a_subagent_is_flagged_by_the_lrs() -> None:
    loop = load_loop(
        CHECKED_TWICE.replace("checker: [Fact Verifier, style]", "checker: styel"), "x.yaml"
    )

    report = lrs.score(loop)

    finding = next(f for f in report.findings if f.dimension == "verification")
    assert (finding.level, finding.message) == (
        "warn",
        "Checker 'styel' is not a subagent: the built-in adversarial verifier runs under "
        "that name (did you mean 'style'?)",
    )
    assert finding.hint == "write checker: style to use the subagent"


def test_a_built_in_checker_under_any_name_keeps_the_full_separation_score() -> None:
    named = load_loop(CHECKED_TWICE.replace("[Fact Verifier, style]", "Triage Verifier"))
    builtin = load_loop(CHECKED_TWICE.replace("[Fact Verifier, style]", "Adversarial Verifier"))

    assert lrs.score(named).score == lrs.score(builtin).score
    assert "Maker/Checker separation enforced" in [f.message for f in lrs.score(named).findings]


def test_a_checker_that_is_a_maker_is_still_an_error() -> None:
    with pytest.raises(SpecError) as caught:
        load_loop(CHECKED_TWICE.replace("[Fact Verifier, style]", "Summary"), "x.yaml")

    assert [str(p) for p in caught.value.problems] == [
        "x.yaml:12:12: the checker 'Summary' is also a maker: a loop cannot check its own work "
        "(verify.checker) Hint: use a separate verifier subagent or the built-in "
        "'Adversarial Verifier'"
    ]


# ── Project files with inline loops ──────────────────────────────────────


INLINE = """\
version: "1"
settings:
  defaultBudget:
    maxTokens: 100000
    maxIterations: 10
  enforceMakerChecker: true
loops:
  summary:
    trigger:
      type: manual
    pipeline:
      - prompt: Summarise the news.
        label: Summary
        skill: notes
    verify:
      maker: Summary
      checker: News Verifier
"""

NOTES_SKILL = (
    "---\nname: release-notes\ndescription: Write release notes people read.\n---\nBe brief.\n"
)


@pytest.fixture
def inline(tmp_path: Path) -> Path:
    (tmp_path / "loopkit.yaml").write_text(INLINE)
    (tmp_path / "skills" / "writing" / "notes").mkdir(parents=True)
    (tmp_path / "skills" / "writing" / "notes" / "SKILL.md").write_text(NOTES_SKILL)
    return tmp_path


def test_inline_loops_of_a_project_file_validate(inline: Path) -> None:
    done = cli("loopkit", "validate", "loopkit.yaml", cwd=inline)

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"summary — LRS: \d+/100 \(Grade [A-F]\)", lines[0]), lines[0]
    assert "  [ok] Maker/Checker separation enforced" in lines


def test_an_inline_loop_validates_by_name(inline: Path) -> None:
    done = cli("loopkit", "validate", "summary", cwd=inline)

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("summary — LRS: ")


def test_an_inline_loop_runs_by_name_and_by_its_project_file(inline: Path) -> None:
    by_name = cli("loopkit", "run", "summary", "--dry-run", cwd=inline)
    by_file = cli(
        "loopkit-runtime", "--dry-run", "run", f"{inline.name}/loopkit.yaml", cwd=inline.parent
    )

    for done in (by_name, by_file):
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Config: loopkit.yaml" in done.stdout
        assert "[ok] Loop 'summary' completed successfully" in done.stdout


def test_a_mistake_in_an_inline_loop_is_positioned_in_the_project_file(inline: Path) -> None:
    (inline / "loopkit.yaml").write_text(INLINE.replace("maker: Summary", "maker: Sumary"))

    done = cli("loopkit", "run", "summary", "--dry-run", cwd=inline)

    assert done.returncode == 2
    assert done.stderr == (
        f"{inline / 'loopkit.yaml'}:16:14: maker 'Sumary' is not the label of any step "
        "(loops.summary.verify.maker[0]) Hint: did you mean 'Summary'?\n"
    )


def test_a_project_file_with_several_inline_loops_asks_for_a_name(inline: Path) -> None:
    text = INLINE + INLINE.split("loops:\n")[1].replace("  summary:", "  digest:")
    (inline / "loopkit.yaml").write_text(text)

    done = cli("loopkit", "run", "loopkit.yaml", "--dry-run", cwd=inline)

    assert done.returncode == 2
    assert done.stderr == (
        "loopkit.yaml: the project file holds 2 loops inline (summary, digest) "
        "Hint: give the name of the loop to run\n"
    )


# ── Skills ───────────────────────────────────────────────────────────────


def test_a_skill_named_by_its_folder_resolves_before_it_is_an_error(inline: Path) -> None:
    catalog = discover(inline, ["skills"], packages=False)

    assert catalog.names() == ["release-notes"]
    for ref in (
        "notes",
        "writing/notes",
        "skills/writing/notes",
        "./skills/writing/notes/SKILL.md",
    ):
        (skill,) = resolve([ref], catalog, inline)
        assert skill.name == "release-notes"


def test_a_skill_no_skills_folder_holds_is_still_an_error(inline: Path) -> None:
    (inline / "loopkit.yaml").write_text(INLINE.replace("skill: notes", "skill: nots"))

    done = cli("loopkit", "validate", cwd=inline)

    assert done.returncode == 1
    assert (
        "  loopkit.yaml:14:16: skill 'nots' is not declared (loops.summary.pipeline[0].skills[0])"
        in done.stdout.splitlines()
    )


# ── The console's verification line ──────────────────────────────────────


def test_the_verification_line_wraps_as_the_seed_shows_it_only_when_it_is_long() -> None:
    assert verification_lines(["A"], "B") == ["Verification: Maker=['A'] | Checker=B"]
    assert verification_lines(
        ["Bug Review", "Security Review", "Quality Review", "Performance Review"],
        "Adversarial Verifier",
    ) == [
        "Verification: Maker=['Bug Review', 'Security Review',",
        "              'Quality Review', 'Performance Review']",
        "              | Checker=Adversarial Verifier",
    ]

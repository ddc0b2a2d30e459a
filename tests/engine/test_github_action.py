"""The GitHub Action (action.yml), run the way the Actions runner runs a composite action.

Each ``run:`` step's ``${{ ... }}`` expressions are filled in from the inputs
(the defaults, overridden by the ``with:`` of the workflow ``loopkit init``
writes), its ``if:`` is evaluated, and its script runs under
``bash --noprofile --norc -eo pipefail`` (the runner's ``shell: bash``) with
its ``env:``, in its ``working-directory``, with ``GITHUB_ACTIONS=true`` and a
``GITHUB_STEP_SUMMARY`` file. Steps that ``uses:`` another action
(actions/setup-python) are not run: this interpreter is the Python. The
install step runs with ``python`` standing in for the real one, so its pip
command line is checked, not executed (the test venv already has LoopKit, and
the tests have no package index).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from loopkit import __version__
from loopkit.cli import main as loopkit_main
from loopkit.commands.init import ACTION_REPOSITORY, WORKFLOW_FILE

ROOT = Path(__file__).resolve().parents[2]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
BIN = Path(sys.executable).parent
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")

BROKEN = """\
name: broken
pipeline:
  - prompt: hi
    lable: Summary
"""


@dataclass
class StepRun:
    name: str
    skipped: str | None = None  # why the step did not run
    code: int | None = None
    stdout: str = ""
    stderr: str = ""

    @property
    def annotations(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith("::")]


@dataclass
class ActionRun:
    steps: list[StepRun] = field(default_factory=list)
    summary: str = ""

    def step(self, name: str) -> StepRun:
        return next(s for s in self.steps if s.name == name)


def value(expression: str, inputs: dict[str, str]) -> str:
    """Return what the runner puts in place of one ``${{ expression }}``."""
    if match := re.fullmatch(r"inputs\.([A-Za-z0-9_-]+)", expression):
        return inputs[match[1]]
    if expression == "github.action_path":
        return str(ROOT)
    raise AssertionError(f"the test runner does not know ${{{{ {expression} }}}}")


def fill(text: str, inputs: dict[str, str]) -> str:
    return EXPRESSION.sub(lambda m: value(m[1], inputs), text)


def condition(expression: str, inputs: dict[str, str], ok: bool) -> bool:
    """Evaluate a step's ``if:`` (the subset of GitHub's expressions action.yml uses)."""
    inner = EXPRESSION.fullmatch(expression.strip())
    text = inner[1] if inner else expression
    text = re.sub(r"inputs\.([A-Za-z0-9_-]+)", lambda m: repr(inputs[m[1]]), text)
    for function, result in (
        ("cancelled()", False),
        ("always()", True),
        ("success()", ok),
        ("failure()", not ok),
    ):
        text = text.replace(function, repr(result))
    text = text.replace("&&", " and ").replace("||", " or ")
    text = re.sub(r"!(?!=)", " not ", text)
    assert re.fullmatch(r"[\w\s'\"=!().-]*", text), text
    return bool(eval(text, {"__builtins__": {}}))


def run_action(
    project: Path, tmp_path: Path, *, until: str | None = None, **given: str
) -> ActionRun:
    """Run action.yml's steps in ``project`` with the inputs ``given`` (by their names),
    up to the step named ``until`` (default: all)."""
    inputs = {name: str(spec.get("default", "")) for name, spec in ACTION["inputs"].items()}
    unknown = set(given) - set(inputs)
    assert not unknown, f"not inputs of action.yml: {unknown}"
    inputs.update(given)
    tmp_path.mkdir(parents=True, exist_ok=True)
    summary = tmp_path / "step-summary.md"
    summary.touch()
    python = stand_in_python(tmp_path)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    base_env.update(
        GITHUB_ACTIONS="true",
        GITHUB_WORKSPACE=str(project),
        GITHUB_STEP_SUMMARY=str(summary),
        GITHUB_ACTION_PATH=str(ROOT),
        PATH=f"{BIN}{os.pathsep}{base_env.get('PATH', '')}",
    )
    result = ActionRun()
    ok = True
    for spec in ACTION["runs"]["steps"]:
        name = spec["name"]
        if "uses" in spec:
            result.steps.append(StepRun(name, skipped=f"uses {spec['uses']}: not run here"))
            continue
        if not condition(spec.get("if", "success()"), inputs, ok):
            result.steps.append(StepRun(name, skipped="its if: is false"))
            continue
        assert spec["shell"] == "bash"
        env = {**base_env, **{k: fill(str(v), inputs) for k, v in spec.get("env", {}).items()}}
        if name == "Install LoopKit":
            env["PATH"] = f"{python.parent}{os.pathsep}{env['PATH']}"
        script = tmp_path / f"step-{len(result.steps)}.sh"
        script.write_text(fill(spec["run"], inputs), encoding="utf-8")
        cwd = project / fill(spec.get("working-directory", "."), inputs)
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        result.steps.append(StepRun(name, None, done.returncode, done.stdout, done.stderr))
        ok = ok and done.returncode == 0
        if name == until:
            break
    result.summary = summary.read_text(encoding="utf-8")
    return result


def stand_in_python(tmp_path: Path) -> Path:
    """Return a ``python`` that records its arguments (in pip-args.txt) instead of running."""
    folder = tmp_path / "stand-in"
    folder.mkdir(exist_ok=True)
    python = folder / "python"
    python.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{tmp_path / "pip-args.txt"}"\n')
    python.chmod(0o755)
    return python


def workflow_inputs(project: Path) -> dict[str, str]:
    """Return the ``with:`` that the workflow ``loopkit init`` wrote gives the action."""
    workflow = yaml.safe_load((project / WORKFLOW_FILE).read_text(encoding="utf-8"))
    [step] = [s for s in workflow["jobs"]["loopkit"]["steps"] if "loopkit" in s["uses"]]
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in step["with"].items()}


def check_test_step(run: ActionRun) -> None:
    step = run.step("Replay loop tests")
    assert step.code == 0, step.stdout + step.stderr
    assert "### LoopKit: loop tests\n\n✅ every test passed\n" in run.summary


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project as ``loopkit init`` makes it: three good loops and the CI workflow."""
    root = tmp_path / "acme"
    assert loopkit_main(["init", str(root)]) == 0
    return root


def test_the_workflow_init_writes_passes_on_the_project_init_writes(
    project: Path, tmp_path: Path
) -> None:
    run = run_action(project, tmp_path, **workflow_inputs(project))
    validate = run.step("Validate loops")
    assert validate.code == 0, validate.stdout + validate.stderr
    assert validate.annotations == []  # every loop meets the bar: nothing to point at
    assert "| example | `loops/example.yaml` | 100/100 (A) | ✅ ok |" in run.summary
    assert run.step("Set up Python").skipped == "uses actions/setup-python@v5: not run here"
    check_test_step(run)


def test_a_broken_loop_fails_the_action_with_an_error_at_its_line(
    project: Path, tmp_path: Path
) -> None:
    (project / "loops" / "broken.yaml").write_text(BROKEN)
    run = run_action(project, tmp_path, **workflow_inputs(project))
    validate = run.step("Validate loops")
    assert validate.code == 1
    assert validate.annotations == [
        "::error file=loops/broken.yaml,line=4,col=5,title=LoopKit%3A broken is invalid::"
        "unknown key 'lable' (pipeline[0].lable)%0Ahint: did you mean 'label'?"
    ]
    assert "| broken | `loops/broken.yaml` | — | ❌ invalid (1 error) |" in run.summary
    # The tests still run after a failed validation: both reports at once.
    assert run.step("Replay loop tests").skipped is None
    check_test_step(run)


def test_loops_below_min_score_are_errors_at_their_name_line(project: Path, tmp_path: Path) -> None:
    run = run_action(project, tmp_path, **{"min-score": "95", "paths": "loops/daily-triage.yaml"})
    validate = run.step("Validate loops")
    assert validate.code == 1
    errors = [a for a in validate.annotations if a.startswith("::error")]
    assert errors == [
        "::error file=loops/daily-triage.yaml,line=1,col=1,"
        "title=LoopKit LRS%3A daily-triage below --min-score 95::"
        "daily-triage scores 75/100 (grade C), below --min-score 95: fix the findings "
        "marked [!] or [x] to raise it"
    ]
    warnings = [a for a in validate.annotations if a.startswith("::warning")]
    assert warnings and all(
        w.startswith("::warning file=loops/daily-triage.yaml,line=") for w in warnings
    )
    assert "❌ below 95" in run.summary


def test_run_tests_false_skips_the_test_step_and_a_project_folder_is_honoured(
    project: Path, tmp_path: Path
) -> None:
    (project / "loops" / "broken.yaml").write_text(BROKEN)
    repository = project.parent
    run = run_action(repository, tmp_path, **{"working-directory": "acme", "run-tests": "false"})
    validate = run.step("Validate loops")
    assert validate.code == 1
    # Annotated at the file's path in the repository, not in the project folder.
    assert validate.annotations[0].startswith("::error file=acme/loops/broken.yaml,line=4,col=5,")
    assert run.step("Replay loop tests").skipped == "its if: is false"


def test_the_install_step_asks_pip_for_this_release_of_loopkit_ai(
    project: Path, tmp_path: Path
) -> None:
    run = run_action(project, tmp_path, until="Install LoopKit")
    install = run.step("Install LoopKit")
    assert install.code == 0, install.stderr
    args = (tmp_path / "pip-args.txt").read_text().splitlines()
    assert args[:3] == ["-m", "pip", "install"]
    requirement = Requirement(args[-1])
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert requirement.name == pyproject["project"]["name"] == "loopkit-ai"
    assert str(requirement.specifier) == f"=={pyproject['project']['version']}"
    assert pyproject["project"]["version"] == __version__


def test_the_install_step_can_install_the_actions_own_checkout(
    project: Path, tmp_path: Path
) -> None:
    run = run_action(project, tmp_path, until="Install LoopKit", **{"install-from": "action"})
    assert run.step("Install LoopKit").code == 0
    args = (tmp_path / "pip-args.txt").read_text().splitlines()
    assert args[-2:] == ["--editable", str(ROOT)]
    assert (ROOT / "pyproject.toml").is_file()


def test_an_unknown_install_source_is_an_annotated_error(project: Path, tmp_path: Path) -> None:
    run = run_action(project, tmp_path, **{"install-from": "conda"})
    install = run.step("Install LoopKit")
    assert install.code == 2
    assert install.annotations == [
        "::error title=LoopKit action::install-from must be 'pypi' or 'action', got 'conda'"
    ]
    # A failed step ends the job: the later steps do not run.
    assert run.step("Validate loops").skipped == "its if: is false"


def test_the_workflow_init_writes_uses_this_releases_action_with_real_inputs(
    project: Path,
) -> None:
    workflow = yaml.safe_load((project / WORKFLOW_FILE).read_text(encoding="utf-8"))
    uses = [s["uses"] for s in workflow["jobs"]["loopkit"]["steps"]]
    assert uses == ["actions/checkout@v4", f"{ACTION_REPOSITORY}@v{__version__}"]
    assert set(workflow_inputs(project)) <= set(ACTION["inputs"])
    assert ACTION["inputs"]["loopkit-version"]["default"] == __version__


def test_init_no_ci_writes_no_workflow(tmp_path: Path) -> None:
    assert loopkit_main(["init", "--no-ci", str(tmp_path)]) == 0
    assert not (tmp_path / ".github").exists()
    assert (tmp_path / "loopkit.yaml").is_file()


def test_init_in_a_subfolder_of_a_repository_says_where_github_reads_the_workflow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ".git").mkdir()
    assert loopkit_main(["init", str(tmp_path / "agents")]) == 0
    out = capsys.readouterr().out
    assert (
        f"GitHub reads workflows only from the repository's root ({tmp_path.resolve()}): move "
        f"{tmp_path / 'agents' / WORKFLOW_FILE} to {tmp_path.resolve() / WORKFLOW_FILE} and give "
        "the action 'working-directory: agents'"
    ) in out
    assert "once pushed" not in out

    assert loopkit_main(["init", "--force", str(tmp_path)]) == 0  # at the root: it just works
    assert "The workflow checks the loops on GitHub once pushed" in capsys.readouterr().out


def test_init_keeps_an_existing_workflow_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workflow = tmp_path / WORKFLOW_FILE
    workflow.parent.mkdir(parents=True)
    workflow.write_text("name: mine\n")
    assert loopkit_main(["init", str(tmp_path)]) == 1
    assert workflow.read_text() == "name: mine\n"
    assert not (tmp_path / "loopkit.yaml").exists()
    assert f"loopkit init: {workflow} already exists" in capsys.readouterr().err
    assert loopkit_main(["init", "--force", str(tmp_path)]) == 0
    assert "uses: loopkit-ai/loopkit@v" in workflow.read_text()


def _inputs_used() -> set[str]:
    text = (ROOT / "action.yml").read_text(encoding="utf-8")
    return set(re.findall(r"inputs\.([A-Za-z0-9_-]+)", text))


def test_every_input_of_the_action_is_used_and_every_one_used_is_declared() -> None:
    assert _inputs_used() == set(ACTION["inputs"])


def test_the_action_is_a_composite_action_with_described_inputs() -> None:
    assert ACTION["runs"]["using"] == "composite"
    for name, spec in ACTION["inputs"].items():
        assert spec.get("description"), name
        assert isinstance(spec.get("default"), str), name  # inputs are strings


def test_a_failing_loop_test_fails_the_action_with_an_error_at_the_expectations_line(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llm_server import LLMServer, Reply, verdict

    monkeypatch.chdir(project)
    for name in ("LOOPKIT_CHECKER_MODEL", "GITHUB_ACTIONS"):
        monkeypatch.delenv(name, raising=False)
    server = LLMServer().start()
    try:
        server.when("adversarial verifier", verdict(True, 0.9))
        server.default = Reply("- one\n- two\n- three")
        monkeypatch.setenv("LOOPKIT_API_BASE", server.url)
        monkeypatch.setenv("LOOPKIT_MODEL", "openai/test")
        assert loopkit_main(["run", "example", "--record"]) == 0
    finally:
        server.stop()
    monkeypatch.delenv("LOOPKIT_API_BASE")
    monkeypatch.delenv("LOOPKIT_MODEL")
    inputs = {**workflow_inputs(project), "junit": "out/junit.xml"}

    passing = run_action(project, tmp_path / "first", **inputs)
    assert passing.step("Replay loop tests").code == 0, passing.step("Replay loop tests").stdout

    test_file = project / "tests" / "example.test.yaml"
    test_file.write_text(
        "loop: ../loops/example.yaml\nexpect:\n  status: succeeded\n  maxTokens: 1\n"
    )
    failing = run_action(project, tmp_path / "second", **inputs)
    step = failing.step("Replay loop tests")
    assert step.code == 1, step.stdout + step.stderr
    [annotation] = step.annotations
    assert annotation.startswith(
        "::error file=tests/example.test.yaml,line=4,col=14,title=loopkit test%3A example::"
        "tokens: expected at most 1, used "
    )
    assert "❌ some tests failed (see the annotations)" in failing.summary
    assert (project / "out" / "junit.xml").is_file()

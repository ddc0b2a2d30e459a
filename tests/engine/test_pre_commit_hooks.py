""".pre-commit-hooks.yaml: the hooks a project lists to check its loops before each commit."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HOOKS = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
#: The keys pre-commit reads from a hook definition (pre-commit's MANIFEST_HOOK_DICT).
HOOK_KEYS = {
    "id",
    "name",
    "entry",
    "language",
    "alias",
    "files",
    "exclude",
    "types",
    "types_or",
    "exclude_types",
    "additional_dependencies",
    "args",
    "always_run",
    "fail_fast",
    "pass_filenames",
    "description",
    "language_version",
    "log_file",
    "minimum_pre_commit_version",
    "require_serial",
    "stages",
    "verbose",
}


def hook(hook_id: str) -> dict[str, object]:
    return next(h for h in HOOKS if h["id"] == hook_id)


def test_the_file_lists_the_validate_and_test_hooks_with_known_keys_only() -> None:
    assert [h["id"] for h in HOOKS] == ["loopkit-validate", "loopkit-test"]
    for definition in HOOKS:
        assert {"id", "name", "entry", "language"} <= set(definition)
        assert set(definition) <= HOOK_KEYS, set(definition) - HOOK_KEYS


@pytest.mark.parametrize(
    ("hook_id", "command"), [("loopkit-validate", "validate"), ("loopkit-test", "test")]
)
def test_each_entry_is_a_console_script_of_the_package_and_its_subcommand(
    hook_id: str, command: str
) -> None:
    from loopkit.cli import COMMANDS

    program, subcommand = shlex.split(str(hook(hook_id)["entry"]))
    assert program in SCRIPTS
    assert subcommand == command
    # `loopkit test` is another branch's (issue 17); validate's is here already.
    if command in COMMANDS:
        assert COMMANDS[command][0].startswith("loopkit.commands.")


@pytest.mark.parametrize(
    ("path", "validated", "tested"),
    [
        ("loops/pr-review.yaml", True, True),
        ("project/loops/nested/triage.yml", True, True),
        ("loopkit.yaml", True, True),
        ("sub/loopkit.yaml", True, True),
        ("tests/pr-review.test.yaml", False, True),
        ("tests/pr-review.cassette.yaml", False, True),
        ("loops/pr-review.test.yaml", False, True),
        (".github/workflows/loopkit.yml", False, False),
        ("docs/loops.yaml", False, False),
        ("README.md", False, False),
    ],
)
def test_the_hooks_run_on_the_files_that_can_break_them(
    path: str, validated: bool, tested: bool
) -> None:
    """pre-commit matches ``files`` and ``exclude`` with ``re.search`` on the staged path."""

    def runs(definition: dict[str, object]) -> bool:
        included = re.search(str(definition["files"]), path) is not None
        exclude = definition.get("exclude")
        return included and not (exclude and re.search(str(exclude), path))

    assert runs(hook("loopkit-validate")) is validated
    assert runs(hook("loopkit-test")) is tested


def test_validate_checks_the_files_given_and_test_replays_every_test() -> None:
    # A loop's edit can break any test of it: the test hook takes no file names.
    assert hook("loopkit-validate")["pass_filenames"] is True
    assert hook("loopkit-test")["pass_filenames"] is False


def pre_commit(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``pre-commit try-repo`` on this repository's hooks, as a user would try them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env["PRE_COMMIT_HOME"] = str(project.parent / "pre-commit-home")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [str(BIN / "pre-commit"), "try-repo", str(ROOT), *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_validate_hook_blocks_a_commit_of_a_broken_loop_and_passes_a_fixed_one(
    tmp_path: Path,
) -> None:
    from loopkit.cli import main

    project = tmp_path / "acme"
    assert main(["init", "--no-ci", str(project)]) == 0
    subprocess.run(["git", "init", "-q", str(project)], check=True, timeout=60)
    broken = project / "loops" / "broken.yaml"
    broken.write_text("name: broken\npipeline:\n  - prompt: hi\n    lable: Summary\n")
    subprocess.run(["git", "add", "-A"], cwd=project, check=True, timeout=60)

    done = pre_commit(
        project, "loopkit-validate", "--files", "loops/broken.yaml", "loops/example.yaml"
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "  loops/broken.yaml:4:5: unknown key 'lable' (pipeline[0].lable)" in done.stdout
    assert "example — LRS: 100/100 (Grade A)" in done.stdout
    assert "daily-triage" not in done.stdout  # only the files given are checked

    broken.write_text(broken.read_text().replace("lable", "label"))
    done = pre_commit(project, "loopkit-validate", "--files", "loops/broken.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "loopkit validate" in done.stdout and "Passed" in done.stdout

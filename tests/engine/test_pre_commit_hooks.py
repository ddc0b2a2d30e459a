""".pre-commit-hooks.yaml: the hooks a project lists to check its loops before each commit."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
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

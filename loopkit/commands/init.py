"""``loopkit init [DIR]``: create a project: loopkit.yaml and loops/ with the seed's loops.

The loops are the seed's quick start (``pr-review`` and ``daily-triage``, the
same files as the repository's loops/, shipped in the package as
``loopkit.examples``) and a small ``example``, so that ``loopkit init`` then
``loopkit-runtime --dry-run run pr-review`` works as the seed shows it.

It also writes ``.github/workflows/loopkit.yml``, a GitHub Actions workflow
that runs LoopKit's action (``action.yml`` at the repository's root;
docs/github-action.md) on every push and pull request: the loops validated
against an LRS bar and their tests replayed, problems as annotations.
``--no-ci`` leaves it out.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

GITIGNORE_ENTRY = ".loopkit/"

#: Where LoopKit's GitHub Action is published (``uses: OWNER/REPO@REF``); the ref is the
#: release tag of this version, so a project's CI runs the LoopKit it was made with.
ACTION_REPOSITORY = "loopkit-ai/loopkit"
WORKFLOW_FILE = Path(".github", "workflows", "loopkit.yml")
#: The LRS bar of the generated workflow: the loops init writes meet it (the lowest,
#: daily-triage, scores 75); raise it as the project's loops improve.
WORKFLOW_MIN_SCORE = 70

WORKFLOW_TEMPLATE = """\
# LoopKit CI: validate the loops (a Loop Readiness Score bar included) and replay
# their tests on every push and pull request. Problems show as annotations at
# file:line. Inputs of the action: docs/github-action.md in the LoopKit repository.
name: LoopKit

on:
  push:
    branches: [main]
  pull_request:

permissions:
  contents: read

jobs:
  loopkit:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: {action}
        with:
          min-score: {min_score}
          # Replays tests/*.test.yaml against their cassettes: no network, no cost.
          run-tests: true
"""

PROJECT_TEMPLATE = """\
# LoopKit project file. Reference: docs/loop-yaml.md in the LoopKit repository.
version: 2
name: {name}
# Defaults every loop inherits unless it says otherwise.
defaults:
  budget:
    maxTokens: 200000
    maxDurationMinutes: 30
    maxCostUsd: 5
  memory:
    store: filesystem
    path: .loopkit/state
  # Make a loop without Maker/Checker verification a blocking LRS finding.
  enforceMakerChecker: false
loopsDir: loops
"""

EXAMPLE_NAME = "example"
#: The seed's loops that ``loopkit init`` writes beside the example (``loopkit.examples``).
SEED_LOOPS = ("pr-review", "daily-triage")

EXAMPLE_LOOP = """\
name: example
description: Summarise a text, checked by the built-in adversarial verifier. Run it for free with 'loopkit-runtime --dry-run run example'.
trigger:
  type: manual
inputs:
  text:
    description: The text to summarise.
    default: LoopKit is the open standard for autonomous AI agent loops.
pipeline:
  - prompt: |
      Summarise this text in three bullet points:

      {{ inputs.text }}
      {% if feedback %}The checker rejected your last summary: {{ feedback }}{% endif %}
    label: Summary
    timeout: 60
    retries: 2
verify:
  maker:
    - Summary
  checker: Adversarial Verifier
  maxRounds: 3
  autoRetry: true
budget:
  maxTokens: 50000
  maxDurationMinutes: 5
  maxCostUsd: 0.5
  maxModelCalls: 10
memory:
  store: filesystem
  path: .loopkit/state
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", nargs="?", default=".", metavar="DIR", help="project folder")
    parser.add_argument(
        "--force",
        action="store_true",
        help="overwrite loopkit.yaml, the loops and the workflow init writes",
    )
    parser.add_argument(
        "--no-ci",
        action="store_true",
        help=f"do not write the GitHub Actions workflow ({WORKFLOW_FILE.as_posix()})",
    )


def handle(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    if root.exists() and not root.is_dir():
        print(f"loopkit init: {root} exists and is not a folder", file=sys.stderr)
        return 1
    project_file = root / "loopkit.yaml"
    loops = {name: root / "loops" / f"{name}.yaml" for name in (*SEED_LOOPS, EXAMPLE_NAME)}
    workflow = None if args.no_ci else root / WORKFLOW_FILE
    written = [project_file, *loops.values(), *([workflow] if workflow else [])]
    existing = [p for p in written if p.exists()]
    if existing and not args.force:
        for path in existing:
            print(f"loopkit init: {path} already exists", file=sys.stderr)
        print("Nothing was changed; use --force to overwrite.", file=sys.stderr)
        return 1
    name = _project_name(root)
    try:
        texts = {path: _seed_loop(loop) for loop, path in loops.items() if loop in SEED_LOOPS}
        texts[loops[EXAMPLE_NAME]] = EXAMPLE_LOOP
        loops[EXAMPLE_NAME].parent.mkdir(parents=True, exist_ok=True)
        project_file.write_text(PROJECT_TEMPLATE.format(name=_yaml_string(name)), encoding="utf-8")
        for path, text in texts.items():
            path.write_text(text, encoding="utf-8")
        if workflow is not None:
            workflow.parent.mkdir(parents=True, exist_ok=True)
            workflow.write_text(workflow_text(), encoding="utf-8")
        ignored = _ensure_ignored(root / ".gitignore")
    except OSError as exc:
        print(f"loopkit init: cannot write {exc.filename or root}: {exc.strerror}", file=sys.stderr)
        return 1
    for path in written:
        print(f"Created {path}")
    if ignored:
        print(f"Added {GITIGNORE_ENTRY} to {root / '.gitignore'}")
    repo = _repository_root(root)
    if workflow is not None and repo is not None and repo != root.resolve():
        # GitHub reads workflows from the repository's root only: this one would never run.
        inside = root.resolve().relative_to(repo).as_posix()
        print(
            f"GitHub reads workflows only from the repository's root ({repo}): move "
            f"{workflow} to {repo / WORKFLOW_FILE} and give the action "
            f"'working-directory: {inside}' (docs/github-action.md)"
        )
    elif workflow is not None:
        print(
            f"The workflow checks the loops on GitHub once pushed (LRS bar {WORKFLOW_MIN_SCORE}; "
            "'loopkit init --no-ci' leaves it out)"
        )
    where = "" if root.resolve() == Path.cwd().resolve() else f"cd {args.dir} && "
    print("\nNext:")
    print(f"  {where}loopkit validate")
    print(f"  {where}loopkit-runtime --dry-run run {SEED_LOOPS[0]}")
    return 0


def _repository_root(folder: Path) -> Path | None:
    """Return the root of the git repository holding ``folder`` (a ``.git`` there), or None."""
    for candidate in (folder.resolve(), *folder.resolve().parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def workflow_text(version: str | None = None) -> str:
    """Return the GitHub Actions workflow that runs LoopKit's action at this version's tag."""
    from loopkit import __version__

    action = f"{ACTION_REPOSITORY}@v{version or __version__}"
    return WORKFLOW_TEMPLATE.format(action=action, min_score=WORKFLOW_MIN_SCORE)


def _seed_loop(name: str) -> str:
    """Return the text of one of the seed's loops: the example loop the package ships."""
    from loopkit import examples

    return examples.read(name)


def _project_name(root: Path) -> str:
    raw = root.resolve().name or "loopkit-project"
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-._")
    return name or "loopkit-project"


def _yaml_string(value: str) -> str:
    """Return ``value`` as a YAML scalar that reads back as that string."""
    import json

    import yaml

    plain = yaml.safe_load(value) == value and not value[:1].isdigit()
    return value if plain else json.dumps(value)


def _ensure_ignored(gitignore: Path) -> bool:
    """Add ``.loopkit/`` to .gitignore unless it is there; return whether it was added."""
    text = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
    entries = {line.strip() for line in text.splitlines()}
    if entries & {".loopkit", ".loopkit/", "/.loopkit", "/.loopkit/"}:
        return False
    if text and not text.endswith("\n"):
        text += "\n"
    gitignore.write_text(text + GITIGNORE_ENTRY + "\n", encoding="utf-8")
    return True

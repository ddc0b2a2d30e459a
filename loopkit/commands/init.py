"""``loopkit init [DIR]``: create a project: loopkit.yaml and loops/ with the seed's loops.

The loops are the seed's quick start (``pr-review`` and ``daily-triage``, the
same files as the repository's loops/, shipped in the package as
``loopkit/seed/``) and a small ``example``, so that ``loopkit init`` then
``loopkit-runtime --dry-run run pr-review`` works as the seed shows it.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

GITIGNORE_ENTRY = ".loopkit/"

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
#: The seed's loops that ``loopkit init`` writes beside the example (files of loopkit/seed/).
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
        "--force", action="store_true", help="overwrite loopkit.yaml and the loops init writes"
    )


def handle(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    if root.exists() and not root.is_dir():
        print(f"loopkit init: {root} exists and is not a folder", file=sys.stderr)
        return 1
    project_file = root / "loopkit.yaml"
    loops = {name: root / "loops" / f"{name}.yaml" for name in (*SEED_LOOPS, EXAMPLE_NAME)}
    existing = [p for p in (project_file, *loops.values()) if p.exists()]
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
        ignored = _ensure_ignored(root / ".gitignore")
    except OSError as exc:
        print(f"loopkit init: cannot write {exc.filename or root}: {exc.strerror}", file=sys.stderr)
        return 1
    for path in (project_file, *loops.values()):
        print(f"Created {path}")
    if ignored:
        print(f"Added {GITIGNORE_ENTRY} to {root / '.gitignore'}")
    where = "" if root.resolve() == Path.cwd().resolve() else f"cd {args.dir} && "
    print("\nNext:")
    print(f"  {where}loopkit validate")
    print(f"  {where}loopkit-runtime --dry-run run {SEED_LOOPS[0]}")
    return 0


def _seed_loop(name: str) -> str:
    """Return the text of one of the seed's loops, as the package ships it."""
    from importlib.resources import files

    return (files("loopkit") / "seed" / f"{name}.yaml").read_text(encoding="utf-8")


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

"""The ``loopkit`` and ``loopkit-runtime`` command lines.

Each subcommand lives in ``loopkit.commands.<name>`` with two functions:
``add_arguments(parser)`` and ``handle(args) -> int`` (the exit code). Command
modules import heavy dependencies (LiteLLM, the engine) inside ``handle``
only, so that ``loopkit validate`` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from loopkit import __version__

#: Subcommand name → (module, one-line help).
COMMANDS: dict[str, tuple[str, str]] = {
    "init": (
        "loopkit.commands.init",
        "create a project: loopkit.yaml, example loops, a GitHub workflow",
    ),
    "validate": (
        "loopkit.commands.validate",
        "validate loops and print their Loop Readiness Score",
    ),
    "schema": ("loopkit.commands.schema", "print the JSON Schema of a loop file"),
    "run": ("loopkit.commands.run", "run a loop (live, or free with --dry-run)"),
    "status": ("loopkit.commands.status", "show recent runs"),
    "test": (
        "loopkit.commands.test",
        "replay loops against their recorded cassettes (no network, no cost) and check them",
    ),
    "calibrate": (
        "loopkit.commands.calibrate",
        "measure a loop's checker against labelled examples",
    ),
    "skills": ("loopkit.commands.skills", "list the skills a project can use"),
    "import": (
        "loopkit.commands.interop",
        "convert a Dify, CrewAI, GitHub agentic workflow or Agent Spec file into a loop",
    ),
    "export": ("loopkit.commands.interop", "write a loop as a GitHub agentic workflow"),
    "pull": ("loopkit.commands.sync", "pull a team's loops from a LoopKit server into loops/"),
    "push": ("loopkit.commands.sync", "push loops/ to a team on a LoopKit server"),
    "mcp": ("loopkit.commands.mcp", "serve the project's loops as MCP tools over stdio"),
    # The web app's module (imports Django only when run): needs the [web] extra.
    "serve": ("loopkit_web.serve", "start the web app: server, worker, first admin"),
}


#: Commands that only read and write loop files: they start without pydantic plugins.
FILE_ONLY_COMMANDS = frozenset({"validate", "schema", "init", "import", "export"})


def _available() -> dict[str, tuple[str, str]]:
    out = {}
    for name, (module, help_text) in COMMANDS.items():
        if importlib.util.find_spec(module) is not None:
            out[name] = (module, help_text)
    return out


def build_parser(prog: str = "loopkit", only: str | None = None) -> argparse.ArgumentParser:
    """Build the argument parser; with ``only``, import just that command's module.

    Every command is listed either way; only the one being run needs its
    arguments, so ``loopkit validate`` never imports the run command's module.
    """
    parser = argparse.ArgumentParser(prog=prog, description="LoopKit: autonomous AI agent loops.")
    parser.add_argument("--version", action="version", version=f"loopkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in _available().items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(_module=module_name, _name=name)
        if only is not None and name != only:
            continue
        module = importlib.import_module(module_name)
        # A module serving several commands names its functions after each one.
        add = getattr(module, f"add_{name}_arguments", None) or module.add_arguments
        add(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``loopkit``; return the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    if first in FILE_ONLY_COMMANDS:
        # Pydantic looks for plugins by scanning every installed distribution's entry
        # points (~15 ms); commands that only read loop files need none.
        os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    parser = build_parser(only=first if first in COMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    module = importlib.import_module(args._module)
    handler = getattr(module, f"handle_{args._name}", None) or module.handle
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`loopkit validate | head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def runtime_main(argv: Sequence[str] | None = None) -> int:
    """Run ``loopkit-runtime [--dry-run] run LOOP`` (the seed's Python runtime entry point)."""
    module = importlib.import_module("loopkit.commands.run")
    return int(module.runtime_main(list(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

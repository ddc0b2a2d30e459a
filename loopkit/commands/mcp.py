"""``loopkit mcp``: serve the project's loops as MCP tools over stdio (docs/mcp.md).

An MCP client (Claude Desktop, Cursor, an IDE) starts this command; each loop
of the project is a tool, and a call runs the loop here and returns its
verified output. Standard output carries the protocol only: everything else
(warnings, a loop that does not load) goes to standard error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--project",
        metavar="DIR",
        help="the project folder (default: the one holding loopkit.yaml here or above)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="make every call a dry run: no model calls, no cost",
    )


def handle(args: argparse.Namespace) -> int:
    import anyio
    from mcp.server.stdio import stdio_server

    from loopkit.errors import SpecError
    from loopkit.project import find_project
    from loopkit.toolserver import ProjectBackend, build_server

    folder = Path(args.project) if args.project else None
    if folder is not None and not folder.is_dir():
        print(f"loopkit mcp: --project {args.project} is not a folder", file=sys.stderr)
        return 2
    try:
        project = find_project(folder)
    except SpecError as exc:
        for problem in exc.problems:
            print(str(problem), file=sys.stderr)
        return 2
    backend = ProjectBackend(project, dry_run_only=args.dry_run)
    if not backend.loops():
        print(f"loopkit mcp: no loops to serve in {project.loops_dir}", file=sys.stderr)
        return 2
    server = build_server(backend)

    async def serve() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(serve)
    return 0

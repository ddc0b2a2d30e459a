"""``loopkit schema``: print the JSON Schema of a loop file (or of loopkit.yaml)."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--project",
        action="store_true",
        help="print the schema of the project file loopkit.yaml instead of a loop file's",
    )
    parser.add_argument(
        "-o", "--output", metavar="FILE", default=None, help="write to FILE instead of stdout"
    )


def handle(args: argparse.Namespace) -> int:
    from loopkit import spec

    schema = spec.project_json_schema() if args.project else spec.json_schema()
    text = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as out:
                out.write(text)
        except OSError as exc:
            print(f"loopkit schema: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
            return 1
        print(f"Wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0

"""``manage.py loopkit_start``: ``loopkit serve`` for a checkout (loopkit_web/launch.py).

Migrate, make the first admin (and the demo team with ``--demo``), start Daphne
and a Huey worker, print the URL once the port answers.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from loopkit_web import launch
from loopkit_web.settings import env_bool


class Command(BaseCommand):
    help = "Migrate, load the demo team, start Daphne and a Huey worker, print the URL."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=None)
        parser.add_argument("--port", type=int, default=None)
        parser.add_argument("--workers", type=int, default=None, help="Huey worker threads.")
        parser.add_argument("--no-worker", action="store_true", help="Do not start a Huey worker.")
        parser.add_argument(
            "--demo",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="Create or refresh the demo team, user and loops (env LOOPKIT_DEMO).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        chosen = launch.default_options(
            host=options["host"],
            port=options["port"],
            workers=0 if options["no_worker"] else options["workers"],
            # A checkout's development mode keeps its demo account by default.
            demo=options["demo"]
            if options["demo"] is not None
            else env_bool("LOOPKIT_DEMO", settings.DEBUG),
        )
        code = launch.run(chosen, self.stdout, self.stderr)
        if code:
            sys.exit(code)

"""Start LoopKit: migrate, demo team, then Daphne and a Huey worker together.

Ctrl-C or SIGTERM stops both child processes; if either dies, the other is
stopped and the command exits non-zero.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from loopkit_web.demo import ensure_demo_account, run_demo_loaders
from loopkit_web.settings import env_bool

STOP_TIMEOUT_SECONDS = 10.0


class Command(BaseCommand):
    help = "Migrate, load the demo team, start Daphne and a Huey worker, print the URL."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("LOOPKIT_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("LOOPKIT_PORT", "8000")))
        parser.add_argument("--no-worker", action="store_true", help="Do not start a Huey worker.")
        parser.add_argument(
            "--demo",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="Create or refresh the demo team, user and loops (default: only when DEBUG is on; "
            "env LOOPKIT_DEMO).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self.prepare(options)
        except KeyboardInterrupt:
            self.stderr.write("Interrupted before the server started.")
            sys.exit(130)
        self.serve(options["host"], options["port"], worker=not options["no_worker"])

    def prepare(self, options: dict[str, Any]) -> None:
        """Migrate, collect static files (DEBUG off) and make the demo account."""
        call_command("migrate", interactive=False, verbosity=0)
        if "channels" in settings.DATABASES:
            call_command("migrate", database="channels", interactive=False, verbosity=0)
        self.stdout.write("Database migrated.")
        if not settings.DEBUG:
            call_command("collectstatic", interactive=False, verbosity=0)
        demo = options["demo"]
        if demo is None:
            demo = env_bool("LOOPKIT_DEMO", settings.DEBUG)
        if demo:
            account = ensure_demo_account()
            run_demo_loaders(account, self.stdout)
            self.stdout.write(
                f"Demo team “{account.team.name}”: log in as {account.user.get_username()} "
                f"/ {account.password}"
            )

    def serve(self, host: str, port: int, *, worker: bool) -> None:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": os.environ["DJANGO_SETTINGS_MODULE"]}
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        commands = {
            "daphne": [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                host,
                "-p",
                str(port),
                # Client addresses from X-Forwarded-For only behind a proxy: otherwise
                # any client could forge the IP the audit log records.
                *(["--proxy-headers"] if env_bool("LOOPKIT_BEHIND_TLS_PROXY", False) else []),
                "loopkit_web.asgi:application",
            ],
        }
        if worker:
            commands["huey"] = [sys.executable, manage, "run_huey", "--max-delay", "0.5"]
        children: dict[str, subprocess.Popen[bytes]] = {}
        stopping = False
        exit_code = 0

        def request_stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        previous = {
            sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            for name, cmd in commands.items():
                children[name] = subprocess.Popen(cmd, env=env, cwd=settings.BASE_DIR)
            self.stdout.write(
                self.style.SUCCESS(f"LoopKit is running at http://{host}:{port}/ (Ctrl-C to stop)"),
            )
            self.stdout.flush()
            while not stopping:
                for name, child in children.items():
                    code = child.poll()
                    if code is not None:
                        self.stderr.write(f"{name} exited with code {code}; stopping.")
                        exit_code, stopping = code or 1, True
                        break
                time.sleep(0.2)
        finally:
            self.stop(children)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write("Stopped.")
        if exit_code:
            sys.exit(exit_code)

    def stop(self, children: dict[str, subprocess.Popen[bytes]]) -> None:
        """Terminate every child, then kill those still running after the timeout."""
        for child in children.values():
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

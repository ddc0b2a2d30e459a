"""Start LoopKit: prepare the database, then run Daphne and a Huey worker together.

What ``loopkit serve`` and ``manage.py loopkit_start`` do once Django is set
up. The guarantees: the URL is printed only once the port answers; Ctrl-C or
SIGTERM stops both children and exits 0; if either child dies, the other is
stopped and the exit code is non-zero. Nothing here needs a source checkout:
the children are ``python -m daphne`` and ``python -m django run_huey``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import TextIOBase
from pathlib import Path
from types import FrameType
from typing import Any, TextIO, cast

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.apps import StaticFilesConfig
from django.core.management import call_command
from django.db import connections, transaction

from loopkit_web.audit.services import record, snapshot
from loopkit_web.demo import ensure_demo_account, run_demo_loaders
from loopkit_web.settings import env_bool

STOP_TIMEOUT_SECONDS = 10.0
READY_TIMEOUT_SECONDS = 60.0
ADMIN_USER_ENV = "LOOPKIT_ADMIN_USER"
ADMIN_PASSWORD_ENV = "LOOPKIT_ADMIN_PASSWORD"

#: Where messages go: sys.stdout/sys.stderr, or a management command's OutputWrapper.
Stream = TextIO | TextIOBase


@dataclass
class Options:
    host: str = "127.0.0.1"
    port: int = 8000
    #: Huey worker threads; 0 starts no worker (run ``run_huey`` elsewhere).
    workers: int = 4
    demo: bool = False


def prepare(options: Options, out: Stream) -> None:
    """Migrate and collect static files (DEBUG off): what must be done before serving.

    The two are independent (one writes the database, the other files), so they
    run side by side: on a first start that halves the wait.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        collected = None if settings.DEBUG else pool.submit(collect_static)
        call_command("migrate", interactive=False, verbosity=0)
        if "channels" in settings.DATABASES:
            call_command("migrate", database="channels", interactive=False, verbosity=0)
        if collected is not None:
            collected.result()
    out.write("Database migrated.\n")


def make_accounts(options: Options, out: Stream) -> None:
    """Make the first admin and (with --demo) the demo team: done while the children boot."""
    ensure_first_admin(out)
    if options.demo:
        account = ensure_demo_account()
        run_demo_loaders(account, out)
        out.write(
            f"Demo team “{account.team.name}”: log in as {account.user.get_username()} "
            f"/ {account.password}\n"
        )


#: ninja's Redoc page is not mounted (/api/docs is Swagger UI): 3.7 MB not to collect.
STATIC_IGNORED = ["redoc.standalone.js*"]


def static_fingerprint() -> str:
    """Return a digest of every static file the finders see (path, size, mtime)."""
    digest = hashlib.sha256(settings.STORAGES["staticfiles"]["BACKEND"].encode())
    staticfiles = cast(StaticFilesConfig, apps.get_app_config("staticfiles"))
    ignored = [*STATIC_IGNORED, *staticfiles.ignore_patterns]
    for finder in finders.get_finders():
        for path, storage in finder.list(ignored):
            stat = os.stat(storage.path(path))
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def collect_static() -> None:
    """Run collectstatic unless the files collected last time are still the current ones."""
    stamp = Path(settings.STATIC_ROOT) / ".loopkit-collected"
    fingerprint = static_fingerprint()
    if stamp.is_file() and stamp.read_text() == fingerprint:
        return
    # A copy: collectstatic appends its default patterns to the list it is given.
    call_command(
        "collectstatic", interactive=False, verbosity=0, ignore_patterns=list(STATIC_IGNORED)
    )
    stamp.write_text(fingerprint)


@transaction.atomic
def ensure_first_admin(out: Stream) -> None:
    """Create a superuser when there is none: named by LOOPKIT_ADMIN_USER (default admin).

    The password is LOOPKIT_ADMIN_PASSWORD, or generated and printed this once.
    """
    User = get_user_model()
    if User.objects.filter(is_superuser=True).exists():
        return
    username = os.environ.get(ADMIN_USER_ENV, "").strip() or "admin"
    if User.objects.filter(username=username).exists():
        out.write(
            f"No admin account, and the user {username!r} exists: make one with "
            f"`django-admin createsuperuser` or set {ADMIN_USER_ENV} to a free name.\n"
        )
        return
    password = os.environ.get(ADMIN_PASSWORD_ENV, "")
    generated = not password
    if generated:
        password = secrets.token_urlsafe(12)
    user = User.objects.create_superuser(username=username, email="", password=password)
    record(None, "user.created", user, after=snapshot(user, ["username"]), actor_label="serve")
    if generated:
        out.write(
            f"Admin account created: log in as {username} / {password} "
            "(shown once: change it after logging in)\n"
        )
    else:
        out.write(f"Admin account created: {username} (password from {ADMIN_PASSWORD_ENV})\n")


def child_commands(options: Options) -> dict[str, list[str]]:
    """Return the command line of each child process, by name."""
    commands = {
        "daphne": [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            options.host,
            "-p",
            str(options.port),
            # Client addresses from X-Forwarded-For only behind a proxy: otherwise
            # any client could forge the IP the audit log records.
            *(["--proxy-headers"] if settings.SECURE_PROXY_SSL_HEADER else []),
            "loopkit_web.asgi:application",
        ],
    }
    if options.workers > 0:
        commands["huey"] = [
            sys.executable,
            "-m",
            "django",
            "run_huey",
            "--workers",
            str(options.workers),
            "--max-delay",
            "0.5",
        ]
    return commands


def public_url(host: str, port: int) -> str:
    """Return the URL to print: a wildcard address is reached through localhost."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def port_is_free(host: str, port: int) -> bool:
    """Return True if nothing listens on (host, port) yet."""
    address = host.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Daphne binds
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def port_answers(host: str, port: int) -> bool:
    target = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    try:
        with socket.create_connection((target.strip("[]"), port), timeout=0.5):
            return True
    except OSError:
        return False


def serve(options: Options, out: Stream, err: Stream, meanwhile: Callable[[], None]) -> int:
    """Run the children until a signal or a child's exit; return the exit code.

    *meanwhile* runs once the children are started (they take seconds to import
    and bind); the URL is printed after it returned and the port answers.
    """
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": os.environ["DJANGO_SETTINGS_MODULE"]}
    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False
    exit_code = 0

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    if not port_is_free(options.host, options.port):
        err.write(
            f"port {options.port} on {options.host} is in use (another server?): "
            "choose another with --port.\n"
        )
        return 1
    commands = child_commands(options)
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        # The server first: on a busy machine the worker's start would slow its own.
        children["daphne"] = subprocess.Popen(commands.pop("daphne"), env=env)
        meanwhile()
        announced = False
        started = time.monotonic()
        while not stopping:
            for name, child in children.items():
                code = child.poll()
                if code is not None:
                    err.write(f"{name} exited with code {code}; stopping.\n")
                    exit_code, stopping = code or 1, True
                    break
            if stopping:
                break
            if not announced:
                if port_answers(options.host, options.port):
                    for name, cmd in commands.items():
                        children[name] = subprocess.Popen(cmd, env=env)
                    url = public_url(options.host, options.port)
                    out.write(f"LoopKit is running at {url} (Ctrl-C to stop)\n")
                    out.flush()
                    announced = True
                    continue
                if time.monotonic() - started > READY_TIMEOUT_SECONDS:
                    err.write(
                        f"the server did not answer on port {options.port} within "
                        f"{READY_TIMEOUT_SECONDS:.0f} s; stopping.\n"
                    )
                    exit_code, stopping = 1, True
                    break
                time.sleep(0.05)
                continue
            time.sleep(0.2)
    finally:
        stop(children)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    out.write("Stopped.\n")
    out.flush()
    return exit_code


def stop(children: dict[str, subprocess.Popen[bytes]]) -> None:
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


def run(options: Options, out: Stream = sys.stdout, err: Stream = sys.stderr) -> int:
    """Prepare, then serve; return the process exit code."""
    try:
        prepare(options, out)
    except KeyboardInterrupt:
        err.write("Interrupted before the server started.\n")
        return 130
    out.flush()

    def meanwhile() -> None:
        make_accounts(options, out)
        release_database()

    return serve(options, out, err, meanwhile)


def release_database() -> None:
    """Close this process's connections and pools: it only waits on its children now."""
    for conn in connections.all():
        conn.close()
        close_pool = getattr(conn, "close_pool", None)  # PostgreSQL's, with a pool
        if close_pool is not None and conn.settings_dict.get("OPTIONS", {}).get("pool"):
            close_pool()


def default_options(**given: Any) -> Options:
    """Return Options from *given* values, falling back on the environment's defaults."""
    values: dict[str, Any] = {
        "host": os.environ.get("LOOPKIT_HOST", "127.0.0.1"),
        "port": int(os.environ.get("LOOPKIT_PORT", "8000")),
        "workers": int(settings.HUEY.get("consumer", {}).get("workers", 4)),
        "demo": env_bool("LOOPKIT_DEMO", False),
    }
    values.update({k: v for k, v in given.items() if v is not None})
    return Options(**values)

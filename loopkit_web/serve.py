"""``loopkit serve``: run the web app from the installed package (no checkout, no Node).

This module is imported by the ``loopkit`` command line for every command (to
list ``serve`` in the help), so it imports Django only inside :func:`handle`:
``loopkit validate`` must not pay for it. The work is in loopkit_web/launch.py.
"""

from __future__ import annotations

import argparse
import os
import sys

DISTRIBUTION = "loopkit-ai"
WILDCARD_HOSTS = {"0.0.0.0", "::", ""}
LOCAL_HOSTS = ["localhost", "127.0.0.1", "[::1]"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default=None,
        help="address to listen on (default 127.0.0.1; env LOOPKIT_HOST; 0.0.0.0 for every "
        "interface, then set ALLOWED_HOSTS)",
    )
    parser.add_argument(
        "--port", type=int, default=None, help="port to listen on (default 8000; env LOOPKIT_PORT)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="Huey worker threads that execute runs (default 4; env LOOPKIT_HUEY_WORKERS); "
        "0 starts no worker (run `django-admin run_huey` elsewhere)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        default=None,
        help="create or refresh the demo team (demo / loopkit-demo) and load the example loops",
    )
    parser.add_argument(
        "--dev",
        action="store_true",
        help="development mode: DEBUG on (tracebacks in pages, static files read from the apps)",
    )


def handle(args: argparse.Namespace) -> int:
    try:
        import django
    except ImportError:
        sys.stderr.write(
            f"loopkit serve needs the web app's dependencies: pip install '{DISTRIBUTION}[web]'\n"
        )
        return 2
    if args.dev:
        os.environ["DEBUG"] = "true"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loopkit_web.settings")
    host = args.host if args.host is not None else os.environ.get("LOOPKIT_HOST", "127.0.0.1")
    if "ALLOWED_HOSTS" not in os.environ and host not in WILDCARD_HOSTS | set(LOCAL_HOSTS):
        # Serving on a named address: that name is a host the app answers to.
        os.environ["ALLOWED_HOSTS"] = ",".join([*LOCAL_HOSTS, host])
    django.setup()

    from loopkit_web import launch

    options = launch.default_options(
        host=host, port=args.port, workers=args.workers, demo=args.demo
    )
    return launch.run(options)

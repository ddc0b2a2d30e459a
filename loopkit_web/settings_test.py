"""Settings for the test suite: the embedded defaults with test-friendly overrides.

Huey is built when settings load, so tests get their own module instead of
``override_settings``: tasks run inline (``immediate``) unless
``LOOPKIT_HUEY_IMMEDIATE=false`` is set, the channel layer is in memory unless
``LOOPKIT_CHANNEL_LAYER`` says otherwise, and every pytest process gets its own
var/ directory and SQLite test database file, so several test runs can share a
working tree. Child processes (daphne in live-server tests) inherit the
directory through the environment.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

if "LOOPKIT_HOME" not in os.environ and "LOOPKIT_VAR_DIR" not in os.environ:
    # The process that makes the directory removes it; children inherit it.
    _var = tempfile.mkdtemp(prefix=f"loopkit-test-{os.getpid()}-")
    os.environ["LOOPKIT_HOME"] = _var
    atexit.register(shutil.rmtree, _var, ignore_errors=True)
# The development mode (`loopkit serve --dev`): static files without collectstatic.
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("LOOPKIT_HUEY_IMMEDIATE", "true")
os.environ.setdefault("LOOPKIT_CHANNEL_LAYER", "memory")

from loopkit_web.settings import *  # noqa: F403
from loopkit_web.settings import DATABASES, VAR_DIR

# Daphne in a child process refuses an in-memory SQLite test database.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-loopkit.sqlite3")}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

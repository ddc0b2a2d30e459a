"""Settings of the runs app, each overridable in Django settings or by environment variable.

| setting / env var | default | meaning |
|---|---|---|
| ``LOOPKIT_RUN_CONCURRENCY_PER_TEAM`` | 4 | runs of one team executing at once; more wait queued |
| ``LOOPKIT_RUN_CONCURRENCY_BY_TEAM`` | none | per-team overrides: ``acme=8,beta=1`` |
| ``LOOPKIT_RUN_HEARTBEAT_SECONDS`` | 5 | how often a worker marks its runs alive |
| ``LOOPKIT_RUN_STALE_SECONDS`` | 30 | a run silent this long has lost its worker |
| ``LOOPKIT_RUN_MAX_ATTEMPTS`` | 3 | worker pick-ups before a lost run is failed |
| ``LOOPKIT_RUN_HOST_CONCURRENCY`` | 256 | runs in flight at once in one worker process |
| ``LOOPKIT_RUN_HOST_DB_THREADS`` | 4 | database threads of a worker process's run host |
| ``LOOPKIT_WEBHOOK_MAX_BYTES`` | 1048576 | larger webhook bodies get 413 |
| ``LOOPKIT_EVENT_CHAIN_LIMIT`` | 10 | loops triggered by loops, at most this deep |
| ``LOOPKIT_CRON_CATCH_UP_LIMIT`` | 10 | missed cron due times one loop fires per tick, the latest |
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _number(name: str, default: float) -> float:
    value = getattr(settings, name, None)
    if value is None:
        raw = os.environ.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None
    if float(value) <= 0:
        raise ImproperlyConfigured(f"{name} must be positive, got {value!r}.")
    return float(value)


def concurrency_per_team() -> int:
    return int(_number("LOOPKIT_RUN_CONCURRENCY_PER_TEAM", 4))


def concurrency_for(team_slug: str) -> int:
    """Return the concurrency limit of one team.

    ``LOOPKIT_RUN_CONCURRENCY_BY_TEAM`` overrides the default per team: a dict
    in settings, or ``slug=N,slug=N`` in the environment.
    """
    table = getattr(settings, "LOOPKIT_RUN_CONCURRENCY_BY_TEAM", None)
    if table is None:
        table = {}
        for item in os.environ.get("LOOPKIT_RUN_CONCURRENCY_BY_TEAM", "").split(","):
            slug, sep, value = item.partition("=")
            if not item.strip():
                continue
            if not sep or not value.strip().isdigit() or int(value) < 1:
                raise ImproperlyConfigured(
                    f"LOOPKIT_RUN_CONCURRENCY_BY_TEAM: {item.strip()!r} is not slug=N (N >= 1)."
                )
            table[slug.strip()] = int(value)
    return int(table.get(team_slug, concurrency_per_team()))


def heartbeat_seconds() -> float:
    return _number("LOOPKIT_RUN_HEARTBEAT_SECONDS", 5.0)


def stale_seconds() -> float:
    return _number("LOOPKIT_RUN_STALE_SECONDS", 30.0)


def max_attempts() -> int:
    return int(_number("LOOPKIT_RUN_MAX_ATTEMPTS", 3))


def host_concurrency() -> int:
    """Runs one worker process executes at once (``runs.host``); more wait in the queue."""
    return int(_number("LOOPKIT_RUN_HOST_CONCURRENCY", 256))


def host_db_threads() -> int:
    """Threads (so database connections) a run host uses for its runs' database work."""
    return int(_number("LOOPKIT_RUN_HOST_DB_THREADS", 4))


def webhook_max_bytes() -> int:
    return int(_number("LOOPKIT_WEBHOOK_MAX_BYTES", 1024 * 1024))


def event_chain_limit() -> int:
    return int(_number("LOOPKIT_EVENT_CHAIN_LIMIT", 10))


def dry_run_only() -> bool:
    """``LOOPKIT_RUNS_DRY_RUN_ONLY``: every run is a dry run (staging, demos, tests)."""
    value = getattr(settings, "LOOPKIT_RUNS_DRY_RUN_ONLY", None)
    if value is None:
        value = os.environ.get("LOOPKIT_RUNS_DRY_RUN_ONLY", "").strip().lower() in {
            "1",
            "true",
            "yes",
            "on",
        }
    return bool(value)


def cron_catch_up_limit() -> int:
    return int(_number("LOOPKIT_CRON_CATCH_UP_LIMIT", 10))

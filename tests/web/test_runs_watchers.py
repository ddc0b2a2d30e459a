"""Every watcher of a run reaches its last stored event, however many watch it.

LoopKit runs as deployed (``manage.py loopkit_start``: Daphne and a Huey
worker): on the embedded default (SQLite, channels-lite) 200 sockets watch one
dry run, and with Redis (channels-redis) 500. Each must see ``run_finished``
as the run's last stored event: a push the channel layer lost at the end is
read back after a quiet second. The figures (time to the last watcher) are
printed by bench/watchers.py, not asserted here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import service_urls

from loopkit import yamlio

from .procs import child_env, manage, running_loopkit, shell, skip_or_fail
from .watchers import login, watch_run

SCRIPTS = Path(__file__).parent / "scripts"
LOOP = yamlio.dump(
    yamlio.loop_from_data(
        {
            "name": "watched",
            "pipeline": [
                {"approve": "Go?", "label": "Gate", "approvers": ["owner"]},
                *({"prompt": f"Step {i}", "label": f"S{i}"} for i in range(8)),
            ],
            "dryRun": {"latencyMs": 150},
        }
    )
)


def start_app(tmp_path: Path, **env_extra: str) -> Iterator[tuple[str, int]]:
    env = child_env(LOOPKIT_HOME=str(tmp_path / "var"), LOOPKIT_HUEY_IMMEDIATE="false", **env_extra)
    manage("migrate", "--no-input", env=env)
    proc = shell(SCRIPTS / "runs_setup.py", env={**env, "RUNS_LOOP_YAML": LOOP, "RUNS_NO_RUN": "1"})
    facts = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))[7:])
    with running_loopkit(env, tmp_path / "server.log") as url:
        yield url, int(facts["loop"])


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[str, int]]:
    yield from start_app(tmp_path)


@pytest.fixture
def with_redis(tmp_path: Path) -> Iterator[tuple[str, int]]:
    redis = pytest.importorskip("redis")
    url = service_urls.redis_url("watchers")
    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis is not reachable at {url}: {exc}")
    client.flushdb()
    try:
        yield from start_app(tmp_path, REDIS_URL=url)
    finally:
        client.flushdb()


def test_two_hundred_watchers_on_the_embedded_default_all_reach_run_finished(
    embedded: tuple[str, int],
) -> None:
    url, loop = embedded
    watched = watch_run(login(url, "runner", "x-long-password-1"), loop, count=200)

    assert watched.errors == []
    assert watched.reached_end == 200, [w.seqs[-3:] for w in watched.watchers][:5]
    # Every socket saw every event once, in order.
    assert {tuple(w.seqs) for w in watched.watchers} == {tuple(range(1, watched.stored + 1))}


@pytest.mark.services
def test_five_hundred_watchers_with_redis_all_reach_run_finished(
    with_redis: tuple[str, int],
) -> None:
    url, loop = with_redis
    watched = watch_run(login(url, "runner", "x-long-password-1"), loop, count=500)

    assert watched.errors == []
    assert watched.reached_end == 500, [w.seqs[-3:] for w in watched.watchers][:5]
    assert {tuple(w.seqs) for w in watched.watchers} == {tuple(range(1, watched.stored + 1))}

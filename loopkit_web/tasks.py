"""Project-level Huey tasks."""

from __future__ import annotations

import os

from huey.contrib.djhuey import task


@task()
def ping(payload: str = "pong") -> dict[str, object]:
    """Echo *payload* with the worker's pid: proves a worker picks up tasks."""
    return {"payload": payload, "pid": os.getpid()}

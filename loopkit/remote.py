"""``loopkit run LOOP --remote``: start a run on a LoopKit server and follow it.

The server is ``LOOPKIT_SERVER`` (e.g. ``https://loopkit.example.com``) and
the credential an API token in ``LOOPKIT_TOKEN`` (made on the server's "API
tokens" page; it acts in its team only). The command starts a manual run of
the team's loop with that name, then polls the run's events and prints them
as a local run would (``--json``: one JSON object per line; ``--verbose``:
the agents' streamed text too, from the run's ``step_output`` events), and
exits with the run's exit code.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from typing import IO, Any

import httpx

from loopkit.engine.events import EVENT_TYPES, Event, Tokens

#: Seconds between two polls of the run's events.
POLL_SECONDS = 0.5


class RemoteError(Exception):
    """The server refused or could not be reached; the message says why."""


def _event(type_: str, payload: dict[str, Any]) -> Event | None:
    """Rebuild the engine's event from a stored payload (None for the server's own events)."""
    cls = EVENT_TYPES.get(type_)
    if cls is None:
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    data = {k: v for k, v in payload.items() if k in names and k not in ("seq", "run_id")}
    if isinstance(data.get("tokens"), dict):
        data["tokens"] = Tokens.from_dict(data["tokens"])
    try:
        return cls(**data)
    except TypeError:
        return None


class Client:
    """The few API calls the command needs, with the token and clear errors."""

    def __init__(self, server: str, token: str, http: httpx.Client | None = None) -> None:
        self.server = server.rstrip("/")
        self.http = http or httpx.Client(timeout=30)
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = self.http.request(
                method, self.server + path, json=body, headers=self.headers
            )
        except httpx.HTTPError as exc:
            raise RemoteError(f"cannot reach {self.server}: {exc}") from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400:
            message = data.get("message") if isinstance(data, dict) else response.text[:200]
            raise RemoteError(f"{self.server} answered {response.status_code}: {message}")
        return data


def run_remote(
    loop: str,
    *,
    inputs: dict[str, Any],
    dry_run: bool,
    payload: dict[str, Any] | None = None,
    as_json: bool,
    verbose: bool = False,
    env: dict[str, str] | None = None,
    out: IO[str] | None = None,
    http: httpx.Client | None = None,
) -> str:
    """Start *loop* on the server, print its events until it ends; return its status.

    *inputs* go to the server as given (it converts them to their declared
    types) and *payload* becomes the run's ``trigger.payload``.
    With *verbose*, the transcript also shows the agents' streamed text as
    ``loopkit run --verbose`` does (each piece after a ``   <step> | `` prefix).
    """
    from loopkit.sinks import ConsoleSink

    env = dict(os.environ) if env is None else env
    out = out or sys.stdout
    server, token = env.get("LOOPKIT_SERVER", ""), env.get("LOOPKIT_TOKEN", "")
    if not server or not token:
        raise RemoteError(
            "--remote needs LOOPKIT_SERVER (the server's URL) and LOOPKIT_TOKEN "
            "(an API token from the server's 'API tokens' page)"
        )
    client = Client(server, token, http)
    body: dict[str, Any] = {"loop": loop, "inputs": inputs, "dry_run": dry_run}
    if payload is not None:
        body["payload"] = payload
    run = client.call("POST", "/api/runs", body)
    if not as_json:
        out.write(f"Run #{run['id']} started on {client.server}{run['url']}\n")
    console = ConsoleSink(out, stream_text=verbose)
    after = 0
    while True:
        events = client.call("GET", f"/api/runs/{run['id']}/events?after={after}")
        for item in events:
            after = int(item["seq"])
            if as_json:
                out.write(
                    json.dumps({"seq": item["seq"], "type": item["type"], **item["payload"]}) + "\n"
                )
            else:
                event = _event(item["type"], item["payload"])
                if event is not None:
                    console.emit(event)
                else:
                    out.write(f"[{item['type']}] {json.dumps(item['payload'])}\n")
            if item["type"] == "run_finished":
                out.flush()
                return str(item["payload"].get("status", "failed"))
        out.flush()
        time.sleep(POLL_SECONDS)

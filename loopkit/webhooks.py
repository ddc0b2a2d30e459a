"""GitHub webhook events: which ``trigger.payload`` paths exist, and a sample payload.

The data is GitHub's own, as published in the npm packages
``@octokit/webhooks-schemas`` (one JSON Schema per event and action) and
``@octokit/webhooks-examples`` (real delivered payloads), vendored by
``scripts/vendor-webhooks.py`` into ``loopkit/data/github-webhooks.json.gz``
and ``github-webhook-samples.json.gz`` (MIT License, see ``loopkit/data/NOTICE``).
Each file is read once, on first use, never at ``import loopkit``.

An event is the ``X-GitHub-Event`` name (``pull_request``, ``push``,
``issues``, ...). A path is the chain of keys after ``trigger.payload``:
``trigger.payload.pull_request.head.sha`` is ``["pull_request", "head", "sha"]``
and ``trigger.payload.commits[0].id`` is ``["commits", 0, "id"]``. The caller
passes attribute and item lookups only: a call such as ``.upper()`` or a filter
ends the path before it.

- A string key names an object's key; an ``int`` indexes an array (any int,
  negative too). A string never indexes an array, an ``int`` never names a key.
- A path is valid when it exists in any action variant of the event (the
  schema has one definition per action; their keys are united).
- Below an object that allows any key (``additionalProperties``), any key
  exists, and so does anything below a value whose schema says nothing.
- Nothing exists below a leaf (a string, number, boolean or null).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["children", "has_path", "known_events", "sample_payload"]

_ANY_KEY = "*"
_ITEMS = "[]"


def _read(name: str) -> Any:
    # zlib and a plain path rather than gzip and importlib.resources: those two
    # imports cost 20 ms, more than reading the key trees (the package is
    # installed as files, never run from a zip).
    raw = Path(__file__).with_name("data").joinpath(name).read_bytes()
    return json.loads(zlib.decompress(raw, wbits=zlib.MAX_WBITS | 16))


class _Trees:
    """Every event's key tree; see scripts/vendor-webhooks.py for the format."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.nodes: list[dict[str, int]] = doc["nodes"]
        self.events: dict[str, dict[str, Any]] = doc["events"]


@cache
def _trees() -> _Trees:
    return _Trees(_read("github-webhooks.json.gz"))


@cache
def _samples() -> dict[str, dict[str, str]]:
    samples: dict[str, dict[str, str]] = _read("github-webhook-samples.json.gz")["samples"]
    return samples


@cache
def known_events() -> frozenset[str]:
    """Return the names of the webhook events whose payloads are known."""
    return frozenset(_trees().events)


def _node(event: str, path: Sequence[str | int]) -> dict[str, int] | None:
    """Return the key node at ``path`` (None when the path does not exist)."""
    data = _trees()
    index: int = data.events[event]["tree"]
    for key in path:
        node = data.nodes[index]
        found: int | None
        if isinstance(key, bool):
            return None
        if isinstance(key, int):
            found = node.get(_ITEMS)
        elif key in (_ANY_KEY, _ITEMS):
            found = node.get(_ANY_KEY)
        else:
            found = node.get(key, node.get(_ANY_KEY))
        if found is None:
            return None
        index = found
    return data.nodes[index]


def has_path(event: str, path: Sequence[str | int]) -> bool | None:
    """Return whether ``trigger.payload`` has ``path`` for ``event``; None for an unknown event."""
    if event not in _trees().events:
        return None
    return _node(event, path) is not None


def children(event: str, path: Sequence[str | int]) -> list[str]:
    """Return the keys named below ``path``, sorted, for a "did you mean".

    Empty for an unknown event or path, for a leaf, for an array (index it
    first) and where any key is allowed.
    """
    if event not in _trees().events:
        return []
    node = _node(event, path)
    return sorted(k for k in node if k not in (_ANY_KEY, _ITEMS)) if node else []


def sample_payload(event: str, action: str | None = None) -> dict[str, Any] | None:
    """Return a realistic payload for ``event`` (a fresh copy); None for an unknown event.

    It is a real payload GitHub delivered, with long arrays and strings
    trimmed; for the few events without a published example, one built from
    the schema. With ``action``, the example for that action; when there is
    none, the event's default example with its ``action`` set to ``action``.
    """
    entry = _trees().events.get(event)
    if entry is None:
        return None
    samples = _samples()[event]
    text = samples.get(entry["default"] if action is None else action)
    payload: dict[str, Any] = json.loads(text if text is not None else samples[entry["default"]])
    if text is None:
        payload["action"] = action
    return payload

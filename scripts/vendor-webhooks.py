#!/usr/bin/env python3
"""Vendor GitHub's webhook payload schemas and examples into loopkit/data/.

Downloads ``@octokit/webhooks-schemas`` and ``@octokit/webhooks-examples`` with
``npm pack`` into a temporary folder and writes loopkit/data/github-webhooks.json.gz
and loopkit/data/github-webhook-samples.json.gz, which loopkit/webhooks.py reads.
Both are committed: a wheel and CI need no npm. Rerun this script to upgrade
(it prints what it wrote, and on stderr the example keys the schema lacks):

    python scripts/vendor-webhooks.py [--version 7.6.1] [--check]

``--check`` writes nothing and exits 1 when a committed file differs from what
the packages produce (the output is deterministic: sorted trees, gzip mtime 0).

github-webhooks.json.gz holds, per event (the ``X-GitHub-Event`` name):

- ``tree``: the index of its key tree in ``nodes``, the union over the event's
  action variants (``pull_request$opened``, ``pull_request$closed``, ...) and
  the keys of its examples (a few are missing from the schema: the script
  prints them).
  A node is a dict of key -> node index; the key ``"*"`` means any other key
  (``additionalProperties``), ``"[]"`` the items of an array. ``nodes[0]`` is a
  leaf (nothing below) and ``nodes[1]`` is "anything below" (``{"*": 1, "[]": 1}``).
- ``actions``: the action names the schema defines, sorted.
- ``default``: the action of the sample given when none is asked for (``""``
  for an event without actions); ``synthesized``: whether its samples were
  built from the schema (GitHub published no example for the event).

and github-webhook-samples.json.gz, kept apart so that checking paths does not
parse 2 MB of examples, holds ``samples``: event -> action -> an example payload
as JSON text, trimmed: arrays to 3 items, strings to 400 characters.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "loopkit" / "data"
#: The key trees (read by every check of a payload path) and the samples (read by dry runs).
DESTS = (DATA / "github-webhooks.json.gz", DATA / "github-webhook-samples.json.gz")
NOTICE = ROOT / "loopkit" / "data" / "NOTICE"
SCHEMAS = "@octokit/webhooks-schemas"
EXAMPLES = "@octokit/webhooks-examples"
DEFAULT_VERSION = "7.6.1"

LEAF, ANY = 0, 1
MARKERS = ("*", "[]")
MAX_ITEMS = 3
MAX_STRING = 400
#: The action a sample stands for when none is asked for, first match wins.
PREFERRED_ACTIONS = ("opened", "created", "submitted", "completed", "published", "requested")

#: Keys a synthesized payload takes from a real one (of the first event, by name, that has it).
COMMON_PARTS = ("repository", "sender", "organization", "installation", "enterprise")

Tree = dict[str, Any] | str  # a dict of key -> Tree, or "any"


def npm_pack(spec: str, into: Path) -> tuple[Path, dict[str, Any]]:
    """Download and unpack one npm package; return its folder and package.json."""
    out = subprocess.run(
        ["npm", "pack", "--silent", spec], cwd=into, check=True, capture_output=True, text=True
    ).stdout.split()[-1]
    folder = into / out.removesuffix(".tgz")
    with tarfile.open(into / out) as tar:
        tar.extractall(folder, filter="data")
    package = folder / "package"
    return package, json.loads((package / "package.json").read_text())


# -- key trees ---------------------------------------------------------------


def union(a: Tree, b: Tree) -> Tree:
    if a == "any" or b == "any":
        return "any"
    assert isinstance(a, dict) and isinstance(b, dict)
    out = dict(a)
    for key, sub in b.items():
        out[key] = union(out[key], sub) if key in out else sub
    return out


class TreeBuilder:
    """Turn a JSON Schema into the keys a template may read below it."""

    def __init__(self, definitions: dict[str, Any]) -> None:
        self.definitions = definitions
        self.cache: dict[str, Tree] = {}

    def ref(self, ref: str) -> Tree:
        name = ref.rsplit("/", 1)[-1]
        if name not in self.cache:
            self.cache[name] = "any"  # a recursive reference reads as "anything below"
            self.cache[name] = self.build(self.definitions[name])
        return self.cache[name]

    def build(self, schema: Any) -> Tree:
        if schema is True or schema == {}:
            return "any"
        if schema is False:
            return {}
        parts: list[Tree] = []
        if "$ref" in schema:
            parts.append(self.ref(schema["$ref"]))
        for key in ("oneOf", "anyOf"):
            for sub in schema.get(key, ()):
                parts.append(self.build(sub))
        if "allOf" in schema:
            # An intersection: a part that allows anything does not widen the others.
            narrow = [t for t in (self.build(s) for s in schema["allOf"]) if t != "any"]
            parts.append(_union_all(narrow) if narrow else "any")
        combined = bool(parts)
        types = schema.get("type")
        types = [types] if isinstance(types, str) else list(types or ())
        own: Tree = {}
        if "properties" in schema or "additionalProperties" in schema:
            own = {k: self.build(v) for k, v in schema.get("properties", {}).items()}
            extra = schema.get("additionalProperties")
            if extra is True or isinstance(extra, dict):
                own["*"] = self.build(extra)
            elif extra is None and "properties" not in schema:
                own = "any"
        elif "object" in types and not combined:
            own = "any"  # an object with no declared keys holds any keys
        if "items" in schema:
            own = union(own, {"[]": self.build(schema["items"])})
        elif "array" in types and not combined:
            own = union(own, {"[]": "any"})
        declared = {"properties", "additionalProperties", "items", "enum", "const"} & schema.keys()
        if not types and not combined and not declared:
            own = "any"  # no type at all: JSON Schema allows anything
        return _union_all([*parts, own])


def shape(value: Any) -> Tree:
    """Return the key tree of one payload."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return {"[]": _union_all([shape(v) for v in value])}
    return {}


def added_paths(base: Tree, extra: Tree, path: tuple[str, ...] = ()) -> list[str]:
    """Return the paths ``extra`` has and ``base`` lacks (to print the schema's drift)."""
    if base == "any" or extra == "any" or not isinstance(extra, dict):
        return []
    assert isinstance(base, dict)
    out = []
    for key, sub in extra.items():
        if key in base:
            out += added_paths(base[key], sub, (*path, key))
        elif "*" in base:
            out += added_paths(base["*"], sub, (*path, key))
        else:
            out.append(".".join((*path, key)))
    return out


def _union_all(trees: list[Tree]) -> Tree:
    out: Tree = {}
    for tree in trees:
        out = union(out, tree)
    return out


class Interner:
    """Store identical subtrees once: a node is a dict of key -> node index."""

    def __init__(self) -> None:
        self.nodes: list[dict[str, int]] = [{}, {"*": ANY, "[]": ANY}]
        self.index: dict[str, int] = {"{}": LEAF}

    def add(self, tree: Tree) -> int:
        if tree == "any":
            return ANY
        assert isinstance(tree, dict)
        node = {key: self.add(tree[key]) for key in sorted(tree)}
        text = json.dumps(node, sort_keys=True)
        if text not in self.index:
            self.index[text] = len(self.nodes)
            self.nodes.append(node)
        return self.index[text]


# -- samples -----------------------------------------------------------------


def trim(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: trim(v) for k, v in value.items()}
    if isinstance(value, list):
        return [trim(v) for v in value[:MAX_ITEMS]]
    if isinstance(value, str) and len(value) > MAX_STRING:
        return value[:MAX_STRING] + "…"
    return value


class Synthesizer:
    """Build a plausible payload from a schema, for events GitHub's examples lack."""

    FORMATS = {"date-time": "2024-01-01T00:00:00Z", "uri": "https://github.com/octo-org/octo-repo"}

    def __init__(self, definitions: dict[str, Any]) -> None:
        self.definitions = definitions

    def build(self, schema: Any, name: str = "value") -> Any:
        if not isinstance(schema, dict):
            return None
        if "$ref" in schema:
            return self.build(self.definitions[schema["$ref"].rsplit("/", 1)[-1]], name)
        for key in ("oneOf", "anyOf"):
            if key in schema:
                options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
                return self.build(options[0], name)
        if "allOf" in schema:
            out: dict[str, Any] = {}
            for sub in schema["allOf"]:
                part = self.build(sub, name)
                if isinstance(part, dict):
                    out.update(part)
            return out
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return next((v for v in schema["enum"] if v is not None), None)
        types = schema.get("type")
        types = [types] if isinstance(types, str) else [t for t in types or () if t != "null"]
        kind = types[0] if types else ("object" if "properties" in schema else "null")
        if kind == "object":
            return {k: self.build(v, k) for k, v in schema.get("properties", {}).items()}
        if kind == "array":
            return [self.build(schema["items"], name)] if "items" in schema else []
        if kind == "string":
            return self.FORMATS.get(schema.get("format", ""), f"example {name}")
        if kind in ("integer", "number"):
            return 1
        if kind == "boolean":
            return False
        return None


# -- the file ----------------------------------------------------------------


def event_names(schema: dict[str, Any]) -> dict[str, str]:
    """Return event name -> its definition, from the schema's top-level ``oneOf``."""
    out = {}
    for item in schema["oneOf"]:
        name = item["$ref"].rsplit("/", 1)[-1]
        event = name.removesuffix("_event").removesuffix("$event")
        out[event] = name
    return out


def build(schemas_dir: Path, examples_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the key trees and the samples, each as the document its file holds."""
    schema = json.loads((schemas_dir / "schema.json").read_text())
    definitions = schema["definitions"]
    examples = json.loads((examples_dir / "api.github.com" / "index.json").read_text())
    # GitHub Enterprise Server examples fill in events github.com's examples lack.
    ghes = sorted(examples_dir.glob("ghes-*/index.json"), reverse=True)
    by_event: dict[str, list[dict[str, Any]]] = {e["name"]: e["examples"] for e in examples}
    for path in ghes:
        for entry in json.loads(path.read_text()):
            by_event.setdefault(entry["name"], entry["examples"])

    trees, synth, interner = TreeBuilder(definitions), Synthesizer(definitions), Interner()
    events: dict[str, Any] = {}
    all_samples: dict[str, dict[str, str]] = {}
    for event, definition in sorted(event_names(schema).items()):
        tree = trees.ref(definition)
        # GitHub's examples hold a few keys its schema lacks: they exist, so they count.
        seen = _union_all([shape(p) for p in by_event.get(event, ())])
        for path in added_paths(tree, seen):
            print(f"  {event}: {path} is in an example, not in the schema", file=sys.stderr)
        tree = union(tree, seen)
        actions = sorted(
            name.split("$", 1)[1]
            for name in definitions
            if name.startswith(event + "$") and name != event + "$event"
        )
        samples: dict[str, str] = {}
        for payload in by_event.get(event, ()):
            action = payload.get("action", "") if isinstance(payload.get("action"), str) else ""
            samples.setdefault(action, json.dumps(trim(payload), ensure_ascii=False))
        synthesized = not samples
        if synthesized:
            first = f"{event}${actions[0]}" if actions else definition
            payload = synth.build(definitions[first])
            # The parts every event shares come from a real delivery, not "example login".
            for key in COMMON_PARTS:
                if key in payload:
                    payload[key] = next(
                        p[key]
                        for name in sorted(by_event)
                        for p in by_event[name]
                        if isinstance(p.get(key), dict)
                    )
            samples[actions[0] if actions else ""] = json.dumps(trim(payload), ensure_ascii=False)
        default = "" if "" in samples else next((a for a in PREFERRED_ACTIONS if a in samples), "")
        events[event] = {
            "tree": interner.add(tree),
            "actions": actions,
            "default": default or min(samples),
            "synthesized": synthesized,
        }
        all_samples[event] = dict(sorted(samples.items()))
    return {"nodes": interner.nodes, "events": events}, {"samples": all_samples}


def render(data: dict[str, Any], schemas: dict[str, Any], examples: dict[str, Any]) -> bytes:
    doc = {
        "source": {
            p["name"]: {"version": p["version"], "license": p["license"]}
            for p in (schemas, examples)
        },
        "notice": "Derived from the npm packages above (MIT License), see loopkit/data/NOTICE.",
        **data,
    }
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    return gzip.compress(text.encode(), compresslevel=9, mtime=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--version", default=DEFAULT_VERSION, help="of both packages")
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        schemas_dir, schemas = npm_pack(f"{SCHEMAS}@{args.version}", Path(tmp))
        examples_dir, examples = npm_pack(f"{EXAMPLES}@{args.version}", Path(tmp))
        docs = build(schemas_dir, examples_dir)
    blobs = {dest: render(doc, schemas, examples) for dest, doc in zip(DESTS, docs, strict=True)}
    if args.check:
        stale = [d for d, blob in blobs.items() if not d.exists() or d.read_bytes() != blob]
        for dest in DESTS:
            state = "out of date" if dest in stale else "up to date"
            print(f"{dest.relative_to(ROOT)} is {state}")
        return 1 if stale else 0
    print(f"{SCHEMAS}@{schemas['version']} and {EXAMPLES}@{examples['version']}", end="")
    print(f" ({schemas['license']}, {examples['license']})")
    for dest, blob in blobs.items():
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(blob)
        print(f"-> {dest.relative_to(ROOT)} ({len(blob):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

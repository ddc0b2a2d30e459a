"""Pieces of the OpenAPI document that ninja cannot derive from a signature."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import ConfigDict

# The 200 of an operation that answers a file rather than JSON.
_MEDIA = {
    "zip": ("application/zip", "A zip of loops/<name>.yaml."),
    "yaml": ("application/yaml", "The loop's YAML."),
    "markdown": ("text/markdown", "The loop as a GitHub agentic workflow (gh-aw)."),
}
DOWNLOAD: dict[str, dict[str, Any]] = {
    kind: {
        "responses": {
            200: {
                "description": description,
                "content": {media: {"schema": {"type": "string", "format": "binary"}}},
            }
        }
    }
    for kind, (media, description) in _MEDIA.items()
}


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Return a pydantic JSON Schema with its ``$defs`` inlined where referenced.

    A schema placed by hand in ``openapi_extra`` keeps pydantic's
    ``#/$defs/...`` references, which point nowhere inside an OpenAPI document.
    """
    defs = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(copy.deepcopy(defs[ref.removeprefix("#/$defs/")]))
            return {k: resolve(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    result: dict[str, Any] = resolve(schema)
    return result


def exactly_one_of(*names: str) -> ConfigDict:
    """Document that exactly one of ``names`` is sent (the endpoint checks it).

    Use as a schema's ``model_config``; the fields are typed ``X | None = None``."""

    def extra(schema: dict[str, Any]) -> None:
        for name in names:  # sent means not null
            prop = schema["properties"][name]
            prop["anyOf"] = [t for t in prop.get("anyOf", []) if t.get("type") != "null"]
        schema["oneOf"] = [
            {"required": [name], "properties": {n: {"not": {}} for n in names if n != name}}
            for name in names
        ]

    return ConfigDict(json_schema_extra=extra)

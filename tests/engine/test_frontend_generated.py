"""The editor's loop types are generated from ``loopkit schema``: the committed schema is current."""

from __future__ import annotations

import json
from pathlib import Path

from loopkit import spec

GENERATED = Path(__file__).resolve().parents[2] / "frontend" / "src" / "generated"


def test_the_editors_copy_of_the_loop_schema_is_what_loopkit_schema_prints() -> None:
    committed = json.loads((GENERATED / "loop.schema.json").read_text(encoding="utf-8"))
    # On failure: regenerate with `cd frontend && LOOPKIT_PYTHON=../.venv/bin/python npm run gen:schema`
    # (frontend/src/generated/loop.ts follows at the next build, typecheck or test).
    assert committed == spec.json_schema(), (
        "frontend/src/generated/loop.schema.json is stale: run `npm run gen:schema` in frontend/"
    )

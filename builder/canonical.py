"""The canonical YAML of a loop, dumped block by block with a memo.

``loopkit.yamlio.dump`` is the definition of canonical YAML; PyYAML's
pure-Python emitter makes it the slowest part of a validate request (about
half of it at 100 steps). The editor validates on every pause in typing, and
between two requests usually one step changed. In block style with no line
folding (yamlio's ``width``) and no shared objects, the dump of a mapping is
the concatenation of the dumps of its keys, and the dump of the pipeline the
concatenation of the dumps of its steps; each block is memoised by its
content. tests/web/test_builder_changes.py holds this equal to
``yamlio.dump`` byte for byte.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from threading import Lock
from typing import Any

from loopkit import emitter, spec, yamlio

MEMO_SIZE = 4096
_memo: OrderedDict[str, str] = OrderedDict()
_lock = Lock()


def _emit(data: dict[str, Any]) -> str:
    # The options of loopkit.yamlio.dump, on plain data.
    return emitter.pyyaml_dump(data)


def _block(key: str, value: Any, *, item: bool = False) -> str:
    memo_key = json.dumps([key, item, value], separators=(",", ":"), ensure_ascii=False)
    with _lock:
        if memo_key in _memo:
            _memo.move_to_end(memo_key)
            return _memo[memo_key]
    # An item is dumped as a one-step pipeline without its "pipeline:\n" header.
    text = _emit({key: [value]})[len(key) + 2 :] if item else _emit({key: value})
    with _lock:
        _memo[memo_key] = text
        if len(_memo) > MEMO_SIZE:
            _memo.popitem(last=False)
    return text


def dump(loop: spec.Loop, data: dict[str, Any] | None = None) -> str:
    """Return ``loopkit.yamlio.dump(loop)``; ``data`` is ``yamlio.to_data(loop)`` if known."""
    data = yamlio.to_data(loop) if data is None else data
    parts: list[str] = []
    for key, value in data.items():
        if key == "pipeline" and isinstance(value, list) and value:
            parts.append("pipeline:\n")
            parts.extend(_block(key, step, item=True) for step in value)
        else:
            parts.append(_block(key, value))
    return "".join(parts)


def clear() -> None:
    """Forget every memoised block (benchmarks of the cold path)."""
    with _lock:
        _memo.clear()

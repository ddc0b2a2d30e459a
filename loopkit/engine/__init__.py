"""The loop engine: run a loop, emit typed events, stop cleanly.

Import what you need from here (names load lazily, so importing
``loopkit.engine.events`` alone stays cheap)::

    from loopkit.engine import run_loop, RunOptions, CancelToken
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "StaticTools": "agent",
    "ToolProvider": "agent",
    "ApprovalDecision": "approval",
    "ApprovalRequest": "approval",
    "Approver": "approval",
    "StaticApprover": "approval",
    "BudgetLimits": "budget",
    "BudgetTracker": "budget",
    "CancelToken": "cancellation",
    "EVENT_TYPES": "events",
    "Event": "events",
    "Tokens": "events",
    "Run": "runner",
    "RunOptions": "runner",
    "RunResult": "runner",
    "run_loop": "runner",
    "run_loop_sync": "runner",
    "Verdict": "verify",
    "parse_verdict": "verify",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'loopkit.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(f"loopkit.engine.{module}"), name)

"""Cancellation: ask a run to stop, from any thread, at its next safe point.

The engine checks the token before every model call, tool call, step and
round, and also cancels in-flight model calls when the token fires, so a
cancelled run stops quickly with status ``cancelled`` and its checkpoints
saved. The CLI fires it on SIGINT; the web app fires it from a request
(``token.cancel("by alice")``) while the run executes in a worker thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from loopkit.errors import Cancelled


class CancelToken:
    """A thread-safe, one-way "please stop" flag with callbacks."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self.reason: str = ""

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self, reason: str = "cancelled") -> None:
        """Fire the token (idempotent); callbacks run in the caller's thread."""
        with self._lock:
            if self._event.is_set():
                return
            self.reason = reason
            self._event.set()
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` when the token fires (now, if it already has); return an unsubscriber."""
        with self._lock:
            fired = self._event.is_set()
            if not fired:
                self._callbacks.append(callback)
        if fired:
            callback()

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe

    def raise_if_cancelled(self) -> None:
        """Raise ``Cancelled`` if the token has fired (a safe point)."""
        if self._event.is_set():
            raise Cancelled(self.reason or "cancelled")

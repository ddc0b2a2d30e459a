"""The run host: many runs of one worker process, as asyncio tasks on one event loop.

A Huey task (``runs.tasks.execute_run``) hands a run to its process's host:
``RunHost.execute`` takes a slot (at most ``LOOPKIT_RUN_HOST_CONCURRENCY``
runs per process; a full host makes the task wait, which is the queue's
back-pressure), claims the run and starts it on the host's event loop, then
returns: the Huey thread is free for the next task while the run waits on
its model calls. A run that reaches an undecided approval gate suspends and
leaves the host altogether (``runs.lifecycle.suspend``).

Threads of a host, whatever the number of runs (each holds at most one
database connection):

* ``loopkit-run-host``: the event loop. It never touches the ORM;
* ``loopkit-db-N`` (``LOOPKIT_RUN_HOST_DB_THREADS``, default 4): the loop's
  default executor, for the engine's store, the approver, claims and finishes;
* ``loopkit-events``: stores every run's events, batched (``EventWriter``);
* ``loopkit-heartbeat``: every half second one SELECT for all hosted runs
  (a cancel request reaches its run within a second; a run another worker
  took over, or finished elsewhere, is stopped here), and every
  ``LOOPKIT_RUN_HEARTBEAT_SECONDS`` one UPDATE stamping all of them alive.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.db import connection
from django.utils import timezone

from loopkit import secrets, tracing
from loopkit.engine.cancellation import CancelToken
from loopkit_web.db import give_back
from runs import conf, lifecycle
from runs.engine_adapter import DatabaseSink, EventWriter, Prepared, run_with_engine
from runs.models import ACTIVE, TERMINAL, Run, Status

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class Hosted:
    """One run on the host: its cancel token, and whether this process still owns it."""

    run: Run
    resume: bool
    token: CancelToken = field(default_factory=CancelToken)
    lost: threading.Event = field(default_factory=threading.Event)

    def owned(self) -> bool:
        return not self.lost.is_set()


class DatabaseThreads(ThreadPoolExecutor):
    """The host's database threads: each job gives its connection back when it ends
    (to the pool, on PostgreSQL), so idle threads hold no connection."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        def job() -> T:
            try:
                return fn(*args, **kwargs)
            finally:
                give_back()

        return super().submit(job)


class RunHost:
    """Execute many runs of one process concurrently; see the module's docstring."""

    def __init__(self, limit: int | None = None, db_threads: int | None = None) -> None:
        self.limit = limit or conf.host_concurrency()
        self.ident = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"[:200]
        self.slots = threading.BoundedSemaphore(self.limit)
        self.runs: dict[int, Hosted] = {}
        self._lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.executor = DatabaseThreads(db_threads or conf.host_db_threads(), "loopkit-db")
        self.loop.set_default_executor(self.executor)
        self.writer = EventWriter()
        self._loop_thread = threading.Thread(
            target=self.loop.run_forever, name="loopkit-run-host", daemon=True
        )
        self._loop_thread.start()
        self._stopped = threading.Event()
        self._beat_thread = threading.Thread(
            target=self._beat, name="loopkit-heartbeat", daemon=True
        )
        self._beat_thread.start()

    # ── Taking runs ─────────────────────────────────────────────────────

    def in_flight(self) -> int:
        with self._lock:
            return len(self.runs)

    def execute(self, run_id: int, attempt: int | None = None) -> Future[str] | str:
        """Claim run *run_id* and start it here; return its future, "defer" or "skipped".

        Blocks while the host is full. *attempt* is a recovered run's attempt.
        """
        self.slots.acquire()
        try:
            claimed = lifecycle.claim(run_id, attempt, self.ident)
        except BaseException:
            self.slots.release()
            raise
        if not isinstance(claimed, lifecycle.Claim):
            self.slots.release()
            return claimed or "skipped"
        hosted = Hosted(claimed.run, claimed.resume)
        with self._lock:
            self.runs[run_id] = hosted
        future = asyncio.run_coroutine_threadsafe(self._run(hosted), self.loop)
        future.add_done_callback(lambda _: self._release(run_id))
        return future

    def _release(self, run_id: int) -> None:
        with self._lock:
            self.runs.pop(run_id, None)
        self.slots.release()

    async def _db(self, fn: Callable[[], Any]) -> Any:
        return await self.loop.run_in_executor(None, fn)

    async def _run(self, hosted: Hosted) -> str:
        run = hosted.run
        crashed = False
        resume_at: float | None = None
        try:
            prepared = await self._db(lambda: Prepared(run, hosted.resume))
            sink = DatabaseSink(run.pk, self.writer, hosted.owned, prepared.stored)
            result = await run_with_engine(
                run, hosted.token, resume=hosted.resume, sink=sink, prepared=prepared
            )
            status, error, resume_at = result.status, result.error or "", result.resume_at
        except Exception as exc:  # our bug or the environment's: the run fails, with the reason
            logger.exception("run %s crashed", run.pk)
            status, error, crashed = Status.FAILED, f"{type(exc).__name__}: {exc}", True
            error = secrets.redact(error)
        # Every event of the run is stored before its status says it is over.
        await asyncio.wrap_future(self.writer.flush())
        if not hosted.owned():
            return "lost"  # another worker holds it now: its events and status are theirs
        if status == "suspended":
            await self._db(lambda: lifecycle.suspend(run, self.ident, resume_at))
            return "suspended"
        await self._db(
            lambda: lifecycle.finish(run, status, error, announce=crashed, worker=self.ident)
        )
        return status

    # ── Heartbeat ───────────────────────────────────────────────────────

    def _beat(self) -> None:
        """Watch all hosted runs with one SELECT; stamp them alive with one UPDATE."""
        interval = conf.heartbeat_seconds()
        last_beat = 0.0
        while not self._stopped.wait(min(interval, 0.5)):
            with self._lock:
                hosted = dict(self.runs)
            if not hosted:
                continue
            try:
                rows = Run.objects.filter(pk__in=list(hosted)).values_list(
                    "pk", "cancel_requested", "status", "worker"
                )
                seen = {pk: (cancel, status, worker) for pk, cancel, status, worker in rows}
                for pk, run in hosted.items():
                    cancel, status, worker = seen.get(pk, (False, Status.CANCELLED, ""))
                    if status in TERMINAL:
                        run.token.cancel("the run was finished elsewhere")
                    elif worker not in (self.ident, lifecycle.SUSPENDED):
                        # Recovery gave the run to another worker (this one looked dead):
                        # stop, and leave the run's events and status to the new owner.
                        run.lost.set()
                        run.token.cancel("another worker took this run over")
                    elif cancel and not run.token.cancelled:
                        run.token.cancel("cancelled by a user")
                now = timezone.now()
                if now.timestamp() - last_beat >= interval:
                    Run.objects.filter(
                        pk__in=list(hosted), status__in=ACTIVE, worker=self.ident
                    ).update(heartbeat_at=now)
                    last_beat = now.timestamp()
            except Exception:
                logger.exception("the heartbeat of %d runs failed", len(hosted))
            finally:
                give_back()
        connection.close()

    def close(self) -> None:
        """Stop the host's threads (runs still on it are recovered by another worker)."""
        self._stopped.set()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._loop_thread.join(timeout=5)
        self.writer.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        tracing.flush()


_host: RunHost | None = None
_host_lock = threading.Lock()


def host() -> RunHost:
    """Return this process's run host, started on first use."""
    global _host
    with _host_lock:
        if _host is None or _host.ident.split(":")[1] != str(os.getpid()):
            _host = RunHost()
        return _host

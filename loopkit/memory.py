"""State stores: run history, per-run step checkpoints and key-value memory.

``Store`` is the contract the engine uses; it is small on purpose so that the
web app can add an ORM-backed store. Implementations here:

- ``FileStore`` (``store: filesystem``, default path ``.loopkit/state``): one
  JSON file per run and per checkpoint, each written atomically (temporary
  file, fsync, rename), so a crash mid-write leaves the previous version.
- ``SqliteStore`` (``store: database``): one SQLite file (WAL mode).
- ``InMemoryStore`` (``store: memory``): dicts, gone when the process ends.

All methods are synchronous and quick. A store whose methods must not run in
the event loop's thread (the Django ORM refuses that) sets ``offload = True``
and the engine then calls it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
import threading
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from loopkit import spec
from loopkit.errors import ConfigError


@dataclass
class RunRecord:
    """One run's history entry. ``status`` is ``running``, ``waiting_for_approval``
    or a final status; ``seq`` is the last event's sequence number (a resumed run
    continues from it); ``tokens`` is ``Tokens.as_dict()``; ``cost`` is ``None``
    when some price was unknown; ``requests`` counts model calls, ``iterations``
    passes of the loop."""

    id: str
    loop: str
    status: str = "running"
    started_at: float = 0.0
    finished_at: float | None = None
    duration_ms: float = 0.0
    tokens: dict[str, int] = field(default_factory=dict)
    cost: float | None = 0.0
    requests: int = 0
    iterations: int = 0
    steps: int = 0
    rounds: int = 0
    dry_run: bool = False
    inputs: dict[str, Any] = field(default_factory=dict)
    payload: Any = None
    config: str | None = None
    error: str | None = None
    limit: str | None = None
    seq: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Checkpoint:
    """A finished unit of work in a run: an agent step of a round (key
    ``r1:pipeline[0].parallel[2]``) or a checker round (``r1:verify``).
    ``data`` holds extras (a verdict, a branch taken); ``seq`` is the run's last
    event number when it was saved (a resume numbers its events after it)."""

    key: str
    label: str | None = None
    output: str = ""
    tokens: dict[str, int] = field(default_factory=dict)
    cost: float | None = 0.0
    duration_ms: float = 0.0
    requests: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    seq: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "key": self.key,
            "label": self.label,
            "output": self.output,
            "tokens": dict(self.tokens),
            "cost": self.cost,
            "duration_ms": self.duration_ms,
            "requests": self.requests,
            "data": _copy(self.data) if self.data else {},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Checkpoint:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


class Store(ABC):
    """Where runs, checkpoints and key-value memory live.

    Contract: ``save_run`` inserts or replaces a run by id; ``list_runs``
    returns newest first (by ``started_at``), optionally for one loop;
    ``save_checkpoint`` inserts or replaces by ``(run_id, key)`` and must be
    durable when it returns (a resume relies on it); ``checkpoints`` returns
    every checkpoint of a run by key. Memory is per namespace (the loop's
    ``memory.namespace``, else its name): JSON values by string key.
    Values and records passed in are not kept by reference.
    """

    #: True when the methods must run outside the event loop thread (an ORM).
    offload: bool = False

    @abstractmethod
    def save_run(self, run: RunRecord) -> None: ...

    @abstractmethod
    def get_run(self, run_id: str) -> RunRecord | None: ...

    @abstractmethod
    def list_runs(self, loop: str | None = None, limit: int = 20) -> list[RunRecord]: ...

    @abstractmethod
    def save_checkpoint(self, run_id: str, checkpoint: Checkpoint) -> None: ...

    @abstractmethod
    def checkpoints(self, run_id: str) -> dict[str, Checkpoint]: ...

    @abstractmethod
    def get_memory(self, namespace: str) -> dict[str, Any]: ...

    @abstractmethod
    def set_memory(self, namespace: str, key: str, value: Any) -> None: ...

    def update_memory(self, namespace: str, values: dict[str, Any]) -> None:
        """Set several keys at once (a run's outputs); stores override it to write once."""
        for key, value in values.items():
            self.set_memory(namespace, key, value)

    def close(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release resources (connections); the default does nothing."""


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


class InMemoryStore(Store):
    """Everything in dicts (tests, ``store: memory``)."""

    def __init__(self) -> None:
        self.runs: dict[str, dict[str, Any]] = {}
        self._checkpoints: dict[str, dict[str, Checkpoint]] = {}
        self.memory: dict[str, dict[str, Any]] = {}

    def save_run(self, run: RunRecord) -> None:
        self.runs[run.id] = _copy(run.as_dict())

    def get_run(self, run_id: str) -> RunRecord | None:
        data = self.runs.get(run_id)
        return RunRecord.from_dict(_copy(data)) if data else None

    def list_runs(self, loop: str | None = None, limit: int = 20) -> list[RunRecord]:
        rows = [r for r in self.runs.values() if loop is None or r["loop"] == loop]
        rows.sort(key=lambda r: r["started_at"], reverse=True)
        return [RunRecord.from_dict(_copy(r)) for r in rows[:limit]]

    def save_checkpoint(self, run_id: str, checkpoint: Checkpoint) -> None:
        # The engine never changes a checkpoint it saved: keep it, copy on the way out.
        self._checkpoints.setdefault(run_id, {})[checkpoint.key] = checkpoint

    def checkpoints(self, run_id: str) -> dict[str, Checkpoint]:
        return {
            k: Checkpoint.from_dict(v.as_dict())
            for k, v in self._checkpoints.get(run_id, {}).items()
        }

    def get_memory(self, namespace: str) -> dict[str, Any]:
        return dict(_copy(self.memory.get(namespace, {})))

    def set_memory(self, namespace: str, key: str, value: Any) -> None:
        self.memory.setdefault(namespace, {})[key] = _copy(value)

    def update_memory(self, namespace: str, values: dict[str, Any]) -> None:
        self.memory.setdefault(namespace, {}).update(_copy(values))


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


class FileStore(Store):
    """JSON files under ``root``: ``runs/<id>/run.json``, ``runs/<id>/steps/<key>.json``,
    ``memory/<namespace>.json``; every write is atomic."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / quote(run_id, safe="")

    def save_run(self, run: RunRecord) -> None:
        atomic_write(self._run_dir(run.id) / "run.json", json.dumps(run.as_dict()).encode())

    def get_run(self, run_id: str) -> RunRecord | None:
        data = _read_json(self._run_dir(run_id) / "run.json")
        return RunRecord.from_dict(data) if isinstance(data, dict) else None

    def list_runs(self, loop: str | None = None, limit: int = 20) -> list[RunRecord]:
        runs_dir = self.root / "runs"
        if not runs_dir.is_dir():
            return []
        records = []
        for folder in runs_dir.iterdir():
            data = _read_json(folder / "run.json")
            if isinstance(data, dict) and (loop is None or data.get("loop") == loop):
                records.append(RunRecord.from_dict(data))
        records.sort(key=lambda r: r.started_at, reverse=True)
        return records[:limit]

    def save_checkpoint(self, run_id: str, checkpoint: Checkpoint) -> None:
        path = self._run_dir(run_id) / "steps" / f"{quote(checkpoint.key, safe='')}.json"
        atomic_write(path, json.dumps(checkpoint.as_dict()).encode())

    def checkpoints(self, run_id: str) -> dict[str, Checkpoint]:
        folder = self._run_dir(run_id) / "steps"
        out: dict[str, Checkpoint] = {}
        if folder.is_dir():
            for path in folder.glob("*.json"):
                data = _read_json(path)
                if isinstance(data, dict):
                    checkpoint = Checkpoint.from_dict(data)
                    out[checkpoint.key] = checkpoint
        return out

    def _memory_file(self, namespace: str) -> Path:
        return self.root / "memory" / f"{quote(namespace, safe='')}.json"

    def get_memory(self, namespace: str) -> dict[str, Any]:
        data = _read_json(self._memory_file(namespace))
        return data if isinstance(data, dict) else {}

    def set_memory(self, namespace: str, key: str, value: Any) -> None:
        self.update_memory(namespace, {key: value})

    def update_memory(self, namespace: str, values: dict[str, Any]) -> None:
        data = self.get_memory(namespace)
        data.update(_copy(values))
        atomic_write(self._memory_file(namespace), json.dumps(data).encode())


class SqliteStore(Store):
    """One SQLite database file (WAL journal, a transaction per write)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS runs (
                id TEXT PRIMARY KEY, loop TEXT NOT NULL, started_at REAL NOT NULL, data TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS runs_loop ON runs (loop, started_at);
            CREATE TABLE IF NOT EXISTS checkpoints (
                run_id TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL,
                PRIMARY KEY (run_id, key));
            CREATE TABLE IF NOT EXISTS memory (
                namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                PRIMARY KEY (namespace, key));
            """
        )

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        with self._lock:
            self._db.execute(sql, params)

    def _read(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def save_run(self, run: RunRecord) -> None:
        self._write(
            "INSERT OR REPLACE INTO runs (id, loop, started_at, data) VALUES (?, ?, ?, ?)",
            (run.id, run.loop, run.started_at, json.dumps(run.as_dict())),
        )

    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._read("SELECT data FROM runs WHERE id = ?", (run_id,))
        return RunRecord.from_dict(json.loads(rows[0][0])) if rows else None

    def list_runs(self, loop: str | None = None, limit: int = 20) -> list[RunRecord]:
        if loop is None:
            rows = self._read("SELECT data FROM runs ORDER BY started_at DESC LIMIT ?", (limit,))
        else:
            rows = self._read(
                "SELECT data FROM runs WHERE loop = ? ORDER BY started_at DESC LIMIT ?",
                (loop, limit),
            )
        return [RunRecord.from_dict(json.loads(r[0])) for r in rows]

    def save_checkpoint(self, run_id: str, checkpoint: Checkpoint) -> None:
        self._write(
            "INSERT OR REPLACE INTO checkpoints (run_id, key, data) VALUES (?, ?, ?)",
            (run_id, checkpoint.key, json.dumps(checkpoint.as_dict())),
        )

    def checkpoints(self, run_id: str) -> dict[str, Checkpoint]:
        rows = self._read("SELECT key, data FROM checkpoints WHERE run_id = ?", (run_id,))
        return {key: Checkpoint.from_dict(json.loads(data)) for key, data in rows}

    def get_memory(self, namespace: str) -> dict[str, Any]:
        rows = self._read("SELECT key, value FROM memory WHERE namespace = ?", (namespace,))
        return {key: json.loads(value) for key, value in rows}

    def set_memory(self, namespace: str, key: str, value: Any) -> None:
        self.update_memory(namespace, {key: value})

    def update_memory(self, namespace: str, values: dict[str, Any]) -> None:
        rows = [(namespace, key, json.dumps(value)) for key, value in values.items()]
        with self._lock, self._db:  # one transaction
            self._db.executemany(
                "INSERT OR REPLACE INTO memory (namespace, key, value) VALUES (?, ?, ?)", rows
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_store(memory: spec.Memory | None, root: str | Path) -> Store:
    """Return the store a loop's ``memory:`` asks for; relative paths are from ``root``."""
    root = Path(root)
    kind = memory.effective_store if memory else "filesystem"
    if kind == "memory":
        return InMemoryStore()
    path = root / ((memory.path if memory else None) or spec.DEFAULT_MEMORY_PATH)
    if kind == "filesystem":
        return FileStore(path)
    url = memory.url if memory else None
    if url is None:
        return SqliteStore(path / "loopkit.sqlite3")
    if url.startswith("sqlite:///"):
        target = Path(url[len("sqlite:///") :])
        return SqliteStore(target if target.is_absolute() else root / target)
    raise ConfigError(
        f"memory url '{url}' is not supported by the command-line engine "
        "(use 'sqlite:///path/to/file.sqlite3'; the web app stores runs in its own database)"
    )

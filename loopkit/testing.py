"""Loop tests: a test file names a loop, its cassette and what must hold; ``replay`` runs it.

A test file (``tests/pr-review.test.yaml``)::

    loop: pr-review                    # a loop name, or a path from this file
    cassette: pr-review.cassette.yaml  # default: <this file's stem>.cassette.yaml
    expect:
      status: succeeded
      verification: {passed: true, rounds: 1}
      outputs:
        Bug Review: {contains: "no bugs"}
      maxTokens: 20000
      maxCostUsd: 0.05
      steps: {taken: [Post Review], skipped: []}

``replay(path)`` runs the loop against its cassette (``loopkit.replay``: no
network, no cost) and returns a ``TestResult`` whose ``failures`` each name
where to look: the test file's line of the expectation that failed, or the
loop file's line of the step whose request is not in the cassette.
``loopkit test`` and the web app call it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopkit import yamlio
from loopkit.cassette import CASSETTE_SUFFIX, TEST_SUFFIX, Cassette, load, recorded_defaults
from loopkit.errors import ConfigError, SpecError
from loopkit.testfile import Failure, TestSpec, check, load_test, problem_at

# ── Results ──────────────────────────────────────────────────────────────


@dataclass
class TestResult:
    """How one test went. ``events`` are the replayed run's events as JSON data."""

    __test__ = False  # not a pytest class

    name: str
    file: str
    loop: str = ""
    cassette: str = ""
    failures: list[Failure] = field(default_factory=list)
    status: str | None = None
    rounds: int = 0
    verification: str | None = None
    replayed: int = 0
    recorded: int = 0
    duration_s: float = 0.0
    outputs: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    #: The test file, cassette or loop could not be read (``failures`` say why).
    broken: bool = False
    #: ``--record-missing`` wrote the cassette again.
    updated: bool = False

    @property
    def passed(self) -> bool:
        return not self.failures


def shown_path(path: Path) -> str:
    """Return ``path`` relative to the working folder when it is under it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


# ── Replay ───────────────────────────────────────────────────────────────


def replay(test_file: str | Path, *, record_missing: bool = False) -> TestResult:
    """Run one test file against its cassette; return its result (never raises for the
    test's own problems: an unreadable file is a ``broken`` result).

    From code that already runs an event loop, await ``areplay`` instead.
    """
    return asyncio.run(areplay(test_file, record_missing=record_missing))


async def areplay(test_file: str | Path, *, record_missing: bool = False) -> TestResult:
    """``replay`` for async callers (the web app)."""
    path = Path(test_file)
    shown = shown_path(path)
    name = path.name.removesuffix(TEST_SUFFIX) if path.name.endswith(TEST_SUFFIX) else path.stem
    started = time.perf_counter()
    result = TestResult(name=name, file=shown)
    try:
        test, doc = load_test(path, shown)
        result.name = test.name or name
        await _run(path, test, doc, result, record_missing)
    except ConfigError as exc:  # a provider entry or a secret --record-missing needs
        result.broken = True
        result.failures = [Failure(str(exc), result.file, kind="error")]
    except SpecError as exc:
        result.broken = True
        result.failures = [
            Failure(
                p.message
                + (f" ({p.path})" if p.path else "")
                + (f" Hint: {p.hint}" if p.hint else ""),
                p.file,
                p.line,
                p.column,
                kind="error",
            )
            for p in exc.problems
        ]
    result.duration_s = time.perf_counter() - started
    return result


async def _run(
    path: Path, test: TestSpec, doc: yamlio.Document, result: TestResult, record_missing: bool
) -> None:
    from loopkit.connectors.provider import ConnectorTools
    from loopkit.engine.runner import RunOptions, run_loop
    from loopkit.memory import InMemoryStore
    from loopkit.project import ProjectContext, find_project
    from loopkit.replay import ReplayApprover, ReplayLLM, ReplayToolbox, Session
    from loopkit.sinks import ListSink

    base = path.resolve().parent
    target = test.loop
    if target.endswith((".yaml", ".yml")):
        loop_file = (base / target).resolve()
        project = find_project(loop_file.parent)
        if project.file is None:  # a bare loops/ folder: its parent is the project
            folder = loop_file.parent
            project = ProjectContext(root=folder.parent if folder.name == "loops" else folder)
        if not loop_file.is_file():
            raise SpecError([problem_at(doc, ("loop",), f"no loop file {loop_file}")])
        target = str(loop_file)
    else:
        project = find_project(base)
    loop, loop_path = project.locate(target)
    result.loop = loop.name
    if test.cassette is not None:
        cassette_path = base / test.cassette
    else:
        cassette_path = path.with_name(path.name.removesuffix(TEST_SUFFIX) + CASSETTE_SUFFIX)
    result.cassette = shown_path(cassette_path)
    if not cassette_path.is_file() and record_missing:
        defaults = project.project.defaults
        cassette = Cassette(
            loop=loop.name, defaults=recorded_defaults(defaults.model if defaults else None)
        )
    else:
        cassette = load(cassette_path, result.cassette)

    session = Session(cassette)
    if record_missing:
        from loopkit.connectors import Toolbox
        from loopkit.llm import LiteLLMProvider
        from loopkit.providers import from_project

        providers = from_project(project.project.providers) if project.project.providers else None
        session.live = LiteLLMProvider(providers=providers)
        session.live_toolbox = Toolbox.for_loop(loop, project.project, root=project.root)
    store = InMemoryStore()
    namespace = (loop.memory.namespace if loop.memory else None) or loop.name
    if cassette.memory:
        store.update_memory(namespace, cassette.memory)
    sink = ListSink()
    try:
        config = str(loop_path.resolve().relative_to(project.root))
    except ValueError:
        config = str(loop_path)
    options = RunOptions(
        inputs=dict(cassette.inputs),
        payload=cassette.payload,
        project_model=cassette.defaults.get("model"),
        checker_model=cassette.defaults.get("checkerModel"),
        config_path=config,
        retry_base_delay=0.0,
        retry_max_delay=0.0,
        checkpoint=False,
        stream_output=False,
    )
    tools = ConnectorTools(loop, project.project, root=project.root, toolbox=ReplayToolbox(session))
    outcome = await run_loop(
        loop,
        ReplayLLM(session),
        sinks=[sink],
        store=store,
        approver=ReplayApprover(session),
        tool_provider=tools,
        options=options,
        project=project.project,
    )
    result.status = outcome.status
    result.rounds = outcome.rounds
    result.verification = outcome.verification
    result.outputs = dict(outcome.outputs)
    result.replayed = session.replayed
    result.recorded = len(session.new_calls) + len(session.new_tools)
    result.events = [e.as_dict() for e in sink.events]

    shown_loop = shown_path(loop_path)
    loop_doc = _loop_doc(loop_path, shown_loop)
    for miss in session.misses:
        line, column = _step_position(loop, loop_doc, miss.step)
        result.failures.append(
            Failure(miss.message, shown_loop, line, column, diff=miss.diff, kind="miss")
        )
    if session.misses:
        return  # the run stopped at the miss: its status says nothing about the loop
    result.failures += check(test, doc, outcome, result.events)
    if record_missing and session.changed:  # paid for: kept even if an expectation failed
        session.updated().save(cassette_path)
        result.updated = True


def _loop_doc(path: Path, shown: str) -> yamlio.Document | None:
    try:
        return yamlio.parse(path.read_bytes(), shown)
    except (OSError, SpecError):
        return None


def _step_position(
    loop: Any, doc: yamlio.Document | None, step: str | None
) -> tuple[int | None, int | None]:
    """Return the loop file's ``line, column`` of the step (or checker) named ``step``."""
    from loopkit import spec

    if doc is None or not step:
        return None, None
    where: tuple[str | int, ...] | None = None
    for path, node in spec.iter_loop_steps(loop):
        if getattr(node, "label", None) == step or path == step:
            where = yamlio.parse_path(path)
            prompt = (*where, "prompt")
            if doc.position(prompt) is not None and prompt in doc.values:
                where = prompt
            break
    if where is None and step in (loop.subagents or {}):
        where = ("subagents", step, "prompt")
    if where is None and loop.verify is not None and step in loop.verify.checkers:
        where = ("verify", "checker")
    if where is None:
        return None, None
    pos = doc.position(where)
    return pos if pos else (None, None)


# ── Finding tests ────────────────────────────────────────────────────────

_SKIPPED_DIRS = frozenset({".git", ".venv", "venv", "node_modules", "__pycache__", ".loopkit"})


def discover(paths: Iterable[Path]) -> list[Path]:
    """Return the test files of ``paths`` (files as given; folders searched for ``*.test.yaml``)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            for candidate in sorted(path.rglob(f"*{TEST_SUFFIX}")):
                if not _SKIPPED_DIRS.intersection(candidate.relative_to(path).parts[:-1]):
                    found.append(candidate)
        else:
            found.append(path)
    return list(dict.fromkeys(found))

"""Checker calibration: how often does a loop's checker agree with people?

``loopkit calibrate LOOP --labels FILE`` runs the loop's checker(s), as a run's
first verification round does, over examples a person has judged, and counts
agreement, false passes (the checker passed work the person failed: the
dangerous kind) and false fails. This module holds:

- the labels file (``load_labels``): JSON Lines or YAML, one example each,
  with the makers' outputs, optional inputs / trigger payload / memory for
  rendering the prompts, and the human verdict; every mistake is reported
  at ``file:line``;
- the calibration itself (``calibrate``): one checker round per example, a
  few at a time, each on a ``Run`` of its own with the example's context;
- the record kept in the project state (``save_record``; a JSON file per
  loop under ``<state dir>/calibration/``) and what the LRS shows of it
  (``last_calibration``), with the loop's content hash to tell a stale one.

Importing it is cheap (``loopkit validate`` reads the records): the engine,
asyncio and the rest are imported by the functions that need them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopkit import spec
from loopkit.errors import Problem, SpecError

if TYPE_CHECKING:
    from loopkit.engine.agent import ToolProvider
    from loopkit.engine.verify import Verdict
    from loopkit.llm import LLM
    from loopkit.lrs import Calibration
    from loopkit.project import ProjectContext

#: The keys an example may have.
EXAMPLE_KEYS = ("id", "output", "outputs", "inputs", "payload", "memory", "pass", "issues", "note")
#: Suffixes read as JSON Lines (anything else is YAML, JSON included).
JSONL_SUFFIXES = (".jsonl", ".ndjson")
#: The record's format version.
RECORD_VERSION = 1
#: Checker calls in flight at once, unless told otherwise.
DEFAULT_CONCURRENCY = 4


# ── The labels file ──────────────────────────────────────────────────────


@dataclass
class Example:
    """One labelled example: the makers' outputs and a person's verdict on them."""

    number: int
    id: str
    outputs: dict[str, Any]
    passed: bool
    line: int | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    payload: Any = None
    memory: dict[str, Any] = field(default_factory=dict)
    issues: list[str] = field(default_factory=list)
    note: str | None = None


@dataclass
class _Raw:
    """An example as read, with where it and its keys are."""

    data: Any
    number: int
    line: int | None
    column: int | None = None
    keys: dict[str, tuple[int, int]] = field(default_factory=dict)


def load_labels(path: Path, loop: spec.Loop, shown: str | None = None) -> list[Example]:
    """Read and check the labels file at ``path`` for ``loop``; raise ``SpecError``.

    Every problem is reported at once, each at ``file:line`` (and column in
    YAML), as ``loopkit validate`` reports a loop file's.
    """
    shown = shown or str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SpecError(
            [Problem(f"cannot read the labels file: {exc.strerror}", file=shown, code="io")]
        ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(
            [
                Problem(
                    f"the labels file is not UTF-8 text ({exc.reason} at byte {exc.start})",
                    file=shown,
                    code="encoding",
                )
            ]
        ) from None
    raws = _jsonl(text, shown) if _is_jsonl(path, text) else _yaml(text, shown)
    problems: list[Problem] = []
    examples: list[Example] = []
    seen: dict[str, int] = {}
    for raw in raws:
        example = _example(raw, loop, shown, problems)
        if example is None:
            continue
        if example.id in seen:
            problems.append(
                _problem(
                    raw,
                    shown,
                    f"example id '{example.id}' is already used by example {seen[example.id]}",
                    "id",
                    code="duplicate_example",
                )
            )
            continue
        seen[example.id] = example.number
        examples.append(example)
    if not raws and not problems:
        problems.append(
            Problem(
                "the labels file holds no examples",
                file=shown,
                code="no_examples",
                hint="write one example per line (JSON Lines) or a YAML list of examples",
            )
        )
    if problems:
        raise SpecError(problems)
    return examples


def _is_jsonl(path: Path, text: str) -> bool:
    if path.suffix.lower() in JSONL_SUFFIXES:
        return True
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        return False
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return bool(lines) and all(line.startswith("{") for line in lines)


def _jsonl(text: str, shown: str) -> list[_Raw]:
    raws: list[_Raw] = []
    problems: list[Problem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            message = getattr(exc, "msg", str(exc))
            column = getattr(exc, "colno", None)
            problems.append(
                Problem(
                    f"this line is not JSON: {message}",
                    file=shown,
                    line=number,
                    column=column,
                    code="json_syntax",
                    hint="JSON Lines: one whole JSON object per line",
                )
            )
            continue
        raws.append(_Raw(value, len(raws) + len(problems) + 1, number))
    if problems:
        raise SpecError(problems)
    return raws


def _yaml(text: str, shown: str) -> list[_Raw]:
    import yaml

    loader_class: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_class(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            raise SpecError(
                [
                    Problem(
                        f"YAML error: {exc.problem or exc}",
                        file=shown,
                        line=mark.line + 1 if mark else None,
                        column=mark.column + 1 if mark else None,
                        code="yaml_syntax",
                    )
                ]
            ) from None
        except yaml.YAMLError as exc:
            raise SpecError(
                [Problem(f"YAML error: {exc}", file=shown, code="yaml_syntax")]
            ) from None
        if node is None:
            return []
        items = _example_nodes(node, shown)
        raws = []
        for number, item in enumerate(items, start=1):
            line, column = item.start_mark.line + 1, item.start_mark.column + 1
            keys: dict[str, tuple[int, int]] = {}
            if isinstance(item, yaml.MappingNode):
                for key_node, _ in item.value:
                    name = str(key_node.value)
                    if name in keys:
                        raise SpecError(
                            [
                                Problem(
                                    f"example {number}: the key '{name}' is written twice",
                                    file=shown,
                                    line=key_node.start_mark.line + 1,
                                    column=key_node.start_mark.column + 1,
                                    code="duplicate_key",
                                )
                            ]
                        )
                    keys[name] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            try:
                value = loader.construct_object(item, deep=True)
            except yaml.YAMLError as exc:
                raise SpecError(
                    [Problem(f"YAML error: {exc}", file=shown, line=line, code="yaml_syntax")]
                ) from None
            raws.append(_Raw(value, number, line, column, keys))
        return raws
    finally:
        loader.dispose()


def _example_nodes(node: Any, shown: str) -> list[Any]:
    """Return the nodes of the examples: a top-level list, or the list under ``examples:``."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        for key_node, _ in node.value:
            if key_node.value != "examples":
                raise SpecError(
                    [
                        Problem(
                            f"unknown key '{key_node.value}': a labels file is a list of "
                            "examples, or a mapping with one key, 'examples'",
                            file=shown,
                            line=key_node.start_mark.line + 1,
                            column=key_node.start_mark.column + 1,
                            code="unknown_key",
                        )
                    ]
                )
        found = [v for k, v in node.value if k.value == "examples"]
        node = found[0] if found else None
        if node is None:
            return []
    if not isinstance(node, yaml.SequenceNode):
        raise SpecError(
            [
                Problem(
                    "a labels file is a list of examples (or 'examples:' holding one)",
                    file=shown,
                    line=node.start_mark.line + 1,
                    column=node.start_mark.column + 1,
                    code="not_a_list",
                )
            ]
        )
    return list(node.value)


def _problem(
    raw: _Raw,
    shown: str,
    message: str,
    key: str | None = None,
    *,
    hint: str | None = None,
    code: str = "invalid_example",
) -> Problem:
    line, column = raw.line, raw.column
    if key is not None and key in raw.keys:
        line, column = raw.keys[key]
    return Problem(
        f"example {raw.number}: {message}",
        path=key or "",
        file=shown,
        line=line,
        column=column,
        code=code,
        hint=hint,
    )


def _did_you_mean(name: str, names: list[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else None


def step_labels(loop: spec.Loop) -> list[str]:
    """Return the labels of the loop's steps (the names an example's outputs may use)."""
    labels = [
        label
        for _, step in spec.iter_steps(loop.pipeline)
        if isinstance(label := getattr(step, "label", None), str) and label
    ]
    makers = loop.verify.maker if loop.verify else []
    return list(dict.fromkeys([*makers, *labels]))


def _example(raw: _Raw, loop: spec.Loop, shown: str, problems: list[Problem]) -> Example | None:
    """Check one example; append its problems and return it, or ``None`` when it has some."""
    data = raw.data
    if not isinstance(data, dict):
        problems.append(_problem(raw, shown, f"an example is a mapping of keys, not {_kind(data)}"))
        return None
    before = len(problems)

    def fail(message: str, key: str | None = None, hint: str | None = None) -> None:
        problems.append(_problem(raw, shown, message, key, hint=hint))

    for key in data:
        if key not in EXAMPLE_KEYS:
            fail(
                f"unknown key '{key}'",
                str(key),
                _did_you_mean(str(key), list(EXAMPLE_KEYS))
                or f"an example's keys: {', '.join(EXAMPLE_KEYS)}",
            )
    makers = list(loop.verify.maker) if loop.verify else []
    passed = data.get("pass")
    if "pass" not in data:
        fail("no 'pass': say whether a person passed these outputs (pass: true or false)")
    elif not isinstance(passed, bool):
        fail(f"'pass' must be true or false, not {_kind(passed)}", "pass")
    outputs: dict[str, Any] = {}
    if "output" in data and "outputs" in data:
        fail("give 'output' or 'outputs', not both", "outputs")
    elif "output" in data:
        if len(makers) != 1:
            fail(
                f"the loop has {len(makers)} makers ({', '.join(makers)}): give 'outputs' "
                "by maker label instead of one 'output'",
                "output",
            )
        else:
            outputs[makers[0]] = data["output"]
    elif "outputs" in data:
        given = data["outputs"]
        if not isinstance(given, dict):
            fail(f"'outputs' must map maker labels to outputs, not {_kind(given)}", "outputs")
        else:
            known = step_labels(loop)
            for label, value in given.items():
                if label not in known:
                    fail(
                        f"'outputs' names '{label}', which is no step of the loop "
                        f"(makers: {', '.join(makers)})",
                        "outputs",
                        _did_you_mean(str(label), known),
                    )
                else:
                    outputs[label] = value
    else:
        one = " ('output' will do: the loop has one maker)" if len(makers) == 1 else ""
        fail(f"no 'outputs': give the makers' outputs by maker label{one}")
    if ("output" in data or isinstance(data.get("outputs"), dict)) and len(problems) == before:
        missing = [m for m in makers if m not in outputs]
        if missing:
            fail(
                f"no output for maker '{missing[0]}' (every maker's output is shown to the "
                'checker; write "" for one that produced nothing)',
                "outputs",
            )
        for label, value in outputs.items():
            if value is None or isinstance(value, bool | int | float):
                fail(
                    f"the output of '{label}' must be text (or, for a step with an output "
                    f"schema, a mapping or a list), not {_kind(value)}",
                    "outputs" if "outputs" in data else "output",
                )
    inputs = data.get("inputs", {})
    if not isinstance(inputs, dict):
        fail(f"'inputs' must be a mapping of input names to values, not {_kind(inputs)}", "inputs")
        inputs = {}
    declared = list(loop.inputs)
    for name in inputs:
        if name not in loop.inputs:
            fail(
                f"the loop declares no input '{name}'"
                + (f" (its inputs: {', '.join(declared)})" if declared else ""),
                "inputs",
                _did_you_mean(str(name), declared),
            )
    for name, spec_ in loop.inputs.items():
        if spec_.required and spec_.default is None and name not in inputs:
            fail(
                f"no value for the required input '{name}' (a run would be refused without it)",
                "inputs" if "inputs" in data else None,
            )
    memory = data.get("memory", {})
    if not isinstance(memory, dict):
        fail(f"'memory' must be a mapping of memory keys to values, not {_kind(memory)}", "memory")
        memory = {}
    issues = data.get("issues", [])
    if isinstance(issues, str):
        issues = [issues]
    if not isinstance(issues, list) or not all(isinstance(i, str) for i in issues):
        fail("'issues' must be a list of texts (the issues a person found)", "issues")
        issues = []
    ident = data.get("id", f"#{raw.number}")
    if not isinstance(ident, str | int | float) or isinstance(ident, bool):
        fail(f"'id' must be a text or a number, not {_kind(ident)}", "id")
    note = data.get("note")
    if note is not None and not isinstance(note, str):
        fail(f"'note' must be a text, not {_kind(note)}", "note")
    if len(problems) != before:
        return None
    return Example(
        number=raw.number,
        id=str(ident),
        outputs=outputs,
        passed=bool(passed),
        line=raw.line,
        inputs=dict(inputs),
        payload=data.get("payload"),
        memory=dict(memory),
        issues=list(issues),
        note=note,
    )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 20 else value[:20] + "..."
        return f"the text '{shown}'"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


# ── The calibration ──────────────────────────────────────────────────────


@dataclass
class ExampleResult:
    """What the checker said of one example (``error``: the round could not be asked)."""

    example: Example
    verdict: Verdict | None = None
    error: str | None = None
    tokens: dict[str, int] = field(default_factory=dict)
    cost: float | None = 0.0
    requests: int = 0
    duration_ms: float = 0.0
    #: What the checker could not be shown (a maker's instruction that does not render).
    warnings: list[str] = field(default_factory=list)

    @property
    def checker_passed(self) -> bool | None:
        return None if self.verdict is None else self.verdict.passed

    @property
    def outcome(self) -> str:
        """``agree``, ``false_pass`` (checker passed, person failed), ``false_fail`` or ``error``."""
        said = self.checker_passed
        if said is None:
            return "error"
        if said == self.example.passed:
            return "agree"
        return "false_pass" if said else "false_fail"

    def as_dict(self) -> dict[str, Any]:
        verdict = self.verdict
        return {
            "number": self.example.number,
            "id": self.example.id,
            "line": self.example.line,
            "pass": self.example.passed,
            "expectedIssues": self.example.issues,
            "note": self.example.note,
            "checkerPass": self.checker_passed,
            "score": verdict.score if verdict else None,
            "issues": verdict.issues if verdict else [],
            "reason": verdict.reason if verdict else None,
            "outcome": self.outcome,
            "error": self.error,
            "warnings": self.warnings,
            "tokens": self.tokens,
            "cost": self.cost,
            "requests": self.requests,
            "durationMs": round(self.duration_ms, 1),
        }


@dataclass
class Outcome:
    """A calibration's figures: agreement, false passes and fails, usage; per example."""

    loop: str
    checkers: list[str]
    models: dict[str, str]
    results: list[ExampleResult]
    dry_run: bool = False
    duration_ms: float = 0.0

    def _count(self, outcome: str) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)

    @property
    def judged(self) -> int:
        return len(self.results) - self.errors

    @property
    def agreed(self) -> int:
        return self._count("agree")

    @property
    def false_passes(self) -> int:
        return self._count("false_pass")

    @property
    def false_fails(self) -> int:
        return self._count("false_fail")

    @property
    def errors(self) -> int:
        return self._count("error")

    @property
    def agreement(self) -> float | None:
        """Agreed / judged (0..1); ``None`` when no example could be judged."""
        return self.agreed / self.judged if self.judged else None

    @property
    def human_failed(self) -> int:
        return sum(1 for r in self.results if r.outcome != "error" and not r.example.passed)

    @property
    def human_passed(self) -> int:
        return self.judged - self.human_failed

    @property
    def tokens(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for result in self.results:
            for kind, count in result.tokens.items():
                total[kind] = total.get(kind, 0) + count
        return total

    @property
    def cost(self) -> float | None:
        costs = [r.cost for r in self.results]
        return None if any(c is None for c in costs) else sum(c or 0.0 for c in costs)

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.results)

    def figures(self) -> dict[str, Any]:
        """The figures a record keeps and ``--json`` prints (camelCase)."""
        return {
            "examples": len(self.results),
            "judged": self.judged,
            "agreed": self.agreed,
            "agreement": self.agreement,
            "falsePasses": self.false_passes,
            "falseFails": self.false_fails,
            "errors": self.errors,
            "humanPassed": self.human_passed,
            "humanFailed": self.human_failed,
            "tokens": self.tokens,
            "cost": self.cost,
            "requests": self.requests,
            "durationMs": round(self.duration_ms, 1),
        }


def checker_models(
    loop: spec.Loop, llm: LLM, project: spec.Project | None, project_model: str | None
) -> dict[str, str]:
    """Return the model each checker calls, resolved as a run resolves it; raise ``ConfigError``."""
    from loopkit.engine.runner import Run, RunOptions

    run = Run(loop, llm, options=RunOptions(project_model=project_model), project=project)
    verify = loop.verify
    out: dict[str, str] = {}
    for name in verify.checkers if verify else []:
        agent = run.subagent(name)
        out[name] = run.model_for(agent.model if agent else None, checker=True)
    return out


async def calibrate(
    loop: spec.Loop,
    examples: list[Example],
    llm: LLM,
    *,
    project: spec.Project | None = None,
    project_model: str | None = None,
    tool_provider: ToolProvider | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> Outcome:
    """Ask the loop's checker(s) about every example, ``concurrency`` at a time.

    Each example is a first verification round (``verify_round``) on a run of
    its own: the example's inputs, trigger payload and memory render the
    checker's and the makers' prompts, its outputs stand for the makers'.
    The loop's budget does not apply (every example is one round).
    A round that cannot be asked (a provider's refusal after the retries, a
    prompt that does not render) is the example's ``error``; an answer that
    is no verdict is a failed round, as in a run.
    """
    import asyncio

    if loop.verify is None:
        raise ValueError(f"the loop '{loop.name}' has no 'verify:'")
    verify = loop.verify
    models = checker_models(loop, llm, project, project_model)
    gate = asyncio.Semaphore(max(1, concurrency))
    await llm.warm_up(sorted(set(models.values())))  # LiteLLM's imports, before the clock starts
    started = time.perf_counter()

    async def one(example: Example) -> ExampleResult:
        async with gate:
            return await _judge(loop, verify, example, llm, project, project_model, tool_provider)

    results = await asyncio.gather(*(one(e) for e in examples))
    return Outcome(
        loop=loop.name,
        checkers=list(verify.checkers),
        models=models,
        results=list(results),
        dry_run=llm.dry_run,
        duration_ms=(time.perf_counter() - started) * 1000,
    )


async def _judge(
    loop: spec.Loop,
    verify: spec.Verify,
    example: Example,
    llm: LLM,
    project: spec.Project | None,
    project_model: str | None,
    tool_provider: ToolProvider | None,
) -> ExampleResult:
    from loopkit.engine.budget import BudgetLimits, BudgetTracker
    from loopkit.engine.context import RunContext, StepResult, resolve_inputs, trigger_context
    from loopkit.engine.runner import Run, RunOptions
    from loopkit.engine.verify import verify_round
    from loopkit.errors import LoopKitError
    from loopkit.template_context import first_run_memory

    options = RunOptions(project_model=project_model, checkpoint=False, stream_output=False)
    run = Run(loop, llm, options=options, project=project, tool_provider=tool_provider)
    run.budget = BudgetTracker(BudgetLimits())  # a calibration is no run: the loop's budget is not
    result = ExampleResult(example)
    started = time.perf_counter()
    try:
        memory = first_run_memory(loop)
        memory.update(example.memory)
        inputs = resolve_inputs(loop, example.inputs, dry_run=llm.dry_run)
        trigger = trigger_context(loop, example.payload, dry_run=llm.dry_run)
        run.ctx = RunContext(loop, run.id, inputs, trigger, memory)
        for label, value in example.outputs.items():
            structured = not isinstance(value, str)
            text = json.dumps(value, ensure_ascii=False) if structured else value
            run.ctx.record(
                StepResult(key=label, label=label, output=text, value=value, structured=structured)
            )
        result.warnings = _unrendered(run, verify)
        result.verdict, _, _, _ = await verify_round(run, verify, 1)
    except LoopKitError as exc:
        result.error = str(exc) or type(exc).__name__
    # What the budget counted: every answered call, those of a round that failed included.
    result.tokens = run.budget.tokens.as_dict()
    result.cost = run.budget.cost if run.budget.cost_known else None
    result.requests = run.requests
    result.duration_ms = (time.perf_counter() - started) * 1000
    return result


def _unrendered(run: Any, verify: spec.Verify) -> list[str]:
    """Return why a maker's instruction cannot be shown to the checker (it does not render
    with what the example gives: the checker then sees the output alone)."""
    from loopkit.engine.agent import render
    from loopkit.errors import RunError

    out = []
    for maker in verify.maker:
        if maker in run.prompts:
            try:
                render(run, run.prompts[maker], maker)
            except RunError as exc:
                out.append(
                    f"the instruction of maker '{maker}' is not shown to the checker: {exc} "
                    "(give the example what it reads: inputs, payload, or the outputs of "
                    "earlier steps by label)"
                )
    return out


# ── The record in the project state ──────────────────────────────────────


def content_hash(loop: spec.Loop, project: spec.Project | None = None) -> str:
    """Return the SHA-256 of what the checker's verdicts depend on in the loop's definition.

    The loop's canonical data (comments and layout do not count) and the
    definitions of its checker subagents written in the project file.
    """
    import hashlib

    from loopkit.yamlio import to_data

    subagents = project.subagents if project else {}
    checkers = loop.verify.checkers if loop.verify else []
    data = {
        "loop": to_data(loop),
        "subagents": {
            name: to_data(subagents[name])
            for name in checkers
            if name in subagents and name not in loop.subagents
        },
    }
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def state_dir(loop: spec.Loop, context: ProjectContext) -> Path:
    """Return the loop's state folder: its ``memory.path`` (or the project's), else ``.loopkit/state``."""
    defaults = context.project.defaults
    memory = loop.memory or (defaults.memory if defaults else None)
    return context.root / ((memory.path if memory else None) or spec.DEFAULT_MEMORY_PATH)


def record_path(loop: spec.Loop, context: ProjectContext) -> Path:
    """Return the file holding the loop's last calibration."""
    from urllib.parse import quote

    return state_dir(loop, context) / "calibration" / f"{quote(loop.name, safe='')}.json"


def make_record(
    outcome: Outcome,
    loop: spec.Loop,
    project: spec.Project | None,
    *,
    labels: str,
    labels_hash: str,
    at: float | None = None,
) -> dict[str, Any]:
    """Return the record a calibration leaves in the project state."""
    return {
        "version": RECORD_VERSION,
        "loop": loop.name,
        "at": time.time() if at is None else at,
        "loopHash": content_hash(loop, project),
        "labels": labels,
        "labelsHash": labels_hash,
        "checkers": outcome.checkers,
        "models": outcome.models,
        **outcome.figures(),
    }


def save_record(record: dict[str, Any], loop: spec.Loop, context: ProjectContext) -> Path:
    """Write ``record`` as the loop's last calibration (atomically); return the file."""
    from loopkit.memory import atomic_write

    path = record_path(loop, context)
    atomic_write(path, (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode())
    return path


def load_record(loop: spec.Loop, context: ProjectContext) -> dict[str, Any] | None:
    """Return the loop's last calibration record, or ``None`` (none, or unreadable)."""
    path = record_path(loop, context)
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("loop") == loop.name else None


def last_calibration(loop: spec.Loop, context: ProjectContext) -> Calibration | None:
    """Return what the LRS shows of the loop's last calibration (``None``: none to show)."""
    if loop.verify is None:
        return None
    record = load_record(loop, context)
    if record is None:
        return None
    from loopkit.lrs import Calibration

    try:
        return Calibration(
            at=float(record["at"]),
            agreement=float(record["agreement"]),
            examples=int(record["judged"]),
            false_passes=int(record["falsePasses"]),
            false_fails=int(record["falseFails"]),
            current=record.get("loopHash") == content_hash(loop, context.project),
        )
    except (KeyError, TypeError, ValueError):
        return None


def file_hash(path: Path) -> str:
    """Return the SHA-256 of a file's bytes (which labels a record was made with)."""
    import hashlib

    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()

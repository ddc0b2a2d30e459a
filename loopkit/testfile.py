"""Test files: what a loop test says must hold, read with positions, and checked.

A test file (``tests/pr-review.test.yaml``, reference in docs/testing.md)
names a loop, its cassette and the expectations ``check`` holds a replayed
run to. ``load_test`` reports every mistake at once with ``file:line:column``
and the field path, like a loop file's.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from loopkit import yamlio
from loopkit.errors import Problem, SpecError

# ── The test file ────────────────────────────────────────────────────────


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", strict=True
    )


class OutputExpect(_Model):
    """What one step's output must be; every key given must hold."""

    equals: str | int | float | bool | dict[str, Any] | list[Any] | None = None
    contains: str | list[str] | None = None
    not_contains: str | list[str] | None = None
    matches: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")


class VerificationExpect(_Model):
    passed: bool | None = None
    rounds: int | None = Field(default=None, ge=0)
    outcome: Literal["passed", "failed", "stalled", "skipped"] | None = None


class StepsExpect(_Model):
    taken: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)


class Expect(_Model):
    status: (
        Literal["succeeded", "failed", "verification_failed", "budget_exceeded", "cancelled"] | None
    ) = None
    verification: VerificationExpect | None = None
    outputs: dict[str, OutputExpect] = Field(default_factory=dict)
    max_tokens: int | None = Field(default=None, ge=0)
    max_cost_usd: float | None = Field(default=None, ge=0)
    steps: StepsExpect | None = None


class TestSpec(_Model):
    """A test file."""

    __test__ = False  # not a pytest class

    loop: str
    cassette: str | None = None
    name: str | None = None
    description: str | None = None
    expect: Expect = Field(default_factory=Expect)


def _keys(model: type[BaseModel]) -> set[str]:
    out: set[str] = set()
    for name, info in model.model_fields.items():
        out.add(info.alias or name)
    return out


_ALL_KEYS = sorted(
    set().union(
        *(_keys(m) for m in (TestSpec, Expect, StepsExpect, VerificationExpect, OutputExpect))
    )
)


def load_test(path: Path, shown: str | None = None) -> tuple[TestSpec, yamlio.Document]:
    """Read and validate a test file; raise ``SpecError`` with every problem positioned."""
    file = shown or str(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise SpecError(
            [Problem(f"cannot read the test file: {exc.strerror}", file=file)]
        ) from None
    doc = yamlio.parse(text, file)
    if not isinstance(doc.data, dict):
        kind = type(doc.data).__name__ if doc.data is not None else "nothing"
        raise SpecError(
            [
                Problem(
                    f"a test file is a mapping (loop, cassette, expect), got {kind}",
                    file=file,
                    line=1,
                    column=1,
                    code="not_a_mapping",
                )
            ]
        )
    try:
        test = yamlio.validate_data(TestSpec, doc.data, doc, lambda data: data)
    except SpecError as exc:
        problems = sorted(exc.problems, key=lambda p: (p.line or 0, p.column or 0))
        raise SpecError([_own_hint(p) for p in problems]) from None
    problems = []
    for name, expect in test.expect.outputs.items():
        if expect.matches is not None:
            try:
                re.compile(expect.matches)
            except re.error as err:
                problems.append(
                    problem_at(
                        doc, ("expect", "outputs", name, "matches"), f"not a valid pattern: {err}"
                    )
                )
        if expect.schema_ is not None:
            from loopkit import structured

            try:
                structured.validator(expect.schema_)
            except structured.BadSchema as err:
                problems.append(
                    problem_at(
                        doc,
                        ("expect", "outputs", name, "schema"),
                        f"not a valid JSON Schema: {err}",
                    )
                )
    if problems:
        raise SpecError(problems)
    return test, doc


def _own_hint(problem: Problem) -> Problem:
    """Give unknown keys a hint from the test file's keys (not the loop file's)."""
    if problem.code != "extra_forbidden":
        return problem
    key = problem.path.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(key, _ALL_KEYS, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else None
    return Problem(
        problem.message,
        path=problem.path,
        file=problem.file,
        line=problem.line,
        column=problem.column,
        code=problem.code,
        hint=hint,
    )


def problem_at(doc: yamlio.Document, path: tuple[str | int, ...], message: str) -> Problem:
    pos = doc.position(path)
    return Problem(
        message,
        path=yamlio.format_path(path),
        file=doc.file,
        line=pos[0] if pos else None,
        column=pos[1] if pos else None,
    )


def write_test(
    path: Path, loop: str, cassette: Path, status: str, verification: dict[str, Any] | None
) -> None:
    """Write a test file asserting a recorded run's status (and verification rounds)."""
    from loopkit import emitter

    expect: dict[str, Any] = {"status": status}
    if verification:
        expect["verification"] = verification
    data = {"loop": loop, "cassette": _relative(cassette, path.parent), "expect": expect}
    header = (
        "# A LoopKit test: `loopkit test` replays the loop against the cassette (no network,\n"
        "# no cost) and checks what is expected below. Reference: docs/testing.md.\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + emitter.dump(data), encoding="utf-8")


def _relative(target: Path, base: Path) -> str:
    import os

    return Path(os.path.relpath(target.resolve(), base.resolve())).as_posix()


# ── Failures ─────────────────────────────────────────────────────────────


@dataclass
class Failure:
    """One thing that did not hold, and where to look (``file:line``)."""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    #: A unified diff of the recorded request against this run's (a cassette miss).
    diff: str = ""
    kind: str = "expectation"  # "expectation", "miss" or "error"

    @property
    def location(self) -> str:
        parts = [self.file or "<test>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)


# ── Expectations ─────────────────────────────────────────────────────────


def check(
    test: TestSpec, doc: yamlio.Document, outcome: Any, events: list[dict[str, Any]]
) -> list[Failure]:
    """Return what of ``test.expect`` the replayed run (``outcome``, ``events``) did not meet."""
    expect = test.expect
    failures: list[Failure] = []

    def fail(path: tuple[str | int, ...], message: str) -> None:
        pos = doc.position(path)
        line, column = pos if pos else (None, None)
        failures.append(Failure(message, doc.file, line, column))

    if expect.status is not None and outcome.status != expect.status:
        why = f": {outcome.error}" if outcome.error else ""
        fail(("expect", "status"), f"status: expected {expect.status}, got {outcome.status}{why}")
    verification = expect.verification
    if verification is not None:
        passed = outcome.verification == "passed"
        if verification.passed is not None and passed != verification.passed:
            fail(
                ("expect", "verification", "passed"),
                f"verification: expected {'passed' if verification.passed else 'not passed'}, "
                f"got {outcome.verification or 'no verification'} after {outcome.rounds} round(s)",
            )
        if verification.rounds is not None and outcome.rounds != verification.rounds:
            fail(
                ("expect", "verification", "rounds"),
                f"verification rounds: expected {verification.rounds}, got {outcome.rounds}",
            )
        if verification.outcome is not None and outcome.verification != verification.outcome:
            fail(
                ("expect", "verification", "outcome"),
                f"verification outcome: expected {verification.outcome}, "
                f"got {outcome.verification or 'none'}",
            )
    for name, want in expect.outputs.items():
        for key, message in _output_problems(name, want, outcome.outputs.get(name)):
            fail(("expect", "outputs", name, key), message)
    total = outcome.tokens.total
    if expect.max_tokens is not None and total > expect.max_tokens:
        fail(("expect", "maxTokens"), f"tokens: expected at most {expect.max_tokens}, used {total}")
    if expect.max_cost_usd is not None:
        if outcome.cost is None:
            fail(("expect", "maxCostUsd"), "cost: unknown (a model's price is unknown)")
        elif outcome.cost > expect.max_cost_usd:
            fail(
                ("expect", "maxCostUsd"),
                f"cost: expected at most ${expect.max_cost_usd:g}, cost ${outcome.cost:.6f}",
            )
    if expect.steps is not None:
        taken = _taken(events)
        for index, step in enumerate(expect.steps.taken):
            if step not in taken:
                fail(
                    ("expect", "steps", "taken", index),
                    f"step '{step}' was expected to run; it did not",
                )
        for index, step in enumerate(expect.steps.skipped):
            if step in taken:
                fail(
                    ("expect", "steps", "skipped", index),
                    f"step '{step}' was expected to be skipped; it ran",
                )
    return failures


def _taken(events: Iterable[dict[str, Any]]) -> set[str]:
    taken: set[str] = set()
    for event in events:
        if event.get("type") in ("step_started", "tool_called"):
            for key in ("label", "key"):
                if event.get(key):
                    taken.add(str(event[key]))
    return taken


def _output_problems(name: str, want: OutputExpect, got: str | None) -> list[tuple[str, str]]:
    given = want.model_fields_set
    if got is None:
        return [
            (next(iter(sorted(given)), "equals"), f"output of '{name}': the step has no output")
        ]
    out: list[tuple[str, str]] = []
    if "equals" in given:
        expected = want.equals
        if isinstance(expected, str):
            same = got == expected
        else:
            try:
                same = json.loads(got) == expected
            except ValueError:
                same = False
        if not same:
            out.append(
                ("equals", f"output of '{name}': expected {_short(expected)}, got {_short(got)}")
            )
    for key, negate in (("contains", False), ("not_contains", True)):
        value = getattr(want, key)
        if value is None:
            continue
        for needle in [value] if isinstance(value, str) else value:
            if (needle in got) == negate:
                verb = "not to contain" if negate else "to contain"
                alias = "notContains" if negate else "contains"
                out.append(
                    (alias, f"output of '{name}': expected {verb} {needle!r}, got {_short(got)}")
                )
    if want.matches is not None and re.search(want.matches, got) is None:
        out.append(
            ("matches", f"output of '{name}': no match for /{want.matches}/ in {_short(got)}")
        )
    if want.schema_ is not None:
        from loopkit import structured

        _, problem = structured.check(got, want.schema_)
        if problem is not None:
            out.append(("schema", f"output of '{name}' does not match the schema: {problem}"))
    return out


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")

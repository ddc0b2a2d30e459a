"""The run context: what prompt templates and ``when:`` conditions can read.

Templates see these names:

- ``inputs``: the run's inputs (``--input k=v``, declared defaults applied; in a
  dry run, typed placeholders for required ones not given);
- ``trigger``: the trigger payload (a webhook's JSON body, a cron tick; in a
  dry run without one, a sample of it);
- ``steps``: finished steps by label (unlabelled ones by path), each
  ``{"output", "tokens", "cost", "round"}``;
- ``memory``: the loop's key-value memory from earlier runs;
- ``loop``: ``{"name", "description"}``; ``run``: ``{"id", "round"}``;
- ``round``: the Maker/Checker round, 1, 2, ... (the same as ``run.round``);
- ``feedback``: the checker's issues from the previous round (empty in round 1),
  a list that renders as one ``- issue`` line per issue (``Feedback``);
- ``verification`` (only in the templates of ``onPass`` and ``onFail`` steps,
  which run after the rounds): ``{"passed", "score", "issues", "rounds",
  "outcome", "accepted"}`` of the verification that ended (``set_verification``).

A step with an output schema has its parsed JSON value as ``steps[...].output``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loopkit import spec
from loopkit.engine.events import Tokens
from loopkit.engine.payloads import sample_payload


class Feedback(list[str]):
    """The checker's issues: a list that renders as readable lines.

    ``{{ feedback }}`` gives ``- issue one`` and ``- issue two`` on their own
    lines; ``feedback | length``, ``{% for issue in feedback %}`` and
    ``{% if feedback %}`` work as on any list.
    """

    def __str__(self) -> str:
        return "\n".join(f"- {issue}" for issue in self)


@dataclass
class StepResult:
    """A finished agent step (live or from a checkpoint).

    ``output`` is the answer's text; for a step with an output schema it is
    the parsed answer as JSON text, and ``value`` the parsed value
    (``structured`` says which templates see as ``steps[...].output``).
    """

    key: str
    label: str | None
    output: str
    tokens: Tokens = field(default_factory=Tokens)
    cost: float | None = 0.0
    duration_ms: float = 0.0
    requests: int = 0
    round: int = 1
    resumed: bool = False
    value: Any = None
    structured: bool = False


class RunContext:
    """Mutable state of one run that templates read through ``variables``."""

    def __init__(
        self,
        loop: spec.Loop,
        run_id: str,
        inputs: dict[str, Any] | None = None,
        trigger: dict[str, Any] | None = None,
        memory: dict[str, Any] | None = None,
    ) -> None:
        self.loop = loop
        self.results: dict[str, StepResult] = {}
        self.round = 1
        self.feedback = Feedback()
        #: The makers' "address every issue" note for this round (built once a round).
        self.feedback_note: str | None = None
        #: Each maker's instruction this round: its prompt as rendered (what the checker sees).
        self.instructions: dict[str, str] = {}
        self._steps: dict[str, dict[str, Any]] = {}
        self._run = {"id": run_id, "round": 1}
        # One dict shared by every render: updated in place, never rebuilt.
        self.variables: dict[str, Any] = {
            "inputs": dict(inputs or {}),
            "trigger": trigger or {},
            "steps": self._steps,
            "memory": memory or {},
            "loop": {"name": loop.name, "description": loop.description or ""},
            "run": self._run,
            "round": 1,
            "feedback": self.feedback,
        }
        from loopkit.templating import environment

        #: ``variables`` over Jinja's globals, for rendering with a shared context.
        self.render_vars: dict[str, Any] = {**environment().globals, **self.variables}
        #: The Jinja context read-only templates share (made by the first render).
        self.jinja_context: Any = None

    @property
    def inputs(self) -> dict[str, Any]:
        value: dict[str, Any] = self.variables["inputs"]
        return value

    def set_round(self, round_: int, feedback: list[str]) -> None:
        self.round = round_
        self._run["round"] = round_
        # ``render_vars`` is a merged copy (and the shared Jinja context reads it): both change.
        self.variables["round"] = self.render_vars["round"] = round_
        self.feedback[:] = feedback
        self.feedback_note = None

    def set_verification(
        self,
        *,
        passed: bool,
        score: float | None,
        issues: list[str],
        rounds: int,
        outcome: str | None = None,
        accepted: str | None = None,
    ) -> None:
        """Give templates ``verification``: how the rounds ended (for ``onPass`` / ``onFail``).

        ``issues`` renders as one ``- issue`` line per issue, like ``feedback``.
        """
        value = {
            "passed": passed,
            "score": score,
            "issues": Feedback(issues),
            "rounds": rounds,
            "outcome": outcome,
            "accepted": accepted,
        }
        # ``render_vars`` is the merged copy the shared Jinja context reads: set both.
        self.variables["verification"] = self.render_vars["verification"] = value

    def record(self, result: StepResult) -> None:
        name = result.label or result.key
        self.results[name] = result
        self._steps[name] = {
            "output": result.value if result.structured else result.output,
            "tokens": result.tokens.total,
            "cost": result.cost,
            "round": result.round,
        }

    def output_of(self, name: str) -> str | None:
        result = self.results.get(name)
        return result.output if result else None


def trigger_context(
    loop: spec.Loop, payload: Any = None, *, dry_run: bool = False
) -> dict[str, Any]:
    """Return the ``trigger`` template variable: ``{"type", "event", "payload"}``.

    Without a payload, a dry run gets a sample of what its trigger delivers
    (``loopkit.engine.payloads.sample_payload``) so that prompts that read
    ``trigger.payload...`` render as in a real run; a live run gets ``{}``.
    """
    trigger = loop.effective_trigger
    data: dict[str, Any] = {"type": trigger.type, "event": getattr(trigger, "event", None)}
    if payload is not None:
        data["payload"] = payload
    elif dry_run:
        data["payload"] = sample_payload(trigger)
    else:
        data["payload"] = {}
    return data


def placeholder_input(name: str, declared: spec.InputSpec) -> str | int | bool:
    """Return what a dry run reads as an input given no value and declaring no default.

    A string input reads as its own path (``<inputs.diff>``), a number or an
    integer as 0, a boolean as false.
    """
    kind = declared.type or "string"
    if kind == "boolean":
        return False
    if kind in ("number", "integer"):
        return 0
    return f"<inputs.{name}>"


def resolve_inputs(
    loop: spec.Loop, given: dict[str, Any], *, dry_run: bool = False
) -> dict[str, Any]:
    """Apply declared defaults (in declaration order); raise ``RunError`` when one is missing.

    A dry run is never refused for an input: a required input without a
    value or a default gets a typed placeholder (``placeholder_input``). An
    optional one stays absent, as in a live run (templates guard it).
    """
    from loopkit.errors import RunError

    out = dict(given)
    missing = []
    for name, declared in loop.inputs.items():
        if name not in out:
            if declared.default is not None:
                out[name] = declared.default
            elif declared.required and dry_run:
                out[name] = placeholder_input(name, declared)
            elif declared.required:
                missing.append(name)
    if missing:
        raise RunError(
            f"missing required input(s): {', '.join(missing)} "
            f"(pass them as --input {missing[0]}=VALUE)",
            code="missing_input",
        )
    # One order whatever order they were given in (the checker's prompt lists them, and a
    # cassette's replay must ask the same): the declared ones as declared, then the rest sorted.
    ordered = {name: out[name] for name in loop.inputs if name in out}
    ordered.update((name, out[name]) for name in sorted(out) if name not in ordered)
    return ordered

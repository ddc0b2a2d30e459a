"""What exists when a template renders, and the check of what each template reads.

Every template of a loop (agent prompts, ``when:`` conditions, subagent
prompts, approval questions, plan tasks and plan template prompts, a tool
check's arguments and ``expect``) is read
once into chains of lookups (``loopkit.references``). ``check_templates``
walks the pipeline in run order and checks each chain against what the run
context will hold when that template renders (see ``docs/loop-yaml.md``,
"Template context"):

- ``inputs.<name>``: declared under ``inputs:``; one that is neither required
  nor has a default must be guarded;
- ``steps['Label']``: a step that finished before this template renders
  (earlier in sequence, not a member of the same parallel group, not the step
  itself); a step of a conditional branch, read from outside that branch, must
  be guarded; its fields are ``output``, ``tokens``, ``cost`` and ``round``,
  and ``output.<field>`` follows the step's output schema when it lists
  ``properties``;
- ``memory.<key>``: a key the loop writes (a step's label, and ``last_run``;
  only ``last_run`` with ``persistence: minimal``); any other key must be
  guarded (another loop sharing the namespace may write it);
- ``trigger.type``, ``trigger.event``, ``trigger.payload`` (its paths by the
  trigger's kind, see ``_payload``);
- ``loop.name``, ``loop.description``, ``run.id``, ``run.round``, ``round``,
  ``feedback``, Jinja2's globals and the template's own variables; plan
  template prompts also see ``task``, ``input`` and ``results``, and a check's
  ``expect`` sees ``result``.

A read that may find nothing must be guarded (see ``loopkit.references``
for what counts as a guard); a guard never excuses a name that exists nowhere.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from loopkit import spec, webhooks
from loopkit.errors import Problem
from loopkit.references import Key, Ref, condition_refs, prompt_refs, proved_steps
from loopkit.templating import TemplateSyntaxError, environment

#: The fields of ``steps['X']`` (see ``engine.context.RunContext.record``).
STEP_FIELDS = ("output", "tokens", "cost", "round")
#: The names every template of the run context sees.
CONTEXT_NAMES = ("inputs", "steps", "memory", "trigger", "loop", "run", "round", "feedback")
#: The names a plan template's prompt sees besides the run context.
PLAN_TEMPLATE_NAMES = ("task", "input", "results")
#: What the templates of ``onPass`` and ``onFail`` steps see besides the run context.
ACTION_NAMES = ("verification",)
#: The fields of ``verification`` (see ``engine.context.RunContext.set_verification``).
VERIFICATION_FIELDS = ("passed", "score", "issues", "rounds", "outcome", "accepted")
#: The names a check's ``expect`` condition sees besides the run context.
CHECK_EXPECT_NAMES = ("result",)
_FIELDS = {
    "trigger": ("type", "event", "payload"),
    "loop": ("name", "description"),
    "run": ("id", "round"),
}
#: ``trigger.payload`` of the runs the web app starts for cron and event triggers
#: (``runs/triggers.py``).
CRON_PAYLOAD = ("schedule", "timezone", "due_time")
COMPLETION_PAYLOAD = ("loop", "run_id", "status", "depth")
CUSTOM_EVENT_PAYLOAD = ("event", "data", "depth")
_DICT_ATTRIBUTES = frozenset(dir(dict))
_STR_ATTRIBUTES = frozenset(dir(str))
_METHODS = _DICT_ATTRIBUTES | _STR_ATTRIBUTES | frozenset(dir(list))


# ── The run's timeline ───────────────────────────────────────────────────


class _Finished:
    """The steps finished so far, in run order: name -> (order, None or why it may not have run).

    A template keeps ``(finished, count)`` rather than a copy: the steps it
    sees are the first ``count`` (a sequence only ever adds to the end).
    """

    __slots__ = ("entries",)

    def __init__(self, entries: dict[str, tuple[int, str | None]] | None = None) -> None:
        self.entries: dict[str, tuple[int, str | None]] = dict(entries or {})

    def add(self, name: str, why: str | None) -> None:
        if name not in self.entries:
            self.entries[name] = (len(self.entries), why)

    def copy(self) -> _Finished:
        return _Finished(self.entries)

    def since(self, count: int) -> list[tuple[str, str | None]]:
        """Return the steps added after the first ``count``."""
        return [(name, why) for name, (_, why) in islice(self.entries.items(), count, None)]

    def seen(self) -> tuple[_Finished, int]:
        return self, len(self.entries)


def _finished(seen: tuple[_Finished, int], name: str) -> tuple[bool, str | None]:
    """Return whether step ``name`` is among the steps ``seen``, and why it may not have run."""
    entry = seen[0].entries.get(name)
    if entry is None or entry[0] >= seen[1]:
        return False, None
    return True, entry[1]


@dataclass
class _Template:
    """One template to check, and what exists when it renders."""

    source: str
    path: str
    condition: bool
    #: The steps finished before it renders (see ``_Finished``).
    done: tuple[_Finished, int]
    #: The step the template belongs to (its own output does not exist yet).
    owner: str | None
    owner_path: str
    extra: tuple[str, ...] = ()
    #: Said after each problem: which use of a shared template it is about.
    note: str = ""


def memory_keys(loop: spec.Loop) -> list[str]:
    """Return the memory keys a run of ``loop`` writes when it succeeds.

    Each agent or plan step's output under its label (its path when it has
    none), unless ``persistence: minimal``, and ``last_run``. A first run
    reads them empty (``first_run_memory``), so a template may read them
    unguarded.
    """
    memory = loop.memory
    if memory is not None and memory.persistence == "minimal":
        return ["last_run"]
    # Every step recorded in a run that succeeds: the pipeline's and onPass's (a run
    # whose onFail steps ran did not succeed, so they are never remembered).
    names = [
        step.label or path
        for path, step in spec.iter_loop_steps(loop)
        if isinstance(step, spec.AgentStep | spec.PlanStep | spec.ToolStep)
        and not path.startswith("onFail")
    ]
    return [*dict.fromkeys(names), "last_run"]


def first_run_memory(loop: spec.Loop) -> dict[str, Any]:
    """Return what the keys ``loop`` writes hold before any run wrote them.

    A step's output is ``""``; ``last_run`` has its fields, empty.
    """
    empty: dict[str, Any] = dict.fromkeys(memory_keys(loop), "")
    empty["last_run"] = {"id": "", "status": "", "finished_at": None}
    return empty


@dataclass
class _Timeline:
    """Every template of a loop, each with the steps finished before it renders."""

    loop: spec.Loop
    templates: list[_Template] = field(default_factory=list)
    #: Every step that can be read: name -> (its path, its output schema).
    steps: dict[str, tuple[str, dict[str, Any] | None]] = field(default_factory=dict)
    plans: list[str] = field(default_factory=list)
    uses: dict[str, list[tuple[tuple[_Finished, int], str | None, str]]] = field(
        default_factory=dict
    )
    #: Names the templates being walked see besides the run context (``ACTION_NAMES``).
    extra: tuple[str, ...] = ()

    def build(self) -> None:
        for path, step in spec.iter_loop_steps(self.loop):
            if isinstance(step, spec.AgentStep | spec.PlanStep):
                output = step.output if isinstance(step, spec.AgentStep) else None
                schema = output.json_schema if isinstance(output, spec.OutputSchema) else None
                self.steps.setdefault(step.label or path, (path, schema))
                if isinstance(step, spec.PlanStep):
                    self.plans.append(step.label or path)
            elif isinstance(step, spec.ToolStep):
                # A tool's result: JSON of a shape only the tool knows, or text (not checked).
                self.steps.setdefault(step.label or path, (path, {}))
        done = _Finished()
        self.sequence(self.loop.pipeline, "pipeline", done)
        for checker in self.loop.verify.checkers if self.loop.verify else []:
            self.use(checker, done, None, "verify")
        # verify.checks (issue 18): a tool check's arguments and its expect, after the pipeline.
        for path, source, condition in spec.check_templates(
            self.loop.verify.checks if self.loop.verify else []
        ):
            extra = CHECK_EXPECT_NAMES if condition else ()
            self.add(source, path, done.seen(), None, "verify", condition=condition, extra=extra)
        # onPass and onFail run after the rounds (never both): each sees the whole pipeline.
        self.extra = ACTION_NAMES
        for key, attribute in spec.ACTION_LISTS:
            self.sequence(getattr(self.loop, attribute), key, done.copy())
        self.extra = ()
        for name, agent in self.loop.subagents.items():
            if not agent.prompt:
                continue
            uses = self.uses.get(name) or [(done.seen(), None, "verify")]
            for scope, owner, owner_path in uses:
                note = f" (as the subagent of step '{owner}')" if owner else " (as the checker)"
                self.templates.append(
                    _Template(
                        agent.prompt,
                        f"subagents[{name!r}].prompt",
                        False,
                        scope,
                        owner,
                        owner_path,
                        ACTION_NAMES if _in_actions(owner_path) else (),
                        note=note if name in self.uses else "",
                    )
                )

    def use(self, subagent: str | None, done: _Finished, owner: str | None, path: str) -> None:
        if subagent is not None and subagent in self.loop.subagents:
            self.uses.setdefault(subagent, []).append((done.seen(), owner, path))

    def sequence(self, steps: list[Any], path: str, done: _Finished) -> None:
        for index, step in enumerate(steps):
            self.step(step, f"{path}[{index}]", done)

    def step(self, step: Any, path: str, done: _Finished) -> None:
        if isinstance(step, spec.AgentStep):
            name = step.label or path
            self.add(step.prompt, f"{path}.prompt", done.seen(), name, path)
            self.use(step.subagent, done, name, path)
            done.add(name, None)
        elif isinstance(step, spec.PlanStep):
            name = step.label or path
            self.add(step.plan, f"{path}.plan", done.seen(), name, path)
            self.use(step.planner, done, name, path)
            for template_name, template in step.templates.items():
                self.add(
                    template.prompt,
                    f"{path}.templates[{template_name!r}].prompt",
                    done.seen(),
                    name,
                    path,
                    extra=PLAN_TEMPLATE_NAMES,
                )
                self.use(template.subagent or step.executor, done, name, path)
            done.add(name, None)
        elif isinstance(step, spec.ApprovalStep):
            self.add(step.approve, f"{path}.approve", done.seen(), None, path)
        elif isinstance(step, spec.ToolStep):
            name = step.label or path
            for where, source in step.argument_templates():
                self.add(source, f"{path}.{where}", done.seen(), name, path)
            done.add(name, None)
        elif isinstance(step, spec.SequentialStep):
            self.sequence(step.sequential, f"{path}.sequential", done)
        elif isinstance(step, spec.ParallelStep):
            before = done.copy()
            count = len(before.entries)
            for index, member in enumerate(step.parallel):
                mine = before.copy()
                self.step(member, f"{path}.parallel[{index}]", mine)
                for name, why in mine.since(count):
                    done.add(name, why)
        elif isinstance(step, spec.ConditionalStep):
            self.add(step.when, f"{path}.when", done.seen(), None, path, condition=True)
            count = len(done.entries)
            for branch, members in (("then", step.then), ("else", step.else_ or [])):
                mine = done.copy()
                if branch == "then":  # `when: steps['X'] is defined`: X ran, in this branch
                    for proved in proved_steps(step.when):
                        entry = mine.entries.get(proved)
                        if entry is not None:
                            mine.entries[proved] = (entry[0], None)
                self.sequence(members, f"{path}.{branch}", mine)
                why = f"it runs only when the condition at {path}.when is " + (
                    "true" if branch == "then" else "false"
                )
                for name, inner in mine.since(count):
                    done.add(name, inner or why)

    def add(
        self,
        source: str,
        path: str,
        done: tuple[_Finished, int],
        owner: str | None,
        owner_path: str,
        *,
        condition: bool = False,
        extra: tuple[str, ...] = (),
    ) -> None:
        extra = (*extra, *self.extra)
        self.templates.append(_Template(source, path, condition, done, owner, owner_path, extra))


# ── Checking ─────────────────────────────────────────────────────────────


def check_templates(loop: spec.Loop) -> list[Problem]:
    """Return a problem for each reference of a template to something that will not exist.

    Templates that do not parse are skipped (``checks`` reports them).
    """
    timeline = _Timeline(loop)
    timeline.build()
    checker = _Checker(loop, timeline)
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for template in timeline.templates:
        try:
            refs = (
                condition_refs(template.source)
                if template.condition
                else prompt_refs(template.source)
            )
        except TemplateSyntaxError:
            continue
        multiline = "\n" in template.source.strip()
        for ref in refs:
            found = checker.check(ref, template)
            if found is None:
                continue
            message, hint, code = found
            if multiline:
                message += f" (template line {ref.line})"
            message += template.note
            if (template.path, message) in seen:
                continue
            seen.add((template.path, message))
            problems.append(Problem(message, path=template.path, code=code, hint=hint))
    return problems


Found = tuple[str, str | None, str] | None


def _did_you_mean(name: str, names: Iterable[str]) -> str | None:
    match = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else None


class _Checker:
    def __init__(self, loop: spec.Loop, timeline: _Timeline) -> None:
        self.loop = loop
        self.timeline = timeline
        self.globals = frozenset(environment().globals)
        plan_labels = "|".join(re.escape(p) for p in timeline.plans)
        self.planned = (
            re.compile(rf"(?:{plan_labels})(?: r\d+)? \d+\.\d+ .+") if plan_labels else None
        )

    def check(self, ref: Ref, template: _Template) -> Found:
        root = ref.root
        if root == "verification":
            return _verification(ref, template)
        if root in ("round", "feedback") or root in template.extra:
            return None
        if root not in CONTEXT_NAMES:
            if root in self.globals:
                return None
            names = [*CONTEXT_NAMES, *template.extra, *sorted(self.globals)]
            return (
                f"{root}: there is no '{root}' in the template context",
                _did_you_mean(root, names)
                or "templates read " + ", ".join(CONTEXT_NAMES[:-2]) + ", round and feedback",
                "unknown_reference",
            )
        found: Found = getattr(self, f"_{root}")(ref, template)
        return found

    # One method per name of the context.

    def _inputs(self, ref: Ref, template: _Template) -> Found:
        if not ref.keys or not isinstance(ref.keys[0], str):
            return None
        name = ref.keys[0]
        declared = self.loop.inputs.get(name)
        if declared is None:
            if name in _DICT_ATTRIBUTES:
                return None
            return (
                f"{ref.text}: no input '{name}' is declared",
                _did_you_mean(name, self.loop.inputs)
                or f"declare it under 'inputs:' ({name}: ...)",
                "unknown_reference",
            )
        if declared.default is None and not declared.required and not ref.guarded[0]:
            return (
                f"{ref.text}: the input '{name}' is optional and has no default, "
                "so a run may not have it",
                f"give it a default, make it required, or write "
                f"{{{{ inputs.{name} | default('') }}}}"
                if name.isidentifier()
                else "give it a default, or make it required",
                "unguarded_reference",
            )
        return None

    def _steps(self, ref: Ref, template: _Template) -> Found:
        if not ref.keys or not isinstance(ref.keys[0], str):
            return None
        name = ref.keys[0]
        known = self.timeline.steps.get(name)
        planned = self.planned is not None and self.planned.fullmatch(name) is not None
        if known is None and not planned:
            if name in _DICT_ATTRIBUTES:
                return None
            return (
                f"{ref.text}: no step is labelled '{name}'",
                _did_you_mean(name, self.timeline.steps)
                or "label the step (label: ...) or use its path, e.g. steps['pipeline[0]']",
                "unknown_reference",
            )
        if not ref.guarded[0]:
            why = self._absent(name, known, planned, template)
            if why is not None:
                return (
                    f"{ref.text}: step '{name}' may not have run when this template renders: {why}",
                    f"guard it: {{% if steps[{name!r}] is defined %}}...{{% endif %}}"
                    if not template.condition
                    else f"guard it: steps[{name!r}] is defined and ...",
                    "unguarded_reference",
                )
        if len(ref.keys) < 2 or not isinstance(ref.keys[1], str):
            return None
        field_name = ref.keys[1]
        if field_name not in STEP_FIELDS:
            if field_name in _DICT_ATTRIBUTES:
                return None
            return (
                f"{ref.text}: a step has no field '{field_name}' "
                f"(its fields: {', '.join(STEP_FIELDS)})",
                _did_you_mean(field_name, STEP_FIELDS),
                "unknown_reference",
            )
        if field_name == "output" and len(ref.keys) > 2 and known is not None:
            return _output(ref, name, known[1], ref.keys[2:])
        return None

    def _absent(
        self,
        name: str,
        known: tuple[str, dict[str, Any] | None] | None,
        planned: bool,
        template: _Template,
    ) -> str | None:
        """Say why step ``name`` may be missing when ``template`` renders (None: it is there)."""
        finished, why = _finished(template.done, name)
        if finished:
            return why
        if known is None or planned:
            return "the planner chooses which planned steps run"
        where, here = _list_of(known[0]), _list_of(template.owner_path)
        if where != "pipeline" and where != here:
            if here in ("onPass", "onFail"):
                return f"it is a step of {where}, which never runs in the same run as {here}"
            return f"it runs after verification, in {where}"
        if name == template.owner:
            return "it is this step (its output does not exist while it renders)"
        if _parallel_siblings(known[0], template.owner_path):
            return "it runs in the same parallel group"
        return "it runs after this one"

    def _memory(self, ref: Ref, template: _Template) -> Found:
        if not ref.keys or not isinstance(ref.keys[0], str):
            return None
        key = ref.keys[0]
        if key in _DICT_ATTRIBUTES:
            return None
        memory = self.loop.memory
        minimal = memory is not None and memory.persistence == "minimal"
        written = memory_keys(self.loop)
        known = key in written or (
            not minimal and self.planned is not None and self.planned.fullmatch(key) is not None
        )
        if known or ref.guarded[0]:
            return None
        return (
            f"{ref.text}: the loop never writes the memory key '{key}' "
            "(it writes each step's output under the step's label, and last_run)",
            _did_you_mean(key, written)
            or f"read a key that another loop writes with memory.get({key!r}, '...')",
            "unknown_reference",
        )

    def _trigger(self, ref: Ref, template: _Template) -> Found:
        found = _field(ref, "trigger")
        if found is not None or len(ref.keys) < 2 or ref.keys[0] != "payload":
            return found
        return self._payload(ref, ref.keys[1:])

    def _loop(self, ref: Ref, template: _Template) -> Found:
        return _field(ref, "loop")

    def _run(self, ref: Ref, template: _Template) -> Found:
        return _field(ref, "run")

    def _payload(self, ref: Ref, keys: tuple[Key, ...]) -> Found:
        """Check a path under ``trigger.payload`` by the trigger's kind.

        manual: whatever the starter passed (not checked); cron: the scheduler's
        ``schedule``, ``timezone`` and ``due_time``; a loop-completion event:
        ``loop``, ``run_id``, ``status`` and ``depth``; a custom event: ``event``,
        ``data`` (not checked below) and ``depth``; a webhook: the GitHub event's
        payload schema when ``loopkit.webhooks`` knows the event, else not checked.
        """
        trigger = self.loop.effective_trigger
        first = keys[0]
        if not isinstance(first, str):
            return None
        allowed: tuple[str, ...]
        if isinstance(trigger, spec.CronTrigger):
            kind, allowed = "a cron run's", CRON_PAYLOAD
        elif isinstance(trigger, spec.EventTrigger) and trigger.loop is not None:
            kind, allowed = "a loop-completion event's", COMPLETION_PAYLOAD
        elif isinstance(trigger, spec.EventTrigger):
            kind, allowed = "a custom event's", CUSTOM_EVENT_PAYLOAD
        elif isinstance(trigger, spec.WebhookTrigger):
            return _webhook_path(ref, trigger.event, keys)
        else:
            return None
        if first in allowed or first in _DICT_ATTRIBUTES:
            return None
        return (
            f"{ref.text}: {kind} trigger.payload has no '{first}' (it holds {', '.join(allowed)})",
            _did_you_mean(first, allowed),
            "unknown_reference",
        )


def _in_actions(path: str) -> bool:
    """Whether the step at ``path`` is one of the actions after verification."""
    return _list_of(path) in ("onPass", "onFail")


def _list_of(path: str) -> str:
    """The top-level list a step's path is in: ``pipeline``, ``onPass`` or ``onFail``."""
    return path.split("[", 1)[0].split(".", 1)[0]


def _verification(ref: Ref, template: _Template) -> Found:
    """``verification`` exists in the templates of onPass and onFail steps, with its fields."""
    if "verification" not in template.extra:
        return (
            f"{ref.text}: 'verification' exists only in the templates of onPass and onFail "
            "steps (they run after the rounds)",
            "read the checker's issues in the pipeline with 'feedback'",
            "unknown_reference",
        )
    if not ref.keys or not isinstance(ref.keys[0], str):
        return None
    name = ref.keys[0]
    if name in VERIFICATION_FIELDS or name in _DICT_ATTRIBUTES:
        return None
    return (
        f"{ref.text}: verification has no '{name}' (it holds {', '.join(VERIFICATION_FIELDS)})",
        _did_you_mean(name, VERIFICATION_FIELDS),
        "unknown_reference",
    )


def _field(ref: Ref, root: str) -> Found:
    fields = _FIELDS[root]
    if not ref.keys or not isinstance(ref.keys[0], str) or ref.keys[0] in fields:
        return None
    name = ref.keys[0]
    if name in _DICT_ATTRIBUTES:
        return None
    return (
        f"{ref.text}: {root} has no '{name}' (it holds {', '.join(fields)})",
        _did_you_mean(name, fields),
        "unknown_reference",
    )


def _webhook_path(ref: Ref, event: str, keys: tuple[Key, ...]) -> Found:
    """Check a webhook payload path against the GitHub event's schema (``loopkit.webhooks``)."""
    path: list[str | int] = []
    for key in keys:
        if key is None:
            break
        path.append(key)
        known = webhooks.has_path(event, path)
        if known is None:
            return None  # an event LoopKit has no schema for
        if not known:
            if len(path) > 1 and key in _METHODS:
                return None  # .upper(), .get(...), .index(...): a method of the value
            where = _payload_text(path[:-1])
            return (
                f"{ref.text}: the '{event}' webhook payload has no {key!r}"
                + (f" under '{where}'" if where else ""),
                _did_you_mean(str(key), webhooks.children(event, path[:-1])),
                "unknown_reference",
            )
    return None


def _payload_text(path: list[str | int]) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".")


def _output(ref: Ref, name: str, schema: dict[str, Any] | None, keys: tuple[Key, ...]) -> Found:
    """Check ``steps[name].output`` followed by ``keys`` against the step's output schema."""
    first = keys[0]
    if schema is None:
        if isinstance(first, str) and first not in _STR_ATTRIBUTES:
            return (
                f"{ref.text}: the output of step '{name}' is text (it declares no output "
                f"schema), which has no '{first}'",
                f"declare output: {{schema: ...}} on step '{name}' to read fields of its answer",
                "unknown_reference",
            )
        return None
    node: Any = schema
    for key in keys:
        if not isinstance(node, dict) or key is None:
            return None
        if isinstance(key, int):
            node = node.get("items")
            continue
        properties = node.get("properties")
        if not isinstance(properties, dict) or not properties:
            return None
        if key in properties:
            node = properties[key]
            continue
        if key in _DICT_ATTRIBUTES:
            return None
        return (
            f"{ref.text}: the output schema of step '{name}' has no property '{key}'",
            _did_you_mean(key, properties) or f"its properties: {', '.join(properties)}",
            "unknown_reference",
        )
    return None


def _parallel_siblings(path: str, other: str) -> bool:
    """Whether the steps at two paths are in different members of one parallel group."""
    a, b = path.split("."), other.split(".")
    for left, right in zip(a, b, strict=False):
        if left != right:
            return left.startswith("parallel[") and right.startswith("parallel[")
    return False

"""The Loop Readiness Score: is this loop ready to run unattended in production?

``score(loop, project)`` rates a loop 0-100 over seven dimensions (the rubric
and its weights are documented in docs/lrs.md) and returns a ``Report`` of
findings. Each finding is ``ok`` (done right), ``warn`` (a recommendation) or
``block`` (must be fixed before production; a blocking finding caps the score
at 49, grade F). A finding says what is missing and how to fix it, and where
the fix is mechanical it carries a JSON merge patch (RFC 7386) on the loop's
camelCase data that the editor applies in one click.

Scoring reads the validated model only: no I/O, no LiteLLM, no Jinja2.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from loopkit import spec
from loopkit.yamlio import to_data

Level = Literal["ok", "warn", "block"]

#: Dimension key → (name, maximum points). The weights sum to 100.
DIMENSIONS: dict[str, tuple[str, int]] = {
    "verification": ("Verification (Maker/Checker)", 25),
    "budget": ("Budget controls", 20),
    "termination": ("Termination", 10),
    "persistence": ("State persistence", 10),
    "trigger": ("Trigger safety", 15),
    "recovery": ("Failure recovery", 10),
    "observability": ("Observability and scope", 10),
}

#: Grade thresholds, best first.
GRADES: tuple[tuple[int, str], ...] = ((90, "A"), (80, "B"), (65, "C"), (50, "D"), (0, "F"))
#: The highest score a loop with a blocking finding can get.
BLOCKED_CAP = 49

#: What the one-click fixes propose.
DEFAULT_BUDGET = {"maxTokens": 200000, "maxDurationMinutes": 30, "maxCostUsd": 5}
DEFAULT_MAX_MODEL_CALLS = 50
#: The fewest answer tokens the engine sends a call with (``loopkit.engine.budget.MIN_OUTPUT``,
#: not imported: scoring stays free of the engine).
MIN_OUTPUT = 64
DEFAULT_TIMEOUT_SECONDS = 120
DEFAULT_RETRIES = 2
DEFAULT_SECRET_ENV = "LOOPKIT_WEBHOOK_SECRET"

#: Webhook events whose deliveries carry an ``action`` worth filtering on.
EVENTS_WITH_ACTIONS = frozenset(
    {
        "pull_request",
        "pull_request_review",
        "pull_request_review_comment",
        "issues",
        "issue_comment",
        "release",
        "check_run",
        "check_suite",
        "workflow_run",
        "discussion",
    }
)
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Fix:
    """A one-click fix: a JSON merge patch on the loop's camelCase data."""

    label: str
    patch: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "patch": self.patch}


@dataclass(frozen=True)
class Finding:
    """One observation about a loop, with the dimension it counts in."""

    level: Level
    dimension: str
    message: str
    hint: str | None = None
    fix: Fix | None = None
    #: The field the finding is about (``budget.maxModelCalls``, ``pipeline[2]``): where an
    #: annotation points. A missing field's nearest present parent stands for it.
    path: str = ""

    @property
    def mark(self) -> str:
        """Return the CLI mark: ``[ok]``, ``[!]`` or ``[x]``."""
        return {"ok": "[ok]", "warn": "[!]", "block": "[x]"}[self.level]

    def as_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "dimension": self.dimension,
            "message": self.message,
            "hint": self.hint,
            "fix": self.fix.as_dict() if self.fix else None,
            "path": self.path,
        }


@dataclass(frozen=True)
class Dimension:
    key: str
    name: str
    points: int
    max: int

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "points": self.points, "max": self.max}


@dataclass(frozen=True)
class Report:
    """The score of one loop: total, grade, points per dimension and findings."""

    score: int
    grade: str
    dimensions: list[Dimension]
    findings: list[Finding]

    @property
    def blocked(self) -> bool:
        return any(f.level == "block" for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "grade": self.grade,
            "dimensions": [d.as_dict() for d in self.dimensions],
            "findings": [f.as_dict() for f in self.findings],
        }


#: Dimension key → the field a finding of it is about when it names none itself.
DIMENSION_PATHS: dict[str, str] = {
    "verification": "verify",
    "budget": "budget",
    "termination": "budget",
    "persistence": "memory",
    "trigger": "trigger",
    "recovery": "pipeline",
    "observability": "pipeline",
}


def finding_path(dimension: str, fix: Fix | None = None) -> str:
    """Return the field a finding is about: where its fix writes, else its dimension's field.

    A patch's first key is followed down while it holds a single key
    (``{"budget": {"maxModelCalls": 50}}`` → ``budget.maxModelCalls``).
    """
    if fix is None or not fix.patch:
        return DIMENSION_PATHS.get(dimension, "")
    key = next(iter(fix.patch))
    parts, value = [key], fix.patch[key]
    while isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        parts.append(key)
        value = value[key]
    return ".".join(parts)


def grade_for(score: int) -> str:
    """Return the letter grade of a score (A ≥ 90, B ≥ 80, C ≥ 65, D ≥ 50, else F)."""
    for threshold, grade in GRADES:
        if score >= threshold:
            return grade
    return "F"


@dataclass
class _Scorer:
    """Collect points and findings for one dimension at a time."""

    loop: spec.Loop
    project: spec.Project | None
    agents: list[tuple[str, spec.AgentStep]]
    findings: list[Finding] = field(default_factory=list)

    def add(
        self,
        level: Level,
        dimension: str,
        message: str,
        hint: str | None = None,
        fix: Fix | None = None,
        path: str | None = None,
    ) -> None:
        where = path if path is not None else finding_path(dimension, fix)
        self.findings.append(Finding(level, dimension, message, hint, fix, where))

    @property
    def defaults(self) -> spec.ProjectDefaults | None:
        return self.project.defaults if self.project else None


def score(loop: spec.Loop, project: spec.Project | None = None) -> Report:
    """Score ``loop`` (with its project's defaults, if any) and return the report."""
    agents = [(path, step) for path, step in spec.iter_steps(loop.pipeline) if _is_agent(step)]
    scorer = _Scorer(loop, project, agents)
    points = {
        "verification": _verification(scorer),
        "budget": _budget(scorer),
        "termination": _termination(scorer),
        "persistence": _persistence(scorer),
        "trigger": _trigger(scorer),
        "recovery": _recovery(scorer),
        "observability": _observability(scorer),
    }
    dimensions = [
        Dimension(key, name, max(0, min(points[key], maximum)), maximum)
        for key, (name, maximum) in DIMENSIONS.items()
    ]
    total = sum(d.points for d in dimensions)
    if any(f.level == "block" for f in scorer.findings):
        total = min(total, BLOCKED_CAP)
    return Report(total, grade_for(total), dimensions, scorer.findings)


def _is_agent(step: Any) -> bool:
    return isinstance(step, spec.AgentStep)


# ── Verification: 25 ─────────────────────────────────────────────────────


def _verification_patch(s: _Scorer, makers: list[str]) -> dict[str, Any]:
    """Return the patch that adds a checker of ``makers``: with the budget's call
    and token limits raised to what one pass then needs, where they fall short."""
    verify = {
        "maker": makers,
        "checker": "Adversarial Verifier",
        "maxRounds": spec.DEFAULT_MAX_ROUNDS,
        "autoRetry": True,
    }
    checked = s.loop.model_copy(
        update={"verify": spec.Verify(maker=makers, checker="Adversarial Verifier")}
    )
    calls = sum(_calls_of_one_pass(checked))
    budget = spec.effective_budget(s.loop, s.project)
    raised: dict[str, int] = {}
    if budget.max_model_calls is not None and budget.max_model_calls < calls:
        raised["maxModelCalls"] = calls
    if budget.max_tokens is not None and budget.max_tokens < calls * MIN_OUTPUT:
        raised["maxTokens"] = calls * MIN_OUTPUT
    return {"verify": verify, **({"budget": raised} if raised else {})}


def _verification(s: _Scorer) -> int:
    loop, verify = s.loop, s.loop.verify
    if verify is None:
        enforced = bool(s.defaults and s.defaults.enforce_maker_checker)
        labels = [step.label for _, step in s.agents if step.label]
        fix = (
            Fix("Add Maker/Checker verification", _verification_patch(s, labels[-4:]))
            if labels
            else None
        )
        s.add(
            "block" if enforced else "warn",
            "verification",
            "Verification missing" + (" (the project enforces Maker/Checker)" if enforced else ""),
            "add 'verify:' naming the labels of the steps that make the output (maker) "
            "and a separate checker, e.g. the built-in 'Adversarial Verifier'",
            fix,
        )
        return 0
    points = 25
    subagents = {**(s.project.subagents if s.project else {}), **loop.subagents}
    makers = {step.label: step for _, step in s.agents if step.label in verify.maker}
    makers.update(_plan_makers(s, verify))
    for label, step in makers.items():
        maker_agent = subagents.get(step.subagent) if step.subagent else None
        if maker_agent is not None and maker_agent.role == "verifier":
            points -= 3
            s.add(
                "warn",
                "verification",
                f"Maker '{label}' runs as subagent '{step.subagent}', whose role is 'verifier'",
                "makers run as executors: give the maker an executor subagent and keep "
                "verifiers for checking",
            )
    for checker in verify.checkers:
        if checker in spec.BUILTIN_CHECKERS:
            points -= _self_preference(s, checker, loop.model, makers, subagents)
            continue
        agent = subagents.get(checker)
        if agent is None:
            points -= _self_preference(s, checker, loop.model, makers, subagents)
            # Any other name is the built-in adversarial verifier under that label
            # (the first release's form); a near miss of a subagent's name is a typo.
            near = _near_miss(checker, list(subagents))
            if near:
                points -= 3
                s.add(
                    "warn",
                    "verification",
                    f"Checker '{checker}' is not a subagent: the built-in adversarial verifier "
                    f"runs under that name (did you mean '{near}'?)",
                    f"write checker: {near} to use the subagent",
                )
            continue
        planners = [
            step.label or path
            for path, step in _plan_steps(s)
            if step.label in verify.maker and step.planner == checker
        ]
        if planners:
            s.add(
                "block",
                "verification",
                f"Checker '{checker}' is also the planner of maker '{planners[0]}': "
                "it would judge the plan it made",
                "use a separate verifier subagent or the built-in 'Adversarial Verifier'",
            )
            return 0
        writes = [c for c in agent.connectors if _writes(_connectors(s).get(c), agent.tools)]
        if writes:
            points -= 3
            s.add(
                "warn",
                "verification",
                f"Checker '{checker}' can call write tools (connector '{writes[0]}')",
                "a checker only needs to read: allow-list read tools under its 'tools:' "
                "or drop the connector",
            )
        if agent.role != "verifier":
            points -= 5
            s.add(
                "warn",
                "verification",
                f"Checker '{checker}' has role '{agent.role}', not 'verifier'",
                "give the checker subagent role: verifier so that it answers with a verdict",
            )
        checker_model = agent.model or loop.model
        twins = [
            label
            for label, step in makers.items()
            if _step_model(step, subagents, loop) == checker_model
            and _step_prompt(step, subagents) == (agent.prompt or "")
        ]
        same_agent = [label for label, step in makers.items() if step.subagent == checker]
        if same_agent:
            s.add(
                "block",
                "verification",
                f"Checker '{checker}' is also the subagent of maker "
                f"'{same_agent[0]}': it would check its own work",
                "use a separate verifier subagent or the built-in 'Adversarial Verifier'",
            )
            return 0
        if twins:
            points -= 13
            s.add(
                "warn",
                "verification",
                f"Weak Maker/Checker separation: checker '{checker}' has the same model "
                f"and prompt as maker '{twins[0]}'",
                "give the checker its own adversarial prompt and, ideally, another model",
            )
        else:
            points -= _self_preference(s, checker, checker_model, makers, subagents)
    if points == 25:
        s.add("ok", "verification", "Maker/Checker separation enforced")
    elif points > 0:
        s.add("ok", "verification", "Maker/Checker verification configured")
    return _checks_credit(s, verify, points)


#: Points that deterministic checks (``verify.checks``) give back, up to the dimension's 25.
CHECKS_CREDIT = 3


def _checks_credit(s: _Scorer, verify: spec.Verify, points: int) -> int:
    """Credit ``verify.checks``: a check that costs no model call and cannot be talked round
    offsets a checker's weaknesses (the same model as the makers, a near-miss name)."""
    count = len(verify.checks)
    if not count:
        return points
    s.add(
        "ok",
        "verification",
        f"{count} deterministic check{'s' if count != 1 else ''} "
        f"run{'s' if count == 1 else ''} before the checker (no model call)",
    )
    return min(25, points + CHECKS_CREDIT)


def _self_preference(
    s: _Scorer,
    checker: str,
    model: str | None,
    makers: dict[str, spec.AgentStep],
    subagents: dict[str, spec.SubAgent],
) -> int:
    """Flag a checker on the same model as one of its makers (an LLM judge favours its
    own model's answers); return the points it costs (3, else 0)."""
    if model is None:
        return 0
    same = [
        label for label, step in makers.items() if _step_model(step, subagents, s.loop) == model
    ]
    if not same:
        return 0
    builtin = checker in spec.BUILTIN_CHECKERS or checker not in subagents
    whose = (
        "the built-in checker runs on the loop's model unless LOOPKIT_CHECKER_MODEL names "
        "another; use a verifier subagent with its own model"
        if builtin
        else "give the checker subagent a model of another family (its 'model:')"
    )
    makers_named = ", ".join(f"'{label}'" for label in same)
    s.add(
        "warn",
        "verification",
        f"self-preference bias: checker '{checker}' runs on the same model as maker"
        f"{'s' if len(same) > 1 else ''} {makers_named} ({model})",
        f"an LLM judge favours answers from its own model: {whose}",
    )
    return 3


def _near_miss(name: str, names: list[str]) -> str | None:
    """Return the one of ``names`` that ``name`` is most likely a typo of, if any."""
    if not names:
        return None
    import difflib

    match = difflib.get_close_matches(name, names, n=1, cutoff=0.8)
    return match[0] if match else None


def _step_model(
    step: spec.AgentStep, subagents: dict[str, spec.SubAgent], loop: spec.Loop
) -> str | None:
    agent = subagents.get(step.subagent) if step.subagent else None
    return step.model or (agent.model if agent else None) or loop.model


def _step_prompt(step: spec.AgentStep, subagents: dict[str, spec.SubAgent]) -> str:
    agent = subagents.get(step.subagent) if step.subagent else None
    return agent.prompt or "" if agent else step.prompt


def _connectors(s: _Scorer) -> dict[str, spec.Connector]:
    return {**(s.project.connectors if s.project else {}), **s.loop.connectors}


def _plan_steps(s: _Scorer) -> list[tuple[str, spec.PlanStep]]:
    return [
        (path, step)
        for path, step in spec.iter_steps(s.loop.pipeline)
        if isinstance(step, spec.PlanStep)
    ]


def _template_steps(s: _Scorer) -> list[tuple[str, spec.AgentStep]]:
    """Return each plan template as the agent step it runs as (its executor subagent included)."""
    out = []
    for path, plan in _plan_steps(s):
        for name, template in plan.templates.items():
            step = spec.AgentStep(
                prompt=template.prompt,
                label=f"{plan.label or path} ({name})",
                subagent=template.subagent or plan.executor,
                model=template.model,
                skills=template.skills,
                connectors=template.connectors,
                tools=template.tools,
            )
            out.append((f"{path}.templates[{name!r}]", step))
    return out


def _plan_makers(s: _Scorer, verify: spec.Verify) -> dict[str, spec.AgentStep]:
    """Return the steps a plan maker runs, by ``<plan label> (<template>)``."""
    return {
        step.label: step
        for path, step in _template_steps(s)
        if step.label and step.label.rsplit(" (", 1)[0] in verify.maker
    }


def _scope(s: _Scorer, step: spec.AgentStep) -> tuple[list[str], list[str]]:
    """Return a step's connectors and allow-list, its subagent's included."""
    subagents = {**(s.project.subagents if s.project else {}), **s.loop.subagents}
    agent = subagents.get(step.subagent) if step.subagent else None
    connectors = list(dict.fromkeys([*step.connectors, *(agent.connectors if agent else [])]))
    return connectors, step.tools or (agent.tools if agent else [])


# ── Budget: 20 ───────────────────────────────────────────────────────────

_BUDGET_POINTS = {"maxTokens": 7, "maxCostUsd": 7, "maxDurationMinutes": 6}


def _budget(s: _Scorer) -> int:
    budget = spec.effective_budget(s.loop, s.project)
    dims = budget.dimensions()
    limits = [d for d in dims if d in _BUDGET_POINTS]
    missing = {k: v for k, v in DEFAULT_BUDGET.items() if k not in limits}
    if not limits:
        s.add(
            "warn",
            "budget",
            "Add budget controls for production",
            "cap tokens, cost and wall time under 'budget:' so that a runaway run stops "
            "cleanly as budget_exceeded",
            Fix("Add budget controls", {"budget": dict(DEFAULT_BUDGET)}),
        )
        return 0
    count = len(dims)
    s.add(
        "ok",
        "budget",
        f"Budget controls configured ({count} dimension{'s' if count != 1 else ''})",
    )
    if missing:
        names = ", ".join(missing)
        s.add(
            "warn",
            "budget",
            f"Budget has no limit on {names}",
            "a limit on tokens, cost and wall time each stops a different kind of runaway",
            Fix("Complete the budget", {"budget": missing}),
        )
    points = sum(_BUDGET_POINTS[d] for d in limits)
    calls = sum(_calls_of_one_pass(s.loop))
    least = calls * MIN_OUTPUT
    if budget.max_tokens is not None and budget.max_tokens < least:
        s.add(
            "block",
            "budget",
            f"maxTokens {budget.max_tokens} is below the {least} tokens one pass needs at the "
            f"least ({calls} model calls x {MIN_OUTPUT} answer tokens)",
            f"the engine sends a call only with room for {MIN_OUTPUT} answer tokens, prompts "
            "not counted: every run would stop as budget_exceeded before its first pass ends",
            Fix("Raise maxTokens", {"budget": {"maxTokens": DEFAULT_BUDGET["maxTokens"]}}),
        )
        points -= _BUDGET_POINTS["maxTokens"]
    return points


# ── Termination: 10 ──────────────────────────────────────────────────────


def _termination(s: _Scorer) -> int:
    points = 0
    budget = spec.effective_budget(s.loop, s.project)
    for path, plan in _plan_steps(s):
        name = plan.label or path
        if plan.max_iterations is None or plan.max_steps is None:
            s.add(
                "warn",
                "termination",
                f"Plan step '{name}' relies on default limits (maxIterations "
                f"{plan.effective_max_iterations}, maxSteps {plan.effective_max_steps})",
                "say maxIterations and maxSteps on the plan step: they bound how much "
                "work the planner can decide to do",
                path=path,
            )
        else:
            s.add(
                "ok",
                "termination",
                f"Plan step '{name}' is bounded (at most {plan.max_iterations * plan.max_steps} "
                "planned steps)",
                path=path,
            )
    short_of_rounds = _iterations(s, budget)
    points += _model_calls(s, budget)
    verify = s.loop.verify
    if verify is None:
        points += 4  # no retry loop to bound
    elif verify.max_rounds is not None:
        points += 4
        s.add("ok", "termination", f"Verification rounds capped (maxRounds: {verify.max_rounds})")
    else:
        points += 2
        s.add(
            "warn",
            "termination",
            f"maxRounds not set (the default, {spec.DEFAULT_MAX_ROUNDS}, applies)",
            "say verify.maxRounds explicitly so that readers know when the loop gives up",
            Fix("Set maxRounds", {"verify": {"maxRounds": spec.DEFAULT_MAX_ROUNDS}}),
        )
    return points - (2 if short_of_rounds else 0)


def _iterations(s: _Scorer, budget: spec.Budget) -> bool:
    """Judge ``maxIterations`` against the rounds; return whether it cuts them short."""
    limit = budget.max_iterations
    if limit is None:
        return False
    verify = s.loop.verify
    rounds = verify.effective_max_rounds if verify and verify.effective_auto_retry else 1
    if limit < rounds:
        s.add(
            "warn",
            "termination",
            f"maxIterations {limit} is below maxRounds {rounds}: the run stops "
            "before a retry round",
            "an iteration is one pass of the loop (the pipeline and one verification round); "
            "a failed round that wants a retry ends the run as budget_exceeded instead. "
            "Raise maxIterations to maxRounds, or lower maxRounds",
            Fix("Allow every round", {"budget": {"maxIterations": rounds}}),
        )
        return True
    s.add("ok", "termination", "Max iterations set")
    return False


def _model_calls(s: _Scorer, budget: spec.Budget) -> int:
    """Score ``maxModelCalls``: 6 when it caps the run and one pass fits under it."""
    limit = budget.max_model_calls
    if limit is None:
        capped_by_time = budget.max_duration_minutes is not None
        s.add(
            "warn",
            "termination",
            "Model calls not capped"
            + (" (only wall time bounds the run)" if capped_by_time else ""),
            "set budget.maxModelCalls to cap the model calls (tool-use turns and checkers "
            "included) of a run",
            Fix("Cap model calls", {"budget": {"maxModelCalls": DEFAULT_MAX_MODEL_CALLS}}),
        )
        return 3 if capped_by_time else 0
    steps, checkers = _calls_of_one_pass(s.loop)
    needed = steps + checkers
    if limit < needed:
        rounds = s.loop.verify.effective_max_rounds if s.loop.verify else 1
        what = f"{steps} agent step{'s' if steps != 1 else ''}" + (
            f", {checkers} checker{'s' if checkers != 1 else ''}" if checkers else ""
        )
        s.add(
            "block",
            "termination",
            f"maxModelCalls {limit} is below the {needed} model calls one pass needs ({what})",
            "every run would stop as budget_exceeded before its first pass ends; tool-use "
            "turns, retries and retry rounds need more",
            Fix(
                "Allow the calls",
                {"budget": {"maxModelCalls": max(DEFAULT_MAX_MODEL_CALLS, needed * rounds)}},
            ),
        )
        return 0
    s.add("ok", "termination", f"Model calls capped (maxModelCalls: {limit})")
    return 6


def _calls_of_one_pass(loop: spec.Loop) -> tuple[int, int]:
    """Return the fewest model calls any first pass makes: agent steps, checkers.

    A step counts once (a plan step: its planner's call), a ``when:`` its
    smaller branch; the checkers count when some maker always runs (the
    engine skips a checker that has no maker output to judge). The agent
    steps of ``onPass`` count too: a pass that ends well runs them.
    """
    always: set[str] = set()

    def fewest(steps: list[Any], certain: bool) -> int:
        total = 0
        for step in steps:
            if isinstance(step, spec.AgentStep | spec.PlanStep):
                total += 1
                if certain and step.label:
                    always.add(step.label)
            elif isinstance(step, spec.ParallelStep):
                total += fewest(step.parallel, certain)
            elif isinstance(step, spec.SequentialStep):
                total += fewest(step.sequential, certain)
            elif isinstance(step, spec.ConditionalStep):
                total += min(fewest(step.then, False), fewest(step.else_ or [], False))
        return total

    steps = fewest(loop.pipeline, True)
    # A pass that ends well runs onPass too (its agent steps are model calls of the run).
    steps += fewest(loop.on_pass, False)
    verify = loop.verify
    if verify is None:
        return steps, 0
    agents = {
        step.label
        for _, step in spec.iter_steps(loop.pipeline)
        if isinstance(step, spec.AgentStep) and step.label
    }
    # A maker naming a group or a plan step is always judged (as the engine does).
    judged = any(maker in always or maker not in agents for maker in verify.maker)
    return steps, len(verify.checkers) if judged else 0


# ── State persistence: 10 ────────────────────────────────────────────────


def _persistence(s: _Scorer) -> int:
    memory = s.loop.memory or (s.defaults.memory if s.defaults else None)
    if memory is None:
        s.add(
            "warn",
            "persistence",
            "State persistence recommended",
            "add 'memory:' so that the loop remembers what earlier runs did and found",
            Fix("Persist state", {"memory": {"store": "filesystem", "path": ".loopkit/state"}}),
        )
        return 0
    store = memory.effective_store
    if store == "memory":
        s.add(
            "warn",
            "persistence",
            "State persistence recommended: the 'memory' store forgets everything "
            "when the process ends",
            "use store: filesystem or store: database",
            Fix("Persist state", {"memory": {"store": "filesystem", "path": ".loopkit/state"}}),
        )
        return 3
    where = memory.path or memory.url or spec.DEFAULT_MEMORY_PATH
    if store == "database":
        where = memory.namespace or "database"
    s.add("ok", "persistence", f"State persisted ({store}: {where})")
    return 10


# ── Trigger safety: 15 ───────────────────────────────────────────────────


def _trigger(s: _Scorer) -> int:
    trigger = s.loop.effective_trigger
    points = 12
    if isinstance(trigger, spec.WebhookTrigger):
        points = 0
        if trigger.secret_env:
            points += 8
            s.add(
                "ok", "trigger", f"Webhook deliveries are signed (secret in ${trigger.secret_env})"
            )
        else:
            s.add(
                "warn",
                "trigger",
                "Unsigned webhook: anyone who finds the URL can start runs",
                "set trigger.secretEnv to the environment variable holding the signing secret",
                Fix("Require signed deliveries", {"trigger": {"secretEnv": DEFAULT_SECRET_ENV}}),
            )
        if trigger.event in EVENTS_WITH_ACTIONS and not trigger.actions:
            s.add(
                "warn",
                "trigger",
                f"Runs on every '{trigger.event}' action (closed, labeled, edited...)",
                "list the actions that matter under trigger.actions",
                Fix(
                    "Filter actions",
                    {"trigger": {"actions": _default_actions(trigger.event)}},
                ),
            )
        else:
            points += 4
    elif isinstance(trigger, spec.CronTrigger):
        points = 8
        if trigger.timezone:
            points += 4
            s.add("ok", "trigger", f"Schedule '{trigger.schedule}' in {trigger.timezone}")
        else:
            s.add(
                "warn",
                "trigger",
                f"Schedule '{trigger.schedule}' has no time zone (UTC applies)",
                "set trigger.timezone (an IANA name such as 'Europe/Paris')",
                Fix("Set the time zone", {"trigger": {"timezone": "UTC"}}),
            )
        if trigger.schedule.split()[0] in ("*", "*/1", "*/2", "*/3", "*/4"):
            points -= 4
            s.add(
                "warn",
                "trigger",
                "The schedule starts a run more often than every 5 minutes",
                "an agent loop that runs this often is usually better driven by an event",
            )
    elif isinstance(trigger, spec.EventTrigger):
        if trigger.loop == s.loop.name:
            s.add(
                "block",
                "trigger",
                "The loop triggers itself on completion: it would never stop",
                "trigger it from another loop, or from a named event",
            )
            points = 0
        elif trigger.loop is not None and not trigger.status:
            points = 9
            s.add(
                "warn",
                "trigger",
                f"Runs after every outcome of '{trigger.loop}', failures included",
                "list the outcomes that should start this loop under trigger.status",
                Fix("Run after success only", {"trigger": {"status": ["succeeded"]}}),
            )
        else:
            s.add("ok", "trigger", "Triggered by " + _event_source(trigger))
    else:
        s.add("ok", "trigger", "Started by a person (manual trigger)")
    return points + _gates(s, trigger)


def _event_source(trigger: spec.EventTrigger) -> str:
    if trigger.loop is not None:
        return f"'{trigger.loop}' ({', '.join(trigger.status)})"
    return f"the event '{trigger.event}'"


def _default_actions(event: str) -> list[str]:
    return {
        "pull_request": ["opened", "synchronize", "reopened"],
        "issues": ["opened", "reopened"],
        "release": ["published"],
        "issue_comment": ["created"],
        "workflow_run": ["completed"],
        "check_run": ["completed"],
        "check_suite": ["completed"],
    }.get(event, ["opened"])


def _gates(s: _Scorer, trigger: Any) -> int:
    """Award 3 points unless an unattended loop takes write actions with no approval gate.

    A write in ``onPass`` of a loop with ``verify:`` runs only after the checker
    passed the result: verification gates it (issue 18), no approval is asked for.
    """
    writers = _write_steps(s)
    delivered = [label for path, label in writers if path.startswith("onPass")]
    if s.loop.verify is not None and delivered:
        writers = [(path, label) for path, label in writers if not path.startswith("onPass")]
        s.add(
            "ok",
            "trigger",
            f"Write actions in onPass ({delivered[0]}) run only after verification passes",
        )
    if not writers:
        return 3
    has_gate = any(isinstance(step, spec.ApprovalStep) for _, step in spec.iter_loop_steps(s.loop))
    if has_gate:
        s.add("ok", "trigger", "A human approves before write actions")
        return 3
    if isinstance(trigger, spec.ManualTrigger):
        return 3
    first = writers[0]
    s.add(
        "warn",
        "trigger",
        f"Write actions run unattended ({first[1]}): no approval gate",
        "add an 'approve:' step before the step that changes things",
        _gate_fix(s, first[0]),
        path=first[0],
    )
    return 0


def _write_steps(s: _Scorer) -> list[tuple[str, str]]:
    connectors = {**(s.project.connectors if s.project else {}), **s.loop.connectors}
    writers = []
    for path, step in spec.iter_loop_steps(s.loop):
        if isinstance(step, spec.ToolStep):
            if _tool_writes(connectors.get(step.connector), step.tool_name):
                writers.append((path, step.label or path))
            continue
        if not isinstance(step, spec.AgentStep):
            continue
        for name in step.connectors:
            connector = connectors.get(name)
            if _writes(connector, step.tools):
                writers.append((path, step.label or path))
                break
    return writers


def _tool_writes(connector: Any, tool: str) -> bool:
    """Whether a tool step's one tool writes (an HTTP POST/PUT/PATCH/DELETE, an MCP tool
    whose name does not read as a read)."""
    if isinstance(connector, spec.HttpConnector):
        operation = connector.operations.get(tool)
        return operation is not None and operation.method in _WRITE_METHODS
    if isinstance(connector, spec.McpConnector):
        return not _reads(tool)
    return False


def _writes(connector: Any, allowed: list[str]) -> bool:
    if isinstance(connector, spec.HttpConnector):
        return any(
            op.method in _WRITE_METHODS and (not allowed or name in allowed)
            for name, op in connector.operations.items()
        )
    if isinstance(connector, spec.McpConnector):
        # An MCP server's tools are unknown until it runs: assume it can write
        # unless the step restricts itself to read-looking tools.
        return not allowed or any(not _reads(tool) for tool in allowed)
    return False


_READ_WORDS = frozenset(
    {"get", "list", "read", "search", "fetch", "query", "find", "view", "show"}
    | {"log", "diff", "status", "describe", "select"}
)


def _reads(tool: str) -> bool:
    words = tool.replace("-", "_").lower().split("_")
    return any(word in _READ_WORDS for word in words)


def _gate_fix(s: _Scorer, path: str) -> Fix | None:
    """Propose the step list (the pipeline, or onPass / onFail) with an approval gate
    just before the step at ``path``."""
    top = path.split("[", 1)[0]
    attribute = dict(spec.ACTION_LISTS).get(top, "pipeline")
    pipeline = [to_data(step) for step in getattr(s.loop, attribute)]
    if _labels_in(pipeline, "Approve changes"):
        return None
    gate = {
        "approve": "Proceed with the changes this run proposes?",
        "label": "Approve changes",
        "approvers": ["owner", "admin"],
        "timeoutMinutes": 240,
        "onTimeout": "reject",
    }
    # "pipeline[0].then[2]" → (list key, index) per level. The gate goes into the
    # deepest list that runs in order: inside a parallel group it would run beside
    # the writing step instead of before it, so it goes before the group.
    parts = [(key, int(index)) for key, index in re.findall(r"(\w+)\[(\d+)\]", path)]
    depth = max(i for i, (key, _) in enumerate(parts) if key != "parallel")
    container: list[Any] = pipeline
    for level in range(depth):
        container = container[parts[level][1]][parts[level + 1][0]]
    container.insert(parts[depth][1], gate)
    return Fix("Add an approval gate", {top: pipeline})


def _labels_in(data: Any, label: str) -> bool:
    if isinstance(data, dict):
        return data.get("label") == label or any(_labels_in(v, label) for v in data.values())
    if isinstance(data, list):
        return any(_labels_in(v, label) for v in data)
    return False


# ── Failure recovery: 10 ─────────────────────────────────────────────────


def _every_agent(s: _Scorer) -> list[tuple[str, spec.AgentStep]]:
    """The agent steps of the pipeline, then those of onPass and onFail."""
    actions = [
        (path, step)
        for path, step in spec.iter_loop_steps(s.loop)
        if _is_agent(step) and not path.startswith("pipeline")
    ]
    return [*s.agents, *actions]


def _recovery(s: _Scorer) -> int:
    agents = [step for _, step in _every_agent(s)]
    total = len(agents) or 1
    timed = sum(1 for step in agents if step.timeout is not None)
    retried = sum(1 for step in agents if step.retries is not None)
    points = round(3 * timed / total) + round(3 * retried / total)
    bare = [
        (path, step)
        for path, step in _every_agent(s)
        if step.timeout is None or step.retries is None
    ]
    if not bare:
        s.add("ok", "recovery", "Every agent step has a timeout and retries")
    else:
        s.add(
            "warn",
            "recovery",
            f"{len(bare)} of {len(agents)} agent step{'s' if len(agents) != 1 else ''} "
            "without a timeout or retries",
            f"set timeout (seconds) and retries on each agent step, e.g. timeout: "
            f"{DEFAULT_TIMEOUT_SECONDS}, retries: {DEFAULT_RETRIES}",
            _recovery_fix(s),
            path=bare[0][0],
        )
    verify = s.loop.verify
    if verify is None or verify.effective_auto_retry:
        points += 4
        if verify is not None:
            s.add("ok", "recovery", "Failed verification retries automatically (autoRetry)")
    else:
        s.add(
            "warn",
            "recovery",
            "autoRetry is off: a failed verification ends the run",
            "set verify.autoRetry: true so that makers get the checker's feedback",
            Fix("Retry with feedback", {"verify": {"autoRetry": True}}),
        )
    return points


def _recovery_fix(s: _Scorer) -> Fix:
    def patch(data: Any) -> Any:
        if isinstance(data, list):
            return [patch(item) for item in data]
        if not isinstance(data, dict):
            return data
        out = {
            k: patch(v) if k in ("parallel", "sequential", "then", "else") else v
            for k, v in data.items()
        }
        if "prompt" in out:
            out.setdefault("timeout", DEFAULT_TIMEOUT_SECONDS)
            out.setdefault("retries", DEFAULT_RETRIES)
        return out

    lists = {"pipeline": s.loop.pipeline}
    lists.update({key: getattr(s.loop, attr) for key, attr in spec.ACTION_LISTS})
    return Fix(
        "Add timeouts and retries",
        {key: [patch(to_data(step)) for step in steps] for key, steps in lists.items() if steps},
    )


# ── Observability and scope: 10 ──────────────────────────────────────────


def _observability(s: _Scorer) -> int:
    points = 0
    if s.loop.description:
        points += 2
    else:
        s.add(
            "warn",
            "observability",
            "No description",
            "say in one sentence what the loop does and for whom",
            Fix("Describe the loop", {"description": f"What {s.loop.name} does, and for whom."}),
        )
    unlabelled = [path for path, step in _every_agent(s) if not step.label]
    if not unlabelled:
        points += 3
        s.add("ok", "observability", "Every agent step is labelled")
    else:
        s.add(
            "warn",
            "observability",
            f"{len(unlabelled)} agent step{'s' if len(unlabelled) != 1 else ''} without a label "
            f"({unlabelled[0]})",
            "label every step: labels name steps in run events, logs and verification",
            path=unlabelled[0],
        )
    scoped = [(path, *_scope(s, step)) for path, step in [*_every_agent(s), *_template_steps(s)]]
    with_connectors = [(path, tools) for path, connectors, tools in scoped if connectors]
    open_ended = [path for path, tools in with_connectors if not tools]
    if not open_ended:
        points += 3
        if with_connectors:
            s.add("ok", "observability", "Steps with connectors allow only the tools they need")
    else:
        s.add(
            "warn",
            "observability",
            f"{len(open_ended)} step{'s' if len(open_ended) != 1 else ''} may call every tool "
            f"of its connectors ({open_ended[0]})",
            "list the tools each step needs under 'tools:' (least privilege)",
            path=open_ended[0],
        )
    secrets = list(_inline_secrets(s))
    if secrets:
        s.add(
            "block",
            "observability",
            f"A secret is written inline ({secrets[0]})",
            "reference an environment variable instead, e.g. 'Bearer ${GITHUB_TOKEN}'",
        )
    else:
        points += 2
    return points


_SECRET_HEADERS = ("authorization", "x-api-key", "api-key", "x-auth-token", "private-token")


def _inline_secrets(s: _Scorer) -> Iterator[str]:
    for name, connector in s.loop.connectors.items():
        headers: dict[str, str] = dict(getattr(connector, "headers", {}) or {})
        if isinstance(connector, spec.McpConnector):
            headers.update(connector.env)
        for key, value in headers.items():
            secretish = key.lower() in _SECRET_HEADERS or any(
                word in key.upper() for word in ("TOKEN", "SECRET", "PASSWORD", "API_KEY")
            )
            if secretish and value and "${" not in value:
                yield f"connectors.{name} {key}"
        url = getattr(connector, "url", None) or ""
        if "://" in url and "@" in url.split("://", 1)[1].split("/", 1)[0]:
            userinfo = url.split("://", 1)[1].split("@", 1)[0]
            if ":" in userinfo and "${" not in userinfo:
                yield f"connectors.{name} url password"


# ── Checker calibration (from the project state, not the YAML) ───────────


@dataclass(frozen=True)
class Calibration:
    """The last ``loopkit calibrate`` of a loop, as the LRS shows it.

    ``agreement`` is 0..1 over ``examples`` judged; ``current`` says the loop
    (and its checkers) are unchanged since (``loopkit.calibrate.last_calibration``
    compares content hashes).
    """

    at: float
    agreement: float
    examples: int
    false_passes: int
    false_fails: int
    current: bool = True


def percent(fraction: float) -> int:
    """Return ``fraction`` as a whole percentage that reads 100 only when it is 1."""
    value = int(fraction * 100 + 0.5)
    return min(value, 99) if fraction < 1 else value


def calibration_findings(calibration: Calibration) -> list[Finding]:
    """Return the findings a calibration adds to the verification dimension (no points)."""
    import time

    day = time.strftime("%Y-%m-%d", time.gmtime(calibration.at))
    fp = calibration.false_passes
    message = (
        f"Checker calibrated {day}: {percent(calibration.agreement)}% agreement on "
        f"{calibration.examples} example{'s' if calibration.examples != 1 else ''}, "
        f"{fp} false pass{'es' if fp != 1 else ''}"
    )
    findings = [
        Finding(
            "warn" if fp else "ok",
            "verification",
            message,
            (
                f"the checker passed {fp} example{'s' if fp != 1 else ''} a person failed: "
                "sharpen its prompt (or give it another model) and calibrate again"
                if fp
                else None
            ),
            path="verify",
        )
    ]
    if not calibration.current:
        findings.append(
            Finding(
                "warn",
                "verification",
                f"The loop changed since its checker was calibrated ({day})",
                "the figures may no longer hold: run 'loopkit calibrate LOOP --labels FILE' again",
                path="verify",
            )
        )
    return findings


def with_calibration(report: Report, calibration: Calibration | None) -> Report:
    """Return ``report`` with the calibration's findings after the verification ones.

    The score does not change: it rates the loop file, which a calibration
    does not change (and the web app scores the YAML alone).
    """
    if calibration is None:
        return report
    findings = list(report.findings)
    at = max(
        (i + 1 for i, f in enumerate(findings) if f.dimension == "verification"),
        default=0,
    )
    findings[at:at] = calibration_findings(calibration)
    return Report(report.score, report.grade, report.dimensions, findings)

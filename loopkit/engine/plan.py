"""The ``plan`` step: a planner decides the next steps at run time, within guard rails.

Each iteration the planner (a subagent with role ``planner``, or the built-in
planner prompt) reads the task and the results so far and answers one JSON
object::

    {"steps": [{"template": "search", "input": "find the failing test"}],
     "done": false, "summary": null}

The steps must come from the step's ``templates``, at most ``maxSteps`` of
them. They run in order as executor agent steps (the template's subagent,
else the step's ``executor``), labelled ``<plan label> <iteration>.<n>
<template>`` so later steps and the checker can read them. ``done: false``
asks to plan again after seeing their results; the planner is asked at most
``maxIterations`` times, and a plan that asks for more at the last iteration
has its steps run and then the plan step ends (``limit_reached``). Every
planner and executor call goes through the run's budget.

A planner answer that is not valid (not JSON, an unknown template, too many
steps) is sent back once with the problem; a second invalid answer fails the
step. A dry run does not read the planner's answer: it plans each template
once, then finishes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jinja2 import TemplateError

from loopkit import spec
from loopkit.engine.agent import add_cost, call_model, render, run_agent
from loopkit.engine.context import StepResult
from loopkit.engine.events import PlanMade, StepFinished, StepStarted, Tokens
from loopkit.errors import RunError
from loopkit.memory import Checkpoint
from loopkit.templating import compile_prompt

if TYPE_CHECKING:
    from loopkit.engine.pipeline import Outcome
    from loopkit.engine.runner import Run

DEFAULT_PLANNER_PROMPT = (
    "You are the planner of an automated agent loop. You do not do the work yourself: "
    "you choose which of the allowed steps to run next, and what each should do."
)
#: Corrections the planner gets per iteration before the step fails.
MAX_CORRECTIONS = 1


@dataclass
class PlannedStep:
    template: str
    input: str


@dataclass
class Plan:
    steps: list[PlannedStep] = field(default_factory=list)
    done: bool = True
    summary: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": [{"template": s.template, "input": s.input} for s in self.steps],
            "done": self.done,
            "summary": self.summary,
        }


def parse_plan(text: str, templates: dict[str, spec.PlanTemplate], max_steps: int) -> Plan:
    """Read the planner's answer; raise ``ValueError`` with a message meant for the planner."""
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`").removeprefix("json").strip()
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the answer is not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(data, dict):
        raise ValueError("the answer must be one JSON object with 'steps' and 'done'")
    raw_steps = data.get("steps") or []
    if not isinstance(raw_steps, list):
        raise ValueError("'steps' must be a list")
    steps: list[PlannedStep] = []
    for index, item in enumerate(raw_steps):
        if isinstance(item, str):
            item = {"template": item}
        if not isinstance(item, dict):
            raise ValueError(f"steps[{index}] must be an object with 'template' and 'input'")
        name = item.get("template")
        if name not in templates:
            allowed = ", ".join(templates)
            raise ValueError(
                f"steps[{index}] uses the template {name!r}, which is not allowed "
                f"(choose among: {allowed})"
            )
        value = item.get("input", "")
        steps.append(PlannedStep(str(name), value if isinstance(value, str) else json.dumps(value)))
    if len(steps) > max_steps:
        raise ValueError(f"the plan has {len(steps)} steps; at most {max_steps} are allowed")
    done = data.get("done")
    summary = data.get("summary")
    return Plan(
        steps=steps,
        done=True if not steps else bool(done) if isinstance(done, bool) else True,
        summary=summary if isinstance(summary, str) and summary.strip() else None,
    )


def dry_run_plan(templates: dict[str, spec.PlanTemplate], max_steps: int) -> Plan:
    """The dry run's plan: each template once, in declared order, then finish."""
    steps = [PlannedStep(name, f"[dry run] {name}") for name in list(templates)[:max_steps]]
    return Plan(steps=steps, done=True, summary=None)


def literal(text: str) -> str:
    """Return a Jinja2 template that renders exactly ``text`` (model text is never a template)."""
    return text.replace("{", "{{ '{' }}")


def _planner_messages(
    run: Run,
    step: spec.PlanStep,
    key: str,
    task: str,
    results: list[dict[str, Any]],
    iteration: int,
) -> list[dict[str, Any]]:
    planner = run.subagent(step.planner)
    system = (
        render(run, planner.prompt, key, "planner prompt")
        if planner and planner.prompt
        else DEFAULT_PLANNER_PROMPT
    )
    left = step.effective_max_iterations - iteration
    allowed = "\n".join(f"- {name}: {t.description}" for name, t in step.templates.items())
    system += (
        f"\n\nAllowed steps (use only these template names):\n{allowed}\n\n"
        "Answer with one JSON object and nothing else:\n"
        '{"steps": [{"template": "<name>", "input": "<what this step must do>"}], '
        '"done": true, "summary": "<when done: the answer to the task>"}\n'
        f'Plan at most {step.effective_max_steps} steps. Set "done" to false only if you '
        "must see these steps' results before planning more; "
        + (
            f"you may plan {left} more time(s) after this one."
            if left > 0
            else "this is your last plan: nothing planned after it will run."
        )
        + ' When the task is complete, answer {"steps": [], "done": true, "summary": "..."}.'
    )
    user = f"Task:\n{task}"
    if run.ctx.round > 1 and run.ctx.feedback:
        user += "\n\nA reviewer rejected the previous result. Address every issue:\n" + "\n".join(
            f"- {issue}" for issue in run.ctx.feedback
        )
    if results:
        user += "\n\nResults so far:" + "".join(
            f"\n\n### {r['label']} ({r['template']}: {r['input']})\n{r['output']}" for r in results
        )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


async def _ask_planner(
    run: Run,
    step: spec.PlanStep,
    key: str,
    round_: int,
    model: str,
    messages: list[dict[str, Any]],
    iteration: int,
) -> tuple[Plan, Tokens, float | None, int]:
    """Return the planner's valid plan (from its checkpoint when resuming) and its usage."""
    ck = f"r{round_}:{key}.plan[{iteration}]"
    saved = run.checkpoints.get(ck)
    if saved is not None:
        tokens = Tokens.from_dict(saved.tokens)
        run.budget.record(tokens, saved.cost, calls=saved.requests)
        plan = parse_plan(json.dumps(saved.data["plan"]), step.templates, step.effective_max_steps)
        return plan, tokens, saved.cost, saved.requests
    tokens, cost, requests = Tokens(), 0.0, 0
    cost_total: float | None = cost
    name = step.label or key
    for attempt in range(MAX_CORRECTIONS + 1):
        response = await call_model(
            run,
            model=model,
            messages=messages,
            key=key,
            label=step.label,
            role="planner",
            round_=round_,
            kind="plan",
            response_format={"type": "json_object"},
        )
        requests += 1
        tokens.add(response.tokens)
        cost_total = add_cost(cost_total, response.cost)
        if run.llm.dry_run:
            plan = dry_run_plan(step.templates, step.effective_max_steps)
            break
        try:
            plan = parse_plan(response.content, step.templates, step.effective_max_steps)
            break
        except ValueError as exc:
            if attempt == MAX_CORRECTIONS:
                raise RunError(
                    f"{name}: the planner's answer was not a valid plan twice in a row ({exc})",
                    step=name,
                    code="invalid_plan",
                ) from None
            messages = [
                *messages,
                {"role": "assistant", "content": response.content},
                {"role": "user", "content": f"That is not a valid plan: {exc}. Answer again."},
            ]
    await run.save_checkpoint(
        Checkpoint(
            key=ck,
            label=step.label,
            tokens=tokens.as_dict(),
            cost=cost_total,
            requests=requests,
            data={"plan": plan.as_dict()},
        )
    )
    return plan, tokens, cost_total, requests


def _executor_step(
    run: Run,
    step: spec.PlanStep,
    key: str,
    label: str,
    planned: PlannedStep,
    task: str,
    results: list[dict[str, Any]],
) -> spec.AgentStep:
    template = step.templates[planned.template]
    variables = {**run.ctx.variables, "task": task, "input": planned.input, "results": results}
    try:
        prompt = compile_prompt(template.prompt)(variables)
    except TemplateError as exc:
        raise RunError(
            f"{key}: the template '{planned.template}' failed: {exc.message or exc}",
            step=label,
            code="template_error",
        ) from None
    return spec.AgentStep(
        prompt=literal(prompt),
        label=label,
        subagent=template.subagent or step.executor,
        model=template.model,
        skills=template.skills,
        connectors=template.connectors,
        tools=template.tools,
        max_tool_rounds=template.max_tool_rounds,
    )


async def run_plan(run: Run, step: spec.PlanStep, key: str, round_: int) -> Outcome:
    """Plan, run the planned steps, and plan again until done or at the iteration limit."""
    from loopkit.engine.pipeline import Outcome

    name = step.label or key
    if round_ > 1 and name not in run.makers and name in run.ctx.results:
        return Outcome()  # only makers run again in later rounds
    planner = run.subagent(step.planner)
    model = run.model_for(step.model or (planner.model if planner else None))
    task = render(run, step.plan, key, "plan")
    run.emit(StepStarted(key=key, label=step.label, kind="plan", round=round_, model=model))
    started = time.perf_counter()
    total = Outcome()
    results: list[dict[str, Any]] = []
    summary: str | None = None
    limit = step.effective_max_iterations
    prefix = f"{name} r{round_}" if round_ > 1 else name
    for iteration in range(1, limit + 1):
        messages = _planner_messages(run, step, key, task, results, iteration)
        plan, tokens, cost, _ = await _ask_planner(
            run, step, key, round_, model, messages, iteration
        )
        total.tokens.add(tokens)
        total.cost = add_cost(total.cost, cost)
        labels = [f"{prefix} {iteration}.{i + 1} {p.template}" for i, p in enumerate(plan.steps)]
        limit_reached = not plan.done and iteration == limit
        run.emit(
            PlanMade(
                key=key,
                label=step.label,
                iteration=iteration,
                max_iterations=limit,
                steps=[
                    {"template": p.template, "input": p.input, "label": label}
                    for p, label in zip(plan.steps, labels, strict=True)
                ],
                done=plan.done,
                reason=(
                    f"the planner asked for more after {limit} of {limit} plan(s) "
                    "(maxIterations): these steps run, then the plan step ends"
                    if limit_reached
                    else None
                ),
                limit_reached=limit_reached,
            )
        )
        for index, (planned, label) in enumerate(zip(plan.steps, labels, strict=True)):
            agent_step = _executor_step(run, step, key, label, planned, task, results)
            result = await run_agent(run, agent_step, f"{key}.plan[{iteration}][{index}]", round_)
            total.tokens.add(result.tokens)
            total.cost = add_cost(total.cost, result.cost)
            total.agents += 1
            results.append(
                {
                    "label": label,
                    "template": planned.template,
                    "input": planned.input,
                    "output": result.output,
                }
            )
        if plan.done:
            summary = plan.summary
            break
    output = summary or "\n\n".join(f"## {r['label']}\n{r['output']}" for r in results)
    duration = (time.perf_counter() - started) * 1000
    run.ctx.record(
        StepResult(
            key=key,
            label=step.label,
            output=output,
            tokens=total.tokens,
            cost=total.cost,
            duration_ms=duration,
            round=round_,
        )
    )
    run.emit(
        StepFinished(
            key=key,
            label=step.label,
            kind="plan",
            round=round_,
            model=model,
            tokens=total.tokens,
            cost=total.cost,
            duration_ms=duration,
            output=output,
            agents=total.agents,
        )
    )
    return total

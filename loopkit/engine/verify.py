"""Maker/Checker verification: the checker judges the makers' outputs.

The checker is a subagent with the role ``verifier`` (its own prompt and
model) or the built-in adversarial verifier. It is shown the task, the run's
inputs (clipped), and each maker's instruction as rendered for it this round
(its prompt template rendered, without what the engine appended: the schema,
the feedback note, the previous answer) and output. It is asked for a JSON verdict
``{"pass": bool, "score": 0..1, "issues": [str]}`` (``response_format`` where
the provider supports it) and the answer is parsed defensively: an
unparseable verdict is a failed round with the reason, never a crash. A
round passes when the checker says pass *and* the score reaches ``passScore``.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopkit import spec
from loopkit.engine.agent import (
    add_cost,
    call_model,
    render,
    run_tool_calls,
    tool_round_limit,
    tool_rounds_exceeded,
)
from loopkit.engine.checks import run_checks
from loopkit.engine.events import Tokens
from loopkit.errors import RunError
from loopkit.memory import Checkpoint
from loopkit.structured import json_object
from loopkit.tools import Tool

if TYPE_CHECKING:
    from loopkit.engine.runner import Run

ADVERSARIAL_PROMPT = """\
You are an adversarial verifier. Other agents (the makers) produced the work
below for the task described. Try hard to find what is wrong, missing,
unsupported or contradictory. Be specific: every issue must say what to fix.
Score the work from 0 (unusable) to 1 (nothing left to fix)."""

VERDICT_INSTRUCTIONS = """\
Answer with one JSON object and nothing else:
{"pass": true or false, "score": a number from 0 to 1, "issues": ["...", ...]}"""


@dataclass
class Verdict:
    """A checker's judgement; ``reason`` says why a round failed without issues."""

    passed: bool
    score: float | None
    issues: list[str] = field(default_factory=list)
    reason: str | None = None
    #: What ``verify.checks`` did this round (``CheckOutcome.as_dict``; engine/checks.py).
    checks: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "score": self.score,
            "issues": self.issues,
            "reason": self.reason,
            "checks": self.checks,
        }


def parse_verdict(text: str, pass_score: float) -> Verdict:
    """Read a checker's answer into a ``Verdict``; never raise."""
    data = json_object(text or "")
    if not isinstance(data, dict):
        snippet = (text or "").strip().replace("\n", " ")[:120]
        return Verdict(False, None, [], f"the checker's verdict is not JSON: {snippet!r}")
    raw_score = data.get("score")
    score: float | None
    try:
        score = None if raw_score is None or isinstance(raw_score, bool) else float(raw_score)
    except (TypeError, ValueError):
        score = None
    if score is not None:
        if score > 1 and score <= 100:
            score = score / 100  # a percentage
        score = min(max(score, 0.0), 1.0)
    raw_issues = data.get("issues", [])
    if isinstance(raw_issues, str):
        raw_issues = [raw_issues]
    issues = [
        i if isinstance(i, str) else json.dumps(i)
        for i in (raw_issues if isinstance(raw_issues, list) else [])
    ]
    said = next((data[k] for k in ("pass", "passed", "ok", "approved") if k in data), None)
    if score is None:
        return Verdict(False, None, issues, "the checker's verdict has no numeric 'score'")
    if isinstance(said, str):
        said = said.strip().lower() in ("true", "yes", "pass", "passed")
    checker_passed = bool(said) if said is not None else True
    passed = checker_passed and score >= pass_score
    reason = None
    if not passed and not issues:
        reason = (
            f"score {score:.2f} is below passScore {pass_score:g}"
            if score < pass_score
            else "the checker did not pass the work"
        )
    return Verdict(passed, score, issues, reason)


def checker_messages(run: Run, verify: spec.Verify, name: str) -> tuple[str, list[dict[str, Any]]]:
    """Return the checker's model and messages for the makers' current outputs."""
    agent = run.subagent(name)
    system = ADVERSARIAL_PROMPT
    if agent is not None and agent.prompt:
        system = render(run, agent.prompt, f"subagents[{name!r}]", "checker prompt")
    model = run.model_for(agent.model if agent else None, checker=True)
    task = run.loop.description or f"the loop '{run.loop.name}'"
    parts = [f"Task: {task}", ""]
    inputs = run.ctx.inputs
    if inputs:
        parts.append("Inputs:")
        parts.extend(f"- {name}: {_clip(value)}" for name, value in inputs.items())
        parts.append("")
    for maker in verify.maker:
        instruction = _instruction(run, maker)
        parts.append(f"## {maker}")
        if instruction:
            parts.append("Instruction:")
            parts.append(instruction)
        parts.append("Output:")
        parts.append(run.ctx.output_of(maker) or "(no output)")
        parts.append("")
    parts.append(VERDICT_INSTRUCTIONS)
    return model, [
        {"role": "system", "content": system},
        {"role": "user", "content": "\n".join(parts)},
    ]


#: How much of one input value the checker is shown (the makers' instructions
#: already hold what they read of it).
INPUT_CHARS = 1000


def _clip(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) <= INPUT_CHARS:
        return text
    return f"{text[:INPUT_CHARS]}... ({len(text) - INPUT_CHARS} more characters)"


def _instruction(run: Run, maker: str) -> str:
    """Return the maker's prompt as rendered for its last run (rendered now if it was
    answered from a checkpoint; empty for a group or a prompt that cannot render)."""
    found = run.ctx.instructions.get(maker)
    if found is None and maker in run.prompts:
        with contextlib.suppress(RunError):
            found = render(run, run.prompts[maker], maker)
    return found or ""


async def verify_round(
    run: Run, verify: spec.Verify, round_: int
) -> tuple[Verdict, Tokens, float | None, float]:
    """Ask every checker about this round; return the combined verdict, tokens, cost, ms."""
    ck = f"r{round_}:verify"
    checkpoint = run.checkpoints.get(ck)
    if checkpoint is not None:
        tokens = Tokens.from_dict(checkpoint.tokens)
        run.budget.record(tokens, checkpoint.cost, calls=checkpoint.requests)
        v = checkpoint.data
        return (
            Verdict(
                v["passed"], v["score"], list(v["issues"]), v.get("reason"), v.get("checks", [])
            ),
            tokens,
            checkpoint.cost,
            checkpoint.duration_ms,
        )
    started = time.perf_counter()
    checked = await run_checks(run, verify, round_)  # deterministic checks: no model call
    tokens, cost, requests = Tokens(), 0.0, 0
    total_cost: float | None = cost
    verdicts: list[Verdict] = []
    for name in [] if checked.blocking else verify.checkers:
        run.cancel.raise_if_cancelled()
        model, messages = checker_messages(run, verify, name)
        tools, extra = await _checker_tools(run, name)
        if extra:
            messages[0] = {"role": "system", "content": f"{messages[0]['content']}\n\n{extra}"}
        by_name = {t.name: t for t in tools}
        schemas = [t.openai_schema() for t in tools]
        max_rounds = tool_round_limit(run, None, name)
        tool_rounds = 0
        while True:
            response = await call_model(
                run,
                model=model,
                messages=messages,
                key=f"verify.{name}",
                label=name,
                role="checker",
                round_=round_,
                kind="checker",
                tools=schemas,
                response_format=None if schemas else {"type": "json_object"},
            )
            requests += 1
            tokens.add(response.tokens)
            total_cost = add_cost(total_cost, response.cost)
            if not response.tool_calls:
                break
            tool_rounds += 1
            if tool_rounds > max_rounds:
                raise tool_rounds_exceeded(
                    f"checker '{name}'", name, max_rounds, f"the subagent '{name}'"
                )
            messages = [
                *messages,
                *await run_tool_calls(run, f"verify.{name}", name, response, by_name),
            ]
        verdicts.append(parse_verdict(response.content, verify.effective_pass_score))
    if checked.blocking:  # a blocker or major check failed: the checker is not asked
        verdict = Verdict(False, None, checked.issues, checked.reason)
    else:  # minor failures are reported with the checker's issues
        verdict = _combine(verdicts, verify.checkers)
        verdict.issues = [*verdict.issues, *checked.issues]
    verdict.checks = checked.as_events()
    duration = (time.perf_counter() - started) * 1000
    await run.save_checkpoint(
        Checkpoint(
            key=ck,
            label="verify",
            tokens=tokens.as_dict(),
            cost=total_cost,
            duration_ms=duration,
            requests=requests,
            data=verdict.as_dict(),
        )
    )
    return verdict, tokens, total_cost, duration


async def _checker_tools(run: Run, name: str) -> tuple[list[Tool], str]:
    """Return a verifier subagent's tools and skill instructions (none for the built-in)."""
    agent = run.subagent(name)
    if run.tool_provider is None or agent is None or not (agent.connectors or agent.skills):
        return [], ""
    as_step = spec.AgentStep(prompt="verify", label=name, subagent=name)
    tools = await run.tool_provider.tools_for(as_step, run.loop)
    return tools, await run.tool_provider.instructions_for(as_step, run.loop)


def _combine(verdicts: list[Verdict], names: list[str]) -> Verdict:
    """Return the verdict of several checkers: all must pass; each issue names its checker."""
    if len(verdicts) == 1:
        return verdicts[0]
    scores = [v.score for v in verdicts]
    known = [s for s in scores if s is not None]
    return Verdict(
        passed=all(v.passed for v in verdicts),
        score=min(known) if len(known) == len(scores) else None,
        issues=[f"{name}: {i}" for name, v in zip(names, verdicts, strict=True) for i in v.issues],
        reason="; ".join(
            f"{name}: {v.reason}" for name, v in zip(names, verdicts, strict=True) if v.reason
        )
        or None,
    )

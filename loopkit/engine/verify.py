"""Maker/Checker verification: the checker judges the makers' outputs.

The checker is a subagent with the role ``verifier`` (its own prompt and
model) or the built-in adversarial verifier. It is asked for a JSON verdict
``{"pass": bool, "score": 0..1, "issues": [str]}`` (``response_format`` where
the provider supports it) and the answer is parsed defensively: an
unparseable verdict is a failed round with the reason, never a crash. A
round passes when the checker says pass *and* the score reaches ``passScore``.
"""

from __future__ import annotations

import json
import re
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
from loopkit.engine.events import Tokens
from loopkit.memory import Checkpoint
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

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "score": self.score,
            "issues": self.issues,
            "reason": self.reason,
        }


def _json_object(text: str) -> Any:
    text = text.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    candidates = [text]
    if fenced:
        candidates.insert(0, fenced.group(1).strip())
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return None


def parse_verdict(text: str, pass_score: float) -> Verdict:
    """Read a checker's answer into a ``Verdict``; never raise."""
    data = _json_object(text or "")
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
    for maker in verify.maker:
        prompt = run.prompts.get(maker, "")
        parts.append(f"## {maker}")
        if prompt:
            parts.append(f"Instruction: {prompt}")
        parts.append("Output:")
        parts.append(run.ctx.output_of(maker) or "(no output)")
        parts.append("")
    parts.append(VERDICT_INSTRUCTIONS)
    return model, [
        {"role": "system", "content": system},
        {"role": "user", "content": "\n".join(parts)},
    ]


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
            Verdict(v["passed"], v["score"], list(v["issues"]), v.get("reason")),
            tokens,
            checkpoint.cost,
            checkpoint.duration_ms,
        )
    started = time.perf_counter()
    tokens, cost, requests = Tokens(), 0.0, 0
    total_cost: float | None = cost
    verdicts: list[Verdict] = []
    for name in verify.checkers:
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
    verdict = _combine(verdicts)
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


def _combine(verdicts: list[Verdict]) -> Verdict:
    if len(verdicts) == 1:
        return verdicts[0]
    scores = [v.score for v in verdicts]
    known = [s for s in scores if s is not None]
    return Verdict(
        passed=all(v.passed for v in verdicts),
        score=min(known) if len(known) == len(scores) else None,
        issues=[i for v in verdicts for i in v.issues],
        reason="; ".join(v.reason for v in verdicts if v.reason) or None,
    )

"""Maker/Checker verification: the checker judges the makers' outputs.

The checker is a subagent with the role ``verifier`` (its own prompt and
model) or the built-in adversarial verifier. It is shown the task, the run's
inputs (clipped), and each maker's instruction as rendered for it this round
(its prompt template rendered, without what the engine appended: the schema,
the feedback note, the previous answer) and output; from round 2 also its own
issues of the previous round and a unified diff of each maker's output since
then (bounded). It is asked for a JSON verdict ``{"pass", "score", "issues"}``
whose issues carry a severity (blocker, major, minor), an optional location
and whether they are new (``response_format`` where the provider supports
it); the answer is parsed defensively: an unparseable verdict is a failed
round with the reason, never a crash.

A round passes when the score reaches ``passScore`` and no issue has a
severity in ``blockOn`` (default blocker and major); a checker that fails the
work without naming any issue fails the round. ``Verification`` keeps the
rounds of one run: it notices a round whose blocking issues all repeat an
earlier round's (stalled), keeps the best round by score, and applies
``onFail`` (fail, accept-best, escalate) when no round passes.
"""

from __future__ import annotations

import contextlib
import difflib
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
from loopkit.engine.checks import run_checks
from loopkit.engine.context import StepResult
from loopkit.engine.events import Tokens
from loopkit.errors import ApprovalRejected, RunError
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
{"pass": true or false, "score": a number from 0 to 1, "issues": [{"issue": "what is wrong \
and what to fix", "severity": "blocker" or "major" or "minor", "location": "where, if it \
applies", "new": true or false}, ...]}
Severity: "blocker" when the work is wrong or unusable until it is fixed, "major" for a real \
defect that must be fixed, "minor" for a nit or an improvement the work can do without.
"new": false for an issue you raised in an earlier round that is still not fixed, else true."""

#: How many characters of one maker's diff (round 2 on) the checker is shown.
DIFF_CHARS = 4000
#: How many issues of a round, and characters of one, the escalation question quotes.
QUESTION_ISSUES = 10
QUESTION_ISSUE_CHARS = 300

_SEVERITY_WORDS = {
    "blocker": "blocker",
    "blocking": "blocker",
    "block": "blocker",
    "critical": "blocker",
    "fatal": "blocker",
    "major": "major",
    "high": "major",
    "medium": "major",
    "moderate": "major",
    "serious": "major",
    "error": "major",
    "minor": "minor",
    "low": "minor",
    "nit": "minor",
    "nitpick": "minor",
    "trivial": "minor",
    "info": "minor",
    "suggestion": "minor",
    "cosmetic": "minor",
}
_TEXT_KEYS = ("issue", "text", "message", "description", "title", "summary", "problem")
_LOCATION_KEYS = ("location", "where", "file", "path", "line")


@dataclass
class Issue:
    """One thing a checker found: its text, severity, where, and whether it is new.

    ``severity`` is ``blocker``, ``major`` or ``minor``; an issue the checker gave
    no severity (a plain string, the first release's form) is major when the
    checker failed the work and minor when it passed it (``tagged`` is then
    false). ``new`` is the checker's own word (None when it said nothing);
    ``repeated`` is the engine's finding that an earlier round raised it.
    """

    text: str
    severity: str = "major"
    location: str | None = None
    new: bool | None = None
    checker: str | None = None
    tagged: bool = True
    #: Its severity is in ``blockOn``: it fails the round and goes back to the makers.
    blocks: bool = False
    repeated: bool = False

    @property
    def shown(self) -> str:
        """The issue as events, feedback and errors show it (with its place and checker)."""
        where = f" (at {self.location})" if self.location else ""
        return f"{self.text}{where}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "severity": self.severity,
            "location": self.location,
            "new": self.new,
            "checker": self.checker,
            "tagged": self.tagged,
            "blocks": self.blocks,
            "repeated": self.repeated,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Issue:
        return cls(
            text=str(data.get("text", "")),
            severity=str(data.get("severity", "major")),
            location=data.get("location"),
            new=data.get("new"),
            checker=data.get("checker"),
            tagged=bool(data.get("tagged", True)),
            blocks=bool(data.get("blocks", False)),
            repeated=bool(data.get("repeated", False)),
        )


@dataclass
class Verdict:
    """A checker's judgement.

    ``issues`` are the blocking ones (their severity is in ``blockOn``: what a
    failed round sends back to the makers), ``minor`` those below (reported,
    not retried), each as shown (with its location, and its checker's name
    when there are several); ``findings`` all of them, structured. ``reason``
    says why a round failed without a blocking issue.
    """

    passed: bool
    score: float | None
    issues: list[str] = field(default_factory=list)
    reason: str | None = None
    minor: list[str] = field(default_factory=list)
    findings: list[Issue] = field(default_factory=list)
    #: What ``verify.checks`` did this round (``CheckOutcome.as_dict``; engine/checks.py).
    checks: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "score": self.score,
            "issues": self.issues,
            "reason": self.reason,
            "minor": self.minor,
            "findings": [i.as_dict() for i in self.findings],
            "checks": self.checks,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        """Read ``as_dict``'s data back (a checkpoint; an older one has no findings)."""
        return cls(
            passed=bool(data["passed"]),
            score=data["score"],
            issues=list(data.get("issues") or []),
            reason=data.get("reason"),
            minor=list(data.get("minor") or []),
            findings=[Issue.from_dict(i) for i in data.get("findings") or []],
            checks=list(data.get("checks") or []),
        )

    @property
    def blocking(self) -> list[Issue]:
        """The findings whose severity blocks (``issues`` shows them)."""
        return [i for i in self.findings if i.blocks]

    def feedback(self) -> list[str]:
        """What the makers are told after this (failed) round: the blocking issues,
        else the reason with the minor issues (a score below ``passScore``)."""
        if self.issues:
            return list(self.issues)
        return [self.reason or "the checker did not pass the work", *self.minor]


def parse_verdict(
    text: str,
    pass_score: float,
    block_on: tuple[str, ...] | list[str] = spec.DEFAULT_BLOCK_ON,
    checker: str | None = None,
) -> Verdict:
    """Read a checker's answer into a ``Verdict``; never raise.

    The round passes when the score reaches ``pass_score`` and no issue's
    severity is in ``block_on``; a checker that says fail without naming any
    issue fails it; one that says fail over minor issues only does not.
    """
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
    said = next((data[k] for k in ("pass", "passed", "ok", "approved") if k in data), None)
    if isinstance(said, str):
        said = said.strip().lower() in ("true", "yes", "pass", "passed")
    checker_passed = bool(said) if said is not None else True
    raw_issues = data.get("issues", [])
    if isinstance(raw_issues, str | dict):
        raw_issues = [raw_issues]
    findings = [
        _issue(raw, checker_passed, checker)
        for raw in (raw_issues if isinstance(raw_issues, list) else [])
    ]
    findings = [i for i in findings if i.text]
    for found in findings:
        found.blocks = found.severity in block_on
    blocking = [i.shown for i in findings if i.blocks]
    minor = [i.shown for i in findings if not i.blocks]
    if score is None:
        return Verdict(
            False,
            None,
            blocking,
            "the checker's verdict has no numeric 'score'",
            minor,
            findings,
        )
    passed = score >= pass_score and not blocking and (checker_passed or bool(findings))
    reason = None
    if not passed and not blocking:
        reason = (
            f"score {score:.2f} is below passScore {pass_score:g}"
            if score < pass_score
            else "the checker did not pass the work"
        )
    return Verdict(passed, score, blocking, reason, minor, findings)


def _issue(raw: Any, checker_passed: bool, checker: str | None) -> Issue:
    """Read one issue: a string (severity from the verdict) or an object."""
    untagged = "minor" if checker_passed else "major"
    if not isinstance(raw, dict):
        text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)
        return Issue(text.strip(), untagged, checker=checker, tagged=False)
    said: Any = next((raw[k] for k in _TEXT_KEYS if str(raw.get(k) or "").strip()), None)
    text = said if isinstance(said, str) and said.strip() else json.dumps(raw, ensure_ascii=False)
    word = next((raw[k] for k in ("severity", "level", "priority") if k in raw), None)
    severity = _SEVERITY_WORDS.get(str(word).strip().lower()) if word is not None else None
    location = next((raw[k] for k in _LOCATION_KEYS if raw.get(k) not in (None, "")), None)
    new = raw.get("new")
    if not isinstance(new, bool):
        repeated = raw.get("repeated")
        new = (not repeated) if isinstance(repeated, bool) else None
    return Issue(
        text=text.strip(),
        severity=severity or untagged,
        location=str(location) if location is not None else None,
        new=new,
        checker=checker,
        tagged=severity is not None,
    )


def normalise(text: str) -> str:
    """Return an issue's text for comparison: lower case, punctuation and spacing dropped."""
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


def checker_messages(
    run: Run, verify: spec.Verify, name: str, previous: RoundRecord | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """Return the checker's model and messages for the makers' current outputs.

    With ``previous`` (round 2 on), each maker's output is followed by a unified
    diff against the output judged then, and the checker's own issues of that
    round come before the verdict instructions.
    """
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
        output = run.ctx.output_of(maker)
        parts.append(f"## {maker}")
        if instruction:
            parts.append("Instruction:")
            parts.append(instruction)
        parts.append("Output:")
        parts.append(output or "(no output)")
        if previous is not None:
            parts.append(_changes(maker, previous, output))
        parts.append("")
    if previous is not None:
        parts.extend(_previous_issues(previous, name))
    parts.append(VERDICT_INSTRUCTIONS)
    return model, [
        {"role": "system", "content": system},
        {"role": "user", "content": "\n".join(parts)},
    ]


def _changes(maker: str, previous: RoundRecord, output: str | None) -> str:
    """Describe how ``maker``'s output changed since ``previous`` (a bounded unified diff)."""
    before = previous.outputs.get(maker)
    since = f"round {previous.round}"
    if before == output:
        return f"(Unchanged since {since}.)"
    lines = list(
        difflib.unified_diff(
            (before or "").splitlines(),
            (output or "").splitlines(),
            f"{maker}, {since}",
            f"{maker}, now",
            n=2,
            lineterm="",
        )
    )
    shown, used = [], 0
    for index, line in enumerate(lines):
        if used + len(line) + 1 > DIFF_CHARS:
            shown.append(f"... ({len(lines) - index} more diff lines)")
            break
        shown.append(line)
        used += len(line) + 1
    return f"Changes since {since} (unified diff):\n" + "\n".join(shown)


def _previous_issues(previous: RoundRecord, name: str) -> list[str]:
    """The checker's own issues of the previous round, for it to say which still hold."""
    verdict = previous.verdict
    mine = [i for i in verdict.findings if i.checker in (None, name)]
    score = "?" if verdict.score is None else f"{verdict.score:.2f}"
    head = f"Your verdict in round {previous.round} (score {score}):"
    if not mine:
        lines = [head, f"- no issues ({verdict.reason or 'none named'})"]
    else:
        lines = [head, *(f"- [{i.severity}] {i.shown}" for i in mine)]
    return [
        *lines,
        "The makers have seen these issues since. Judge the work as it is now: do not raise "
        'an issue that has been fixed; raise one that is still there again with "new": false.',
        "",
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
    run: Run, verify: spec.Verify, round_: int, previous: RoundRecord | None = None
) -> tuple[Verdict, Tokens, float | None, float]:
    """Ask every checker about this round; return the combined verdict, tokens, cost, ms.

    ``previous`` is the last round judged before this one (its verdict and the
    outputs it judged), shown to each checker from round 2 on.
    """
    ck = f"r{round_}:verify"
    checkpoint = run.checkpoints.get(ck)
    if checkpoint is not None:
        tokens = Tokens.from_dict(checkpoint.tokens)
        run.budget.record(tokens, checkpoint.cost, calls=checkpoint.requests)
        return (
            Verdict.from_dict(checkpoint.data),
            tokens,
            checkpoint.cost,
            checkpoint.duration_ms,
        )
    started = time.perf_counter()
    checked = await run_checks(run, verify, round_)  # deterministic checks: no model call
    tokens, cost, requests = Tokens(), 0.0, 0
    total_cost: float | None = cost
    # One verdict per judge, in order, with its name (``combine`` joins them).
    names: list[str] = []
    verdicts: list[Verdict] = []
    blocked = checked.blocks(verify.effective_block_on)
    for name in [] if blocked else verify.checkers:
        run.cancel.raise_if_cancelled()
        model, messages = checker_messages(run, verify, name, previous)
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
        names.append(name)
        verdicts.append(
            parse_verdict(
                response.content, verify.effective_pass_score, verify.effective_block_on, name
            )
        )
    if blocked:  # a blocking check failed: the checker is not asked
        verdict = Verdict(False, None, reason=checked.reason)
    else:
        verdict = combine(verdicts, names, verify.effective_require)
    # The checks' failures are issues like the checker's: blocking ones fail the round.
    for failure in checked.failures:
        issue = Issue(
            text=failure.as_issue(),  # its message says where
            severity=failure.severity,
            checker="checks",
            blocks=failure.severity in verify.effective_block_on,
        )
        verdict.findings.append(issue)
        (verdict.issues if issue.blocks else verdict.minor).append(issue.shown)
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


def combine(verdicts: list[Verdict], names: list[str], require: str = "all") -> Verdict:
    """Return the verdict of several checkers; each issue names its checker.

    ``require: all``: every checker must pass and the score is the lowest;
    ``majority``: more than half must pass and the score is the lower median.
    """
    if len(verdicts) == 1:
        return verdicts[0]
    passes = sum(1 for v in verdicts if v.passed)
    passed = passes == len(verdicts) if require == "all" else passes * 2 > len(verdicts)
    scores = [v.score for v in verdicts]
    known = sorted(s for s in scores if s is not None)
    score: float | None
    if require == "all":
        score = known[0] if len(known) == len(scores) else None
    else:
        score = known[(len(known) - 1) // 2] if known else None
    findings = [i for v in verdicts for i in v.findings]
    pairs = list(zip(names, verdicts, strict=True))
    reason = "; ".join(f"{name}: {v.reason}" for name, v in pairs if v.reason) or None
    if passed:
        reason = None
    elif require == "majority" and reason is None:
        reason = f"{passes} of {len(verdicts)} checkers passed the work (a majority must)"
    return Verdict(
        passed=passed,
        score=score,
        issues=[f"{name}: {i}" for name, v in pairs for i in v.issues],
        reason=reason,
        minor=[f"{name}: {i}" for name, v in pairs for i in v.minor],
        findings=findings,
    )


# ── The rounds of one run: convergence, the best round, onFail ───────────


@dataclass
class RoundRecord:
    """One judged round: its verdict, what each maker's output was, and the run's
    step results then (to hand back the round's outputs if it is the best)."""

    round: int
    verdict: Verdict
    outputs: dict[str, str | None]
    results: dict[str, StepResult]
    stalled: bool = False


class Verification:
    """The Maker/Checker rounds of one run (``Run._rounds`` drives it).

    ``judge`` asks the checkers about a round (showing them the previous round)
    and marks the blocking issues that repeat an earlier round's; ``give_up``
    applies ``onFail`` when no round passes. ``outcome`` (``passed``,
    ``skipped``, ``stalled``, ``failed``), ``best_round`` and ``accepted``
    (``best``, ``approved``) are what ``run_finished`` reports.
    """

    def __init__(self, run: Run, verify: spec.Verify) -> None:
        self.run = run
        self.verify = verify
        self.history: list[RoundRecord] = []
        self.outcome: str | None = None
        self.best_round: int | None = None
        self.accepted: str | None = None
        #: Why an escalation was not approved (the run's error says it).
        self.refusal: str | None = None

    async def judge(self, round_: int) -> tuple[Verdict, Tokens, float | None, float, bool]:
        """Judge this round; return its verdict, tokens, cost, ms and whether it stalled.

        A failed round stalls (with ``stallOnRepeat``, the default) when it has
        blocking issues and each repeats one of an earlier round's blocking
        issues (the same text once case, spacing and punctuation are set aside,
        from the same checker) or the checker marked it not new.
        """
        previous = self.history[-1] if self.history else None
        verdict, tokens, cost, ms = await verify_round(self.run, self.verify, round_, previous)
        earlier = {_key(i) for r in self.history for i in r.verdict.blocking}
        for found in verdict.blocking:
            found.repeated = _key(found) in earlier or (previous is not None and found.new is False)
        stalled = (
            not verdict.passed
            and previous is not None
            and self.verify.effective_stall_on_repeat
            and bool(verdict.blocking)
            and all(i.repeated for i in verdict.blocking)
        )
        self.history.append(
            RoundRecord(
                round=round_,
                verdict=verdict,
                outputs={m: self.run.ctx.output_of(m) for m in self.verify.maker},
                results=dict(self.run.ctx.results),
                stalled=stalled,
            )
        )
        if verdict.passed:
            self.outcome, self.best_round = "passed", round_
        return verdict, tokens, cost, ms, stalled

    def best(self) -> RoundRecord | None:
        """The best round judged: the highest score, then the fewest blocking issues,
        then the latest."""
        if not self.history:
            return None
        return max(
            self.history,
            key=lambda r: (
                -1.0 if r.verdict.score is None else r.verdict.score,
                -len(r.verdict.issues),
                r.round,
            ),
        )

    async def give_up(self, round_: int, stalled: bool) -> str:
        """No round passed: keep the best round's outputs and apply ``onFail``; return
        the run's status (``succeeded`` when the best round is accepted)."""
        self.outcome = "stalled" if stalled else "failed"
        best = self.best()
        if best is None:
            return "verification_failed"
        self.best_round = best.round
        for result in best.results.values():  # later steps and the result read these
            self.run.ctx.record(result)
        on_fail = self.verify.effective_on_fail
        if on_fail == "accept-best":
            self.accepted = "best"
            return "succeeded"
        if on_fail == "escalate" and await self._escalate(round_, best):
            self.accepted = "approved"
            return "succeeded"
        return "verification_failed"

    async def _escalate(self, round_: int, best: RoundRecord) -> bool:
        """Ask a person, through the run's approver, whether to accept the best round."""
        from loopkit.engine.pipeline import run_approval

        gate = spec.ApprovalStep(approve=_literal(self.question(best)), label=ESCALATION_LABEL)
        try:
            await run_approval(self.run, gate, ESCALATION_KEY, round_)
        except ApprovalRejected as exc:
            self.refusal = exc.reason
            return False
        return True

    def question(self, best: RoundRecord) -> str:
        """The escalation's question: what happened, what approving means, each round."""
        rounds = len(self.history)
        why = (
            "the checker repeated issues of an earlier round (stalled)"
            if self.outcome == "stalled"
            else f"no round passed in {rounds} round(s)"
        )
        score = "?" if best.verdict.score is None else f"{best.verdict.score:.2f}"
        lines = [
            f"Verification did not pass: {why}. Accept the best round, round {best.round} "
            f"(score {score}), as the run's result? Approve to succeed with round "
            f"{best.round}'s outputs; reject to fail the run.",
        ]
        for record in self.history:
            v = record.verdict
            mark = "PASS" if v.passed else "FAIL"
            shown = "?" if v.score is None else f"{v.score:.2f}"
            lines.append(f"Round {record.round}: {mark}, score {shown}")
            for issue in v.findings[:QUESTION_ISSUES]:
                text = issue.shown
                if len(text) > QUESTION_ISSUE_CHARS:
                    text = text[:QUESTION_ISSUE_CHARS] + "..."
                who = f"{issue.checker}: " if len(self.verify.checkers) > 1 else ""
                again = " (repeated)" if issue.repeated else ""
                lines.append(f"- [{issue.severity}] {who}{text}{again}")
            if len(v.findings) > QUESTION_ISSUES:
                lines.append(f"- ... and {len(v.findings) - QUESTION_ISSUES} more issue(s)")
            if v.reason and not v.issues:
                lines.append(f"- {v.reason}")
        return "\n".join(lines)

    def failure(self, error: str | None) -> tuple[str | None, str]:
        """The error and code of a run that ended ``verification_failed``."""
        code = "stalled" if self.outcome == "stalled" else "verification_failed"
        last = self.history[-1] if self.history else None
        if self.outcome == "stalled" and last is not None:
            error = (
                f"stalled at round {last.round}: the checker repeated its issues "
                f"({'; '.join(last.verdict.issues)})"
            )
        if self.refusal:
            error = f"{error} (the best round was not accepted: {self.refusal})"
        return error, code


#: The escalation gate's step key and label (events, checkpoints, the web's approval row).
ESCALATION_KEY = "verify.escalate"
ESCALATION_LABEL = "Verification escalation"


def _key(issue: Issue) -> tuple[str | None, str]:
    return issue.checker, normalise(issue.text)


def _literal(text: str) -> str:
    """Return a template that renders as ``text`` exactly (the gate renders its question)."""
    if "{" not in text:
        return text
    return "{{ " + json.dumps(text, ensure_ascii=False) + " }}"

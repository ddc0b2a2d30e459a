"""A loop as a GitHub agentic workflow (gh-aw): markdown with YAML front matter.

The front matter comes from the trigger, model, connectors, memory and time
budget; the body from the pipeline's prompts, one section per step. What a
gh-aw workflow cannot say comes back as notes (docs/import-export.md).
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

from loopkit import spec
from loopkit.importers.base import Labels, Note
from loopkit.importers.gh_aw import ENGINES, EXPRESSION_PATH, GITHUB_MCP_URL


def export(loop: spec.Loop) -> tuple[str, list[Note]]:
    """Return ``loop`` as a gh-aw workflow (markdown with front matter) and what was lost."""
    return _Exporter(loop).run()


_JINJA_EXPR = re.compile(r"\{\{\s*(.*?)\s*\}\}", re.S)
_STEP_OUT = re.compile(r"^steps(?:\[['\"](.+?)['\"]\]|\.([A-Za-z_]\w*))\.output$")
_FEEDBACK_BLOCK = re.compile(r"\{%-?\s*if\s+feedback\s*-?%\}.*?\{%-?\s*endif\s*-?%\}", re.S)


class _Exporter:
    def __init__(self, loop: spec.Loop) -> None:
        self.loop = loop
        self.notes: list[Note] = []
        self.labels = Labels()

    def lost(self, message: str, where: str = "") -> None:
        note = Note(message, where)
        if note not in self.notes:
            self.notes.append(note)

    def run(self) -> tuple[str, list[Note]]:
        loop = self.loop
        front: dict[str, Any] = {}
        if loop.description:
            front["description"] = loop.description
        front["on"] = self.on()
        front["permissions"] = "read-all"
        engine = self.engine()
        if engine:
            front["engine"] = engine
        tools, servers = self.tools()
        if tools:
            front["tools"] = tools
        if servers:
            front["mcp-servers"] = servers
        budget = loop.budget
        if budget is not None and budget.max_duration_minutes:
            front["timeout-minutes"] = math.ceil(budget.max_duration_minutes)
        if budget is not None and (
            budget.max_tokens
            or budget.max_cost_usd
            or budget.max_model_calls
            or budget.max_iterations
        ):
            self.lost(
                "budget limits other than maxDurationMinutes (tokens, cost, model calls, "
                "iterations) have no gh-aw counterpart",
                "budget",
            )
        text = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=1000)
        text = re.sub(r"^'on':", "on:", text, flags=re.M)
        body = [f"# {loop.name}", ""]
        if loop.description:
            body += [loop.description, ""]
        agent_steps = [
            s for s, _ in spec.iter_steps(loop.pipeline) if isinstance(s, spec.AgentStep)
        ]
        if (
            len(loop.pipeline) == 1
            and len(agent_steps) == 1
            and isinstance(loop.pipeline[0], spec.AgentStep)
        ):
            body += [self.prompt_text(loop.pipeline[0]), ""]
        else:
            body += ["Work through these steps in order; each section is one step.", ""]
            body += self.sections(loop.pipeline, "pipeline", 2)
        if loop.verify is not None:
            body += self.verify_section()
        if loop.on_pass:
            body += ["## When the work is checked", "", *self.sections(loop.on_pass, "onPass", 3)]
            self.lost(
                "onPass steps became instructions at the end: they run in the same "
                "agent, not as separate actions after a checker",
                "onPass",
            )
        if loop.on_fail:
            self.lost("onFail steps are left out: a gh-aw workflow has no failure path", "onFail")
        if loop.memory is not None:
            self.lost(
                "memory became gh-aw's cache-memory: files the agent keeps, not each step's output",
                "memory",
            )
        return f"---\n{text}---\n" + "\n".join(body).rstrip() + "\n", self.notes

    def on(self) -> dict[str, Any]:
        trigger, loop = self.loop.trigger, self.loop
        on: dict[str, Any] = {}
        if isinstance(trigger, spec.WebhookTrigger):
            on[trigger.event] = {"types": list(trigger.actions)} if trigger.actions else None
            if trigger.secret_env:
                self.lost(
                    "secretEnv is not needed: GitHub delivers the event itself", "trigger.secretEnv"
                )
        elif isinstance(trigger, spec.CronTrigger):
            on["schedule"] = [{"cron": trigger.schedule}]
            if trigger.timezone and trigger.timezone != "UTC":
                self.lost(
                    f"the timezone {trigger.timezone} is lost: GitHub's schedules run in UTC",
                    "trigger.timezone",
                )
        elif isinstance(trigger, spec.EventTrigger):
            self.lost(
                "an event trigger (another loop finishing, a custom event) has no gh-aw "
                "counterpart: the workflow is started by hand",
                "trigger",
            )
        if loop.inputs or not on:
            inputs = {}
            for name, entry in loop.inputs.items():
                item: dict[str, Any] = {}
                if entry.description:
                    item["description"] = entry.description
                if entry.required:
                    item["required"] = True
                if entry.default is not None:
                    item["default"] = entry.default
                if entry.type in ("boolean", "number"):
                    item["type"] = entry.type
                inputs[name] = item or None
            on["workflow_dispatch"] = {"inputs": inputs} if inputs else None
        return on

    def engine(self) -> dict[str, Any] | None:
        model = self.loop.model
        models = {
            s.model
            for s, _ in spec.iter_steps(self.loop.pipeline)
            if isinstance(s, spec.AgentStep) and s.model
        }
        if models - {model}:
            self.lost("per-step models are lost: one engine runs the whole workflow", "pipeline")
        if not model:
            return None
        provider, _, name = model.partition("/")
        engine_id = {v: k for k, v in ENGINES.items()}.get(provider)
        if engine_id and name:
            return {"id": engine_id, "model": name}
        self.lost(
            f"the model {model} has no gh-aw engine (claude takes anthropic/*, codex "
            "openai/*): the default engine (copilot) is used",
            "model",
        )
        return None

    def tools(self) -> tuple[dict[str, Any], dict[str, Any]]:
        tools: dict[str, Any] = {}
        servers: dict[str, Any] = {}
        allowed = sorted(
            {
                t
                for s, _ in spec.iter_steps(self.loop.pipeline)
                if isinstance(s, spec.AgentStep)
                for t in s.tools
            }
        )
        for name, connector in self.loop.connectors.items():
            if isinstance(connector, spec.McpConnector) and connector.url == GITHUB_MCP_URL:
                tools["github"] = {"allowed": allowed} if allowed else None
            elif isinstance(connector, spec.McpConnector):
                server: dict[str, Any] = {}
                if connector.transport == "http":
                    server["url"] = connector.url
                    if connector.headers:
                        server["headers"] = dict(connector.headers)
                else:
                    server["command"] = connector.command
                    if connector.args:
                        server["args"] = list(connector.args)
                    if connector.env:
                        server["env"] = dict(connector.env)
                if allowed:
                    server["allowed"] = allowed
                servers[name] = server
            elif name == "github":
                tools["github"] = {"allowed": allowed} if allowed else None
                self.lost(
                    "the github http connector became gh-aw's github tool (GitHub's MCP "
                    "server): its operations' names may differ",
                    f"connectors.{name}",
                )
            else:
                self.lost(
                    f"the {connector.type} connector '{name}' has no gh-aw counterpart",
                    f"connectors.{name}",
                )
        if self.loop.memory is not None:
            tools["cache-memory"] = True
        return tools, servers

    def sections(self, steps: list[Any], path: str, level: int) -> list[str]:
        out: list[str] = []
        hashes = "#" * min(level, 6)
        for i, step in enumerate(steps):
            where = f"{path}[{i}]"
            fallback = "In parallel" if isinstance(step, spec.ParallelStep) else f"Step {i + 1}"
            label = getattr(step, "label", None) or fallback
            if isinstance(step, spec.AgentStep):
                out += [f"{hashes} {label}", "", self.prompt_text(step), ""]
            elif isinstance(step, spec.ToolStep):
                args = ", ".join(
                    f"`{k}` = {self.template(str(v))}" for k, v in step.arguments.items()
                )
                out += [
                    f"{hashes} {label}",
                    "",
                    f"Call the tool `{step.tool}`" + (f" with {args}." if args else "."),
                    "",
                ]
            elif isinstance(step, spec.ParallelStep):
                out += [f"{hashes} {label}", "", "These parts are independent of each other:", ""]
                out += self.sections(step.parallel, f"{where}.parallel", level + 1)
                self.lost("a parallel group runs one part after the other in one agent", where)
            elif isinstance(step, spec.SequentialStep):
                out += self.sections(step.sequential, f"{where}.sequential", level)
            elif isinstance(step, spec.ConditionalStep):
                out += [f"{hashes} {label}", "", f"Only if {self.condition(step.when)}:", ""]
                out += self.sections(step.then, f"{where}.then", level + 1)
                if step.else_:
                    out += ["Otherwise:", ""]
                    out += self.sections(step.else_, f"{where}.else", level + 1)
                self.lost("a conditional became prose: the agent decides the condition", where)
            elif isinstance(step, spec.ApprovalStep):
                out += [
                    f"{hashes} {label}",
                    "",
                    f"A person must approve before you go on: {self.template(step.approve)} "
                    "If you cannot ask, stop here and report what you would do.",
                    "",
                ]
                self.lost(
                    "an approval gate became an instruction: gh-aw cannot wait for a "
                    "person mid-run",
                    where,
                )
            elif isinstance(step, spec.PlanStep):
                kinds = "; ".join(f"{name}: {t.description}" for name, t in step.templates.items())
                out += [
                    f"{hashes} {label}",
                    "",
                    self.template(step.plan),
                    "",
                    f"Plan the work yourself, using steps of these kinds: {kinds}.",
                    "",
                ]
                self.lost(
                    "a plan step became one instruction: its templates and limits are lost", where
                )
        return out

    def prompt_text(self, step: spec.AgentStep) -> str:
        text = self.template(step.prompt)
        if step.subagent:
            sub = self.loop.subagents.get(step.subagent)
            if sub is not None and sub.prompt:
                text = f"Act as: {self.template(sub.prompt)}\n\n{text}"
                self.lost("subagents are inlined into the prompts that use them", "subagents")
        if step.output is not None and step.output != "text":
            self.lost("a structured output schema is not enforced by gh-aw", f"step '{step.label}'")
        return text

    def verify_section(self) -> list[str]:
        verify = self.loop.verify
        if verify is None:
            return []
        checkers = verify.checker if isinstance(verify.checker, list) else [verify.checker]
        criteria = []
        for name in checkers:
            sub = self.loop.subagents.get(name)
            if sub is not None and sub.prompt:
                criteria.append(self.template(sub.prompt))
        self.lost(
            "Maker/Checker verification became a self-check: the same agent checks its "
            "own work, with no separate checker, score or retry rounds",
            "verify",
        )
        lines = [
            "## Check your work",
            "",
            "Before you finish, check the results of "
            + ", ".join(f'"{m}"' for m in verify.maker)
            + " as an adversarial reviewer would: every claim backed by the evidence, "
            "nothing important missing. Fix what does not hold.",
        ]
        if criteria:
            lines += ["", *criteria]
        return [*lines, ""]

    def condition(self, when: str) -> str:
        return "`" + self.expression(when.strip(), as_text=False) + "`"

    def template(self, text: str) -> str:
        if _FEEDBACK_BLOCK.search(text):
            text = _FEEDBACK_BLOCK.sub("", text)
            self.lost("the checker's feedback to makers ({% if feedback %}) is dropped")
        text = _JINJA_EXPR.sub(lambda m: self.expression(m.group(1)), text)
        if "{%" in text:
            self.lost("Jinja2 statements ({% if %}, {% for %}) are kept as text")
        return text.strip()

    def expression(self, expr: str, *, as_text: bool = True) -> str:
        """Return a LoopKit template expression as gh-aw text (``${{ github.event... }}``)."""
        step = _STEP_OUT.match(expr)
        if step:
            label = step.group(1) or step.group(2)
            return f'the result of "{label}" above' if as_text else f"steps.{label}.output"
        replacements = [
            (r"\binputs\.([A-Za-z_]\w*)", r"github.event.inputs.\1"),
            (r"\btrigger\.payload\.", "github.event."),
            (r"\bloop\.name\b", "github.workflow"),
            (r"\brun\.id\b", "github.run_id"),
        ]
        out = expr
        for pattern, repl in replacements:
            out = re.sub(pattern, repl, out)
        if as_text and EXPRESSION_PATH.match(out) and out.startswith("github."):
            return "${{ " + out + " }}"
        if as_text:
            self.lost(f"the template expression {{{{ {expr} }}}} is kept as text")
            return "{{ " + expr + " }}"
        return out

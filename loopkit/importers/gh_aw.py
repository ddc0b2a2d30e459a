"""GitHub agentic workflows (githubnext/gh-aw: markdown with YAML front matter) ↔ loops.

Import: ``on:`` becomes the trigger (a GitHub event a webhook trigger with its
``types`` as actions, ``schedule`` a cron trigger, ``workflow_dispatch`` a
manual one whose ``inputs`` become the loop's inputs; a loop has one trigger,
so the others are noted), the markdown body the one agent step's prompt
(with ``${{ github.event.* }}`` read from ``trigger.payload``), ``tools.github``
and ``mcp-servers`` MCP connectors with their allow-lists, ``engine`` the
model, ``timeout-minutes`` the time budget. Permissions, safe outputs, the
network policy and the other tools have no counterpart and are noted.

Export (:func:`export`): the reverse, with the pipeline written as one
markdown prompt, a section per step; what gh-aw cannot say (Maker/Checker
separation, parallelism, approvals, budgets other than time) is returned as
notes.
"""

from __future__ import annotations

import math
import re
from pathlib import PurePath
from typing import Any

import yaml

from loopkit import spec, webhooks, yamlio
from loopkit.importers.base import (
    Conversion,
    Labels,
    Note,
    Source,
    jinja_text,
    loop_name,
    refuse,
    string,
)

FORMAT = "gh-aw"

GITHUB_MCP_URL = "https://api.githubcopilot.com/mcp/"
_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$")

#: gh-aw engine id → LiteLLM provider of its ``model``.
ENGINES = {"claude": "anthropic", "codex": "openai"}

_TRIGGER_NOTES = {
    "stop-after": "stop-after (the workflow stops triggering after a while) is not mapped",
    "reaction": "reaction (an emoji on the triggering item) is not mapped",
    "command": "a slash command is not mapped: use a webhook trigger on issue_comment "
    "with a `when:` on the comment's text",
    "slash_command": "a slash command is not mapped: use a webhook trigger on issue_comment "
    "with a `when:` on the comment's text",
    "manual-approval": "manual-approval is not mapped: add an approval step",
}

_TOP_NOTES = {
    "permissions": "permissions are not mapped: a loop's connectors carry their own credentials",
    "network": "the network policy is not mapped",
    "safe-outputs": None,  # one note per output
    "if": "the workflow's `if:` is not mapped: wrap the pipeline in a `when:` conditional",
    "runs-on": "runs-on is not mapped: loops run on LoopKit's workers",
    "concurrency": "concurrency is not mapped",
    "env": "env is not mapped: connectors read ${ENV_VAR} references",
    "steps": "custom steps before the agent run shell commands; not mapped",
    "post-steps": "custom steps after the agent run shell commands; not mapped",
    "imports": "imported workflow fragments are not read; inline them",
    "source": "source (where the workflow was installed from) is not kept",
    "strict": "strict mode is not mapped",
    "features": "features flags are not mapped",
    "roles": "roles (who may trigger) are not mapped",
    "cache": "cache is not mapped",
    "sandbox": "the sandbox settings are not mapped",
    "secret-masking": "secret masking is GitHub Actions'; LoopKit redacts ${ENV_VAR} values",
}
_KNOWN = set(_TOP_NOTES) | {
    "on",
    "engine",
    "tools",
    "mcp-servers",
    "timeout-minutes",
    "timeout_minutes",
    "name",
    "description",
}


def detect(text: str, filename: str) -> bool:
    """Return True for markdown whose front matter has ``on:`` (a gh-aw workflow)."""
    front = _split(text)
    if front is None:
        return False
    return bool(re.search(r"^(\"on\"|'on'|on)\s*:", front[0], re.M))


def _split(text: str) -> tuple[str, str, int] | None:
    """Return (front matter, body, line of the body) or None without front matter."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return None
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return "".join(lines[1:i]), "".join(lines[i + 1 :]), i + 2
    return None


def convert(text: str, filename: str) -> Conversion:
    """Convert a gh-aw workflow; raise ``SpecError`` when it is not one."""
    parts = _split(text)
    if parts is None:
        raise refuse(
            "not a GitHub agentic workflow: the file must start with '---' front "
            "matter and close it with another '---'",
            filename,
            line=1,
            column=1,
        )
    front, body, _ = parts
    doc = yamlio.parse("\n" + front, filename)  # "\n": front matter starts on line 2
    if not isinstance(doc.data, dict) or "on" not in doc.data:
        raise refuse(
            "the front matter has no 'on:' (what triggers the workflow)", filename, line=2, column=1
        )
    return _Importer(Source(doc, filename, doc.data), body).run()


class _Importer:
    def __init__(self, src: Source, body: str) -> None:
        self.src, self.body = src, body
        self.front: dict[str, Any] = src.data
        self.notes: list[Note] = []
        self.inputs: dict[str, dict[str, Any]] = {}
        self.trigger: dict[str, Any] = {"type": "manual"}

    def note(self, message: str, *path: str | int) -> None:
        self.notes.append(Note(message, self.src.where(*path)))

    def run(self) -> Conversion:
        self.read_on(self.front["on"])
        data: dict[str, Any] = {}
        title = re.search(r"^#\s+(.+)$", self.body, re.M)
        stem = PurePath(self.src.file).stem
        data["name"] = loop_name(string(self.front.get("name")), stem)
        description = string(self.front.get("description")) or (
            f"{title.group(1).strip()} (imported from the GitHub agentic workflow "
            f"{PurePath(self.src.file).name})"
            if title
            else ""
        )
        if description:
            data["description"] = description
        data["tags"] = ["gh-aw"]
        data["trigger"] = self.trigger
        step: dict[str, Any] = {"label": title.group(1).strip() if title else "Agent"}
        connectors, tools, open_ended = self.read_tools(step)
        model = self.read_engine(step)
        prompt = self.translate(self.body.strip())
        if not prompt:
            raise refuse(
                "the workflow's markdown body (the agent's prompt) is empty", self.src.file
            )
        if self.inputs:
            data["inputs"] = self.inputs
        if model:
            data["model"] = model
        step = {"prompt": prompt, **step}
        if connectors:
            step["connectors"] = list(connectors)
            if tools and not open_ended:
                step["tools"] = tools
        data["pipeline"] = [step]
        timeout = self.front.get("timeout-minutes", self.front.get("timeout_minutes"))
        if isinstance(timeout, int | float) and timeout > 0:
            data["budget"] = {"maxDurationMinutes": timeout}
        if self.memory:
            data["memory"] = {}
        if connectors:
            data["connectors"] = connectors
        for key in self.front:
            if _TOP_NOTES.get(key):
                self.note(str(_TOP_NOTES[key]), key)
            elif key == "safe-outputs" and isinstance(self.front[key], dict):
                for output in self.front[key]:
                    self.note(
                        f"the safe output '{output}' is not mapped: deliver the verified "
                        "result with an onPass tool step (e.g. through the github "
                        "connector)",
                        key,
                        output,
                    )
            elif key not in _KNOWN:
                self.note(f"'{key}' is not mapped", key)
        return Conversion(FORMAT, data, self.notes)

    # ── on: ──────────────────────────────────────────────────────────────

    def read_on(self, on: Any) -> None:
        if isinstance(on, str):
            on = {on: None}
        elif isinstance(on, list):
            on = {str(e): None for e in on}
        if not isinstance(on, dict):
            raise refuse(
                "'on:' must be an event name, a list or a mapping",
                self.src.file,
                **_at(self.src, "on"),
            )
        chosen: str | None = None
        known = webhooks.known_events()
        for event in on:
            if event in known and event not in ("schedule", "workflow_dispatch"):
                chosen = chosen or event
        if chosen is None and "schedule" in on:
            chosen = "schedule"
        if chosen is None and "workflow_dispatch" in on:
            chosen = "workflow_dispatch"
        for event, settings in on.items():
            if event in _TRIGGER_NOTES:
                self.note(_TRIGGER_NOTES[event], "on", event)
                continue
            if event == "workflow_dispatch":
                self.read_inputs(settings)
            if event == chosen:
                self.choose(event, settings)
            elif event in known or event in ("schedule", "workflow_dispatch"):
                self.note(
                    f"the workflow is also triggered by '{event}': a loop has one "
                    f"trigger (kept: '{chosen}'); add another loop for it",
                    "on",
                    event,
                )
            else:
                self.note(f"the trigger '{event}' is not mapped", "on", event)

    def choose(self, event: str, settings: Any) -> None:
        if event == "schedule":
            entries = settings if isinstance(settings, list) else [settings]
            crons = [e.get("cron") for e in entries if isinstance(e, dict) and e.get("cron")]
            if not crons:
                self.note(
                    f"the schedule {settings!r} is not a cron expression; the loop is "
                    "triggered manually",
                    "on",
                    event,
                )
                return
            self.trigger = {"type": "cron", "schedule": str(crons[0]), "timezone": "UTC"}
            if len(crons) > 1:
                self.note("only the first of several schedules is kept", "on", event)
        elif event == "workflow_dispatch":
            self.trigger = {"type": "manual"}
        else:
            self.trigger = {"type": "webhook", "event": event}
            if isinstance(settings, dict):
                types = settings.get("types")
                if isinstance(types, list):
                    self.trigger["actions"] = [str(t) for t in types]
                elif isinstance(types, str):
                    self.trigger["actions"] = [types]
                for key in settings:
                    if key != "types":
                        self.note(
                            f"the '{key}' filter of the {event} trigger is not mapped: "
                            "add a `when:` on trigger.payload",
                            "on",
                            event,
                            key,
                        )

    def read_inputs(self, settings: Any) -> None:
        inputs = settings.get("inputs") if isinstance(settings, dict) else None
        if not isinstance(inputs, dict):
            return
        for name, value in inputs.items():
            value = value if isinstance(value, dict) else {}
            entry: dict[str, Any] = {}
            if value.get("description"):
                entry["description"] = string(value["description"])
            kind = value.get("type")
            if kind == "boolean":
                entry["type"] = "boolean"
            elif kind == "number":
                entry["type"] = "number"
            elif kind == "choice" and value.get("options"):
                entry["description"] = (
                    entry.get("description", "")
                    + " One of: "
                    + ", ".join(map(str, value["options"]))
                    + "."
                ).strip()
            if "default" in value and value["default"] is not None:
                entry["default"] = value["default"]
            elif value.get("required"):
                entry["required"] = True
            elif entry.get("type") is None:
                entry["default"] = ""
            self.inputs[str(name)] = entry

    # ── engine and tools ─────────────────────────────────────────────────

    def read_engine(self, step: dict[str, Any]) -> str | None:
        engine = self.front.get("engine")
        if engine is None:
            return None
        settings = engine if isinstance(engine, dict) else {"id": engine}
        engine_id, model = str(settings.get("id", "")), settings.get("model")
        turns = settings.get("max-turns")
        if isinstance(turns, int) and 1 <= turns <= 100:
            step["maxToolRounds"] = turns
        if engine_id in ENGINES and model:
            return f"{ENGINES[engine_id]}/{model}"
        self.note(
            f"the engine '{engine_id}'"
            + (f" with model '{model}'" if model else "")
            + " runs a coding agent LoopKit does not; the loop uses the project's "
            "default model (set `model:`)",
            "engine",
        )
        return None

    def read_tools(self, step: dict[str, Any]) -> tuple[dict[str, Any], list[str], bool]:
        connectors: dict[str, Any] = {}
        allowed: list[str] = []
        open_ended = False
        self.memory = False
        tools = self.front.get("tools") or {}
        if isinstance(tools, dict):
            for name, settings in tools.items():
                if name == "github":
                    connectors["github"] = {
                        "type": "mcp",
                        "transport": "http",
                        "url": GITHUB_MCP_URL,
                        "description": "GitHub's MCP server (the gh-aw github tool).",
                        "headers": {"Authorization": "Bearer ${GITHUB_TOKEN}"},
                    }
                    names = settings.get("allowed") if isinstance(settings, dict) else None
                    if isinstance(names, list):
                        allowed += [str(n) for n in names]
                    else:
                        open_ended = True
                    if isinstance(settings, dict) and settings.get("toolsets"):
                        self.note(
                            "the github tool's toolsets are not mapped: list the tools "
                            "on the step (`tools:`)",
                            "tools",
                            name,
                            "toolsets",
                        )
                elif name in ("cache-memory", "repo-memory"):
                    self.memory = True
                    self.note(
                        f"'{name}' (files kept across runs) became the loop's memory: "
                        "each step's output is kept and read back as memory.<label>",
                        "tools",
                        name,
                    )
                else:
                    self.note(
                        f"the tool '{name}' is not mapped: declare a connector that offers it",
                        "tools",
                        name,
                    )
        servers = self.front.get("mcp-servers") or {}
        if isinstance(servers, dict):
            for name, settings in servers.items():
                if not isinstance(settings, dict):
                    continue
                connector: dict[str, Any] = {"type": "mcp"}
                if settings.get("url"):
                    connector.update(transport="http", url=str(settings["url"]))
                    if isinstance(settings.get("headers"), dict):
                        connector["headers"] = {
                            str(k): str(v) for k, v in settings["headers"].items()
                        }
                elif settings.get("command"):
                    connector["command"] = str(settings["command"])
                    if isinstance(settings.get("args"), list):
                        connector["args"] = [str(a) for a in settings["args"]]
                    if isinstance(settings.get("env"), dict):
                        connector["env"] = {
                            str(k): _env(str(v)) for k, v in settings["env"].items()
                        }
                else:
                    self.note(
                        f"the MCP server '{name}' has neither command nor url (a "
                        "container?); not mapped",
                        "mcp-servers",
                        name,
                    )
                    continue
                connectors[str(name)] = connector
                if isinstance(settings.get("allowed"), list):
                    allowed += [str(n) for n in settings["allowed"]]
                else:
                    open_ended = True
        if allowed and open_ended:
            self.note(
                "some tools have an allow-list and others none; a step has one "
                "allow-list, so the step may call every tool of its connectors",
                "tools",
            )
        return connectors, allowed, open_ended

    # ── the body ─────────────────────────────────────────────────────────

    def translate(self, text: str) -> str:
        out, last = [], 0
        for match in _EXPR.finditer(text):
            out.append(jinja_text(text[last : match.start()]))
            last = match.end()
            expr = self.expression(match.group(1))
            if expr is None:
                self.note(
                    f"the expression ${{{{ {match.group(1)} }}}} has no LoopKit "
                    "counterpart; it is kept as text"
                )
                out.append(jinja_text(match.group(0)))
            else:
                out.append("{{ " + expr + " }}")
        out.append(jinja_text(text[last:]))
        if re.search(r"\{\{#(if|import)", text):
            self.note("gh-aw template directives ({{#if}}, {{#import}}) are kept as text")
        return "".join(out).strip()

    def expression(self, expr: str) -> str | None:
        if not _PATH.match(expr):
            return None
        webhook = self.trigger["type"] == "webhook"
        parts = expr.split(".")
        if (parts[:3] == ["github", "event", "inputs"] and len(parts) == 4) or (
            parts[0] == "inputs" and len(parts) == 2
        ):
            name = parts[-1]
            if name not in self.inputs:
                self.inputs[name] = {"default": ""}
            return f"inputs.{name}" if name.isidentifier() else None
        if parts[:2] == ["github", "event"] and len(parts) > 2 and webhook:
            path = parts[2:]
            if webhooks.has_path(self.trigger["event"], path) is False:
                return None
            return "trigger.payload." + ".".join(path)
        if expr == "github.repository":
            if webhook:
                return "trigger.payload.repository.full_name"
            if "repository" not in self.inputs:
                self.inputs["repository"] = {
                    "description": "The repository (owner/name); GitHub's github.repository.",
                    "default": "",
                }
                self.note("github.repository became the input 'repository': give it a default")
            return "inputs.repository"
        if expr == "github.actor" and webhook:
            return "trigger.payload.sender.login"
        return {"github.workflow": "loop.name", "github.run_id": "run.id"}.get(expr)


def _env(value: str) -> str:
    """Return a GitHub Actions secret reference as LoopKit's ${VAR} reference."""
    match = re.fullmatch(r"\$\{\{\s*secrets\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", value.strip())
    return "${" + match.group(1) + "}" if match else value


def _at(src: Source, *path: str) -> dict[str, Any]:
    position = src.doc.position(tuple(path)) if src.doc else None
    return {"line": position[0], "column": position[1]} if position else {}


# ── Export ───────────────────────────────────────────────────────────────


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
        if as_text and _PATH.match(out) and out.startswith("github."):
            return "${{ " + out + " }}"
        if as_text:
            self.lost(f"the template expression {{{{ {expr} }}}} is kept as text")
            return "{{ " + expr + " }}"
        return out

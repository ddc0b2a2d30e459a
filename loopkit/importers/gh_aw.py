"""GitHub agentic workflows (githubnext/gh-aw: markdown with YAML front matter) ↔ loops.

Import: ``on:`` becomes the trigger (a GitHub event a webhook trigger with its
``types`` as actions, ``schedule`` a cron trigger, ``workflow_dispatch`` a
manual one whose ``inputs`` become the loop's inputs; a loop has one trigger,
so the others are noted), the markdown body the one agent step's prompt
(with ``${{ github.event.* }}`` read from ``trigger.payload``), ``tools.github``
and ``mcp-servers`` MCP connectors with their allow-lists, ``engine`` the
model, ``timeout-minutes`` the time budget. Permissions, safe outputs, the
network policy and the other tools have no counterpart and are noted.

Export (``loopkit.importers.gh_aw_export``): the reverse, with the pipeline written as one
markdown prompt, a section per step; what gh-aw cannot say (Maker/Checker
separation, parallelism, approvals, budgets other than time) is returned as
notes.
"""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Any

from loopkit import webhooks, yamlio
from loopkit.importers.base import (
    Conversion,
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
EXPRESSION_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$")

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
        if not EXPRESSION_PATH.match(expr):
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

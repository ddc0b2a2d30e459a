"""Dify DSL (an exported ``workflow`` or ``advanced-chat`` app) → a loop.

The graph (``workflow.graph.nodes`` and ``edges``) is walked from the start
node: the start node's variables become ``inputs``, ``llm`` nodes agent steps,
``if-else`` nodes conditionals, a node with several outgoing edges a
``parallel`` group (up to the node where the branches meet again), and a
``variable-aggregator`` the first of its variables whose step ran. Prompts'
``{{#node.var#}}`` references become Jinja2: ``inputs.<var>`` for the start
node, ``steps['<title>'].output`` for a step. Nodes LoopKit has no step for
(code, tool, HTTP request, knowledge retrieval, iteration, ...) are left out
with a note each.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from pathlib import PurePath
from typing import Any
from urllib.parse import urlsplit

from loopkit.importers.base import (
    Conversion,
    Labels,
    Note,
    Source,
    jinja_text,
    load_structured,
    loop_name,
    quote,
    refuse,
    step_ref,
    string,
)

FORMAT = "dify"

_KIND = re.compile(r"^kind:\s*['\"]?app['\"]?\s*$", re.M)
_SECTION = re.compile(r"^(workflow|app):", re.M)
_VAR = re.compile(r"\{\{#([^#{}]+)#\}\}")

#: Dify model provider → LiteLLM provider prefix.
PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "deepseek": "deepseek",
    "gemini": "gemini",
    "google": "gemini",
    "vertex_ai": "vertex_ai",
    "azure_openai": "azure",
    "bedrock": "bedrock",
    "ollama": "ollama",
    "groq": "groq",
    "mistralai": "mistral",
    "cohere": "cohere",
    "openrouter": "openrouter",
    "tongyi": "dashscope",
    "zhipuai": "zai",
    "moonshot": "moonshot",
    "xai": "xai",
    "togetherai": "together_ai",
    "openai_api_compatible": "openai",
}

_SKIPPED = {
    "code": "a code node runs Python or JavaScript; LoopKit loops run no code",
    "tool": "a tool node calls a Dify tool; declare a connector and add a tool step",
    "http-request": "an HTTP request node whose URL or method LoopKit cannot declare as an "
    "http connector's operation",
    "knowledge-retrieval": "knowledge retrieval reads a Dify knowledge base; LoopKit has none",
    "iteration": "an iteration runs its inner nodes per item; LoopKit has no loop-over-items step",
    "loop": "a loop node repeats its inner nodes; LoopKit repeats work through verify rounds",
    "parameter-extractor": "a parameter extractor; an agent step with `output: {schema: ...}` does this",
    "template-transform": "a template node renders Jinja2 without a model; LoopKit has no such step",
    "assigner": "a variable assigner writes conversation variables; LoopKit has none",
    "document-extractor": "a document extractor reads uploaded files; LoopKit inputs are text",
    "list-operator": "a list operator; LoopKit has no data-transform step",
    "answer": "an answer node streams text to the chat; the loop's result is its last step's output",
}

_INPUT_TYPES = {"number": "number", "checkbox": "boolean"}


def detect(text: str, filename: str) -> bool:
    """Return True when ``text`` looks like a Dify DSL export (``kind: app``)."""
    if _KIND.search(text) and _SECTION.search(text):
        return True
    # Early exports have no `kind:`; an app section with a mode and a workflow graph is Dify's.
    return bool(
        re.search(r"^app:", text, re.M)
        and re.search(r"^\s+mode:\s*['\"]?(workflow|advanced-chat)", text, re.M)
        and re.search(r"^workflow:", text, re.M)
        and re.search(r"^\s+graph:", text, re.M)
    )


def convert(text: str, filename: str) -> Conversion:
    """Convert a Dify DSL file; raise ``SpecError`` when it is not one."""
    return _Converter(load_structured(text, filename)).run()


class _Converter:
    def __init__(self, source: Source) -> None:
        self.src = source
        self.notes: list[Note] = []
        self.labels = Labels()
        data = source.data
        if not isinstance(data, dict) or not isinstance(data.get("app"), dict):
            raise refuse("not a Dify DSL file: there is no 'app' section", source.file)
        self.app: dict[str, Any] = data["app"]
        self.mode = self.app.get("mode")
        workflow = data.get("workflow")
        graph = workflow.get("graph") if isinstance(workflow, dict) else None
        if self.mode not in ("workflow", "advanced-chat") or not isinstance(graph, dict):
            raise refuse(
                f"the Dify app's mode is {self.mode!r}: only 'workflow' and 'advanced-chat' "
                "apps have a graph to import",
                source.file,
                hint="export a Workflow or Chatflow app from Dify",
            )
        nodes = graph.get("nodes") or []
        edges = graph.get("edges") or []
        if not isinstance(nodes, list) or not isinstance(edges, list):
            raise refuse("workflow.graph.nodes and .edges must be lists", source.file)
        self.nodes: dict[str, dict[str, Any]] = {}
        self.index: dict[str, int] = {}
        for i, node in enumerate(nodes):
            if isinstance(node, dict) and isinstance(node.get("data"), dict) and "id" in node:
                self.nodes[str(node["id"])] = node
                self.index[str(node["id"])] = i
        self.out: dict[str, list[tuple[str, str]]] = {n: [] for n in self.nodes}
        for edge in edges:
            if not isinstance(edge, dict):
                continue
            source_id, target = str(edge.get("source")), str(edge.get("target"))
            if source_id in self.out and target in self.nodes:
                self.out[source_id].append((str(edge.get("sourceHandle") or "source"), target))
        starts = [n for n, node in self.nodes.items() if self.kind(n) == "start"]
        if not starts:
            raise refuse("the Dify workflow has no start node", source.file)
        self.start = starts[0]
        self.emitted: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.inputs: dict[str, dict[str, Any]] = {}
        self.models: Counter[str] = Counter()
        self.connectors: dict[str, dict[str, Any]] = {}

    # ── helpers ──────────────────────────────────────────────────────────

    def kind(self, node_id: str) -> str:
        return str(self.nodes[node_id]["data"].get("type", ""))

    def title(self, node_id: str) -> str:
        return string(self.nodes[node_id]["data"].get("title")) or node_id

    def where(self, node_id: str, *path: str | int) -> str:
        return self.src.where("workflow", "graph", "nodes", self.index[node_id], *path)

    def note(self, node_id: str, message: str, *path: str | int) -> None:
        note = Note(
            f"{self.kind(node_id)} node '{self.title(node_id)}': {message}",
            self.where(node_id, *path),
        )
        if note not in self.notes:
            self.notes.append(note)

    def reachable(self, start: str) -> list[str]:
        order, seen, queue = [], {start}, deque([start])
        while queue:
            node = queue.popleft()
            order.append(node)
            for _, target in self.out[node]:
                if target not in seen:
                    seen.add(target)
                    queue.append(target)
        return order

    def join(self, targets: list[str]) -> str | None:
        """Return the first node every branch reaches (where they meet again)."""
        others = [set(self.reachable(t)) for t in targets[1:]]
        for node in self.reachable(targets[0]):
            if all(node in other for other in others):
                return node
        return None

    # ── the run ──────────────────────────────────────────────────────────

    def run(self) -> Conversion:
        self.read_start()
        if self.mode == "advanced-chat":
            self.inputs.setdefault(
                "query", {"description": "The user's message (Dify's sys.query).", "required": True}
            )
        first = [t for _, t in self.out[self.start]]
        pipeline = self.walk(self.start, None, ())
        if not pipeline:
            shown = "; ".join(str(n) for n in self.notes[:3])
            raise refuse(
                "the Dify workflow has no LLM node LoopKit can run"
                + ("" if first else ": nothing follows the start node"),
                self.src.file,
                hint=f"what did not map: {shown}" if shown else None,
            )
        stem = PurePath(self.src.file).stem
        data: dict[str, Any] = {"name": loop_name(string(self.app.get("name")), stem)}
        description = string(self.app.get("description"))
        if description:
            data["description"] = description
        data["tags"] = ["dify"]
        data["trigger"] = {"type": "manual"}
        if self.inputs:
            data["inputs"] = self.inputs
        if self.models:
            model = self.models.most_common(1)[0][0]
            data["model"] = model
            for step in _agent_steps(pipeline):
                if step.get("model") == model:
                    del step["model"]
        data["pipeline"] = pipeline
        if self.connectors:
            data["connectors"] = self.connectors
        return Conversion(FORMAT, data, self.notes)

    def read_start(self) -> None:
        variables = self.nodes[self.start]["data"].get("variables") or []
        for i, var in enumerate(variables):
            if not isinstance(var, dict) or not var.get("variable"):
                continue
            name = str(var["variable"])
            kind = str(var.get("type", "text-input"))
            spec: dict[str, Any] = {}
            label = string(var.get("label"))
            options = var.get("options") or []
            description = label if label and label != name else ""
            if options:
                description = (description + " " if description else "") + (
                    "One of: " + ", ".join(str(o) for o in options) + "."
                )
            if description:
                spec["description"] = description
            if kind in ("file", "file-list"):
                self.note(
                    self.start,
                    f"the file input '{name}' became a text input "
                    "(LoopKit inputs are text, numbers or booleans)",
                    "data",
                    "variables",
                    i,
                )
            if kind in _INPUT_TYPES:
                spec["type"] = _INPUT_TYPES[kind]
            if var.get("required"):
                spec["required"] = True
            elif var.get("default") not in (None, ""):
                spec["default"] = var["default"]
            elif kind not in _INPUT_TYPES:
                spec["default"] = ""  # Dify passes an empty string for an unfilled field
            self.inputs[name] = spec

    def walk(self, node_id: str | None, stop: str | None, ctx: tuple[str, ...]) -> list[Any]:
        """Return the steps from ``node_id`` up to (not including) ``stop``.

        Iterative along a chain (a long workflow must not exhaust the stack);
        it recurses only into branches.
        """
        steps: list[Any] = []
        while node_id is not None and node_id != stop:
            if node_id in self.emitted:
                self.note(node_id, "the graph reaches this node again (a cycle): not followed")
                break
            kind = self.kind(node_id)
            if kind in ("if-else", "question-classifier"):
                routed = self.route(node_id, stop, ctx)
                steps += routed[0]
                node_id = routed[1]
                continue
            if kind == "start":
                self.emitted[node_id] = ("", ctx)
            else:
                step = self.step(node_id, ctx)
                if step is not None:
                    steps.append(step)
            targets = list(dict.fromkeys(t for _, t in self.out[node_id]))
            if len(targets) <= 1:
                node_id = targets[0] if targets else None
                continue
            join = self.join(targets) or stop
            branches = [b for b in (self.walk(t, join, ctx) for t in targets) if b]
            if len(branches) == 1:
                steps += branches[0]
            elif branches:
                steps.append({"parallel": [_one(b) for b in branches]})
            node_id = join
        return steps

    # ── nodes ────────────────────────────────────────────────────────────

    def step(self, node_id: str, ctx: tuple[str, ...]) -> dict[str, Any] | None:
        kind, data = self.kind(node_id), self.nodes[node_id]["data"]
        if kind == "llm":
            return self.llm(node_id, data, ctx)
        if kind == "agent":
            return self.agent(node_id, data, ctx)
        if kind == "http-request":
            request = self.http(node_id, data, ctx)
            if request is not None:
                return request
        self.emitted[node_id] = ("", ctx)
        if kind == "end":
            self.end(node_id, data)
        elif kind == "variable-aggregator":
            pass  # read where it is referenced
        elif kind in _SKIPPED:
            self.note(node_id, f"not mapped: {_SKIPPED[kind]}")
        else:
            self.note(node_id, "not mapped: LoopKit has no step for this node type")
        return None

    def llm(self, node_id: str, data: dict[str, Any], ctx: tuple[str, ...]) -> dict[str, Any]:
        label = self.labels.take(string(data.get("title")), f"Step {len(self.emitted) + 1}")
        template = data.get("prompt_template")
        messages = template if isinstance(template, list) else [template]
        parts = []
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                continue
            text = message.get("jinja2_text") if message.get("edition_type") == "jinja2" else None
            text = text if isinstance(text, str) else str(message.get("text") or "")
            if message.get("edition_type") == "jinja2":
                self.note(
                    node_id,
                    "a Jinja2-edited prompt is kept as text; its variables are not translated",
                    "data",
                    "prompt_template",
                    i,
                )
            if text.strip():
                parts.append(self.template(node_id, text.strip(), ctx, ("prompt_template", i)))
        prompt = "\n\n".join(parts) or f"(the Dify node '{label}' had an empty prompt)"
        step: dict[str, Any] = {"prompt": prompt, "label": label}
        step.update(self.model(node_id, data.get("model")))
        context = data.get("context")
        if isinstance(context, dict) and context.get("enabled"):
            self.note(
                node_id, "its knowledge context ({{#context#}}) is not mapped", "data", "context"
            )
        if isinstance(data.get("memory"), dict):
            self.note(
                node_id,
                "chat memory (previous turns) is not mapped: a loop run is one "
                "task, its memory is the loop's memory store",
                "data",
                "memory",
            )
        vision = data.get("vision")
        if isinstance(vision, dict) and vision.get("enabled"):
            self.note(node_id, "vision (image inputs) is not mapped", "data", "vision")
        structured = data.get("structured_output")
        if data.get("structured_output_enabled") and isinstance(structured, dict):
            schema = structured.get("schema")
            if isinstance(schema, dict):
                step["output"] = {"schema": schema}
        self.emitted[node_id] = (label, ctx)
        return step

    def agent(self, node_id: str, data: dict[str, Any], ctx: tuple[str, ...]) -> dict[str, Any]:
        label = self.labels.take(string(data.get("title")), f"Step {len(self.emitted) + 1}")
        params = data.get("agent_parameters") or {}
        parts = []
        for key in ("instruction", "query"):
            value = params.get(key) if isinstance(params, dict) else None
            text = value.get("value") if isinstance(value, dict) else None
            if isinstance(text, str) and text.strip():
                parts.append(self.template(node_id, text.strip(), ctx, ("agent_parameters", key)))
        step: dict[str, Any] = {
            "prompt": "\n\n".join(parts) or f"(agent node '{label}')",
            "label": label,
        }
        model = params.get("model") if isinstance(params, dict) else None
        if isinstance(model, dict) and isinstance(model.get("value"), dict):
            step.update(self.model(node_id, model["value"]))
        tools = params.get("tools") if isinstance(params, dict) else None
        if isinstance(tools, dict) and tools.get("value"):
            names = [
                str(t.get("tool_name") or t.get("tool_label") or "?")
                for t in tools["value"]
                if isinstance(t, dict)
            ]
            self.note(
                node_id,
                "its tools (" + ", ".join(names) + ") are not mapped: declare "
                "connectors and list them on the step",
                "data",
                "agent_parameters",
                "tools",
            )
        self.emitted[node_id] = (label, ctx)
        return step

    def http(
        self, node_id: str, data: dict[str, Any], ctx: tuple[str, ...]
    ) -> dict[str, Any] | None:
        """Return a tool step (and declare its http connector) for an HTTP request node."""
        method = str(data.get("method") or "get").upper()
        url = urlsplit(str(data.get("url") or ""))
        if (
            method not in ("GET", "POST", "PUT", "PATCH", "DELETE")
            or url.scheme not in ("http", "https")
            or not url.netloc
            or "{{#" in url.netloc
        ):
            return None  # noted as not mapped by the caller
        label = self.labels.take(string(data.get("title")), "HTTP Request")
        arguments: dict[str, Any] = {}
        segments = []
        for segment in url.path.split("/"):
            if _VAR.search(segment):
                name = f"path{len(arguments) + 1}"
                arguments[name] = self.template(node_id, segment, ctx, ("url",))
                segments.append("{" + name + "}")
            else:
                segments.append(segment)
        required = list(arguments)
        pairs = [tuple(p.split("=", 1)) for p in url.query.split("&") if "=" in p]
        pairs += [
            tuple(line.split(":", 1))
            for line in str(data.get("params") or "").splitlines()
            if ":" in line
        ]
        for key, value in pairs:
            arguments[key.strip()] = self.template(node_id, value.strip(), ctx, ("params",))
        headers: dict[str, str] = {}
        for line in str(data.get("headers") or "").splitlines():
            key, _, value = line.partition(":")
            if not key.strip():
                continue
            if "{{#" in value:
                self.note(
                    node_id,
                    f"the header '{key.strip()}' reads a variable; headers are "
                    "not templates in LoopKit, so it is left out",
                    "data",
                    "headers",
                )
            else:
                headers[key.strip()] = value.strip()
        auth = data.get("authorization")
        if isinstance(auth, dict) and auth.get("type") not in (None, "no-auth"):
            env = re.sub(r"[^A-Z0-9]+", "_", url.netloc.upper()).strip("_") + "_API_KEY"
            headers["Authorization"] = "Bearer ${" + env + "}"
            self.note(
                node_id,
                f"its API key is not copied: set the environment variable {env} "
                "(sent as a Bearer token; check the scheme)",
                "data",
                "authorization",
            )
        body = data.get("body")
        if isinstance(body, dict) and body.get("type") not in (None, "none") and body.get("data"):
            if method in ("GET", "DELETE"):
                self.note(node_id, "a body on a GET or DELETE is not sent", "data", "body")
            else:
                self.note(
                    node_id,
                    "its body is not mapped: a LoopKit HTTP tool sends its "
                    "non-path arguments as the JSON body; add them under arguments",
                    "data",
                    "body",
                )
        connector = re.sub(r"[^a-z0-9]+", "_", url.netloc.lower()).strip("_") or "http"
        operation = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_") or f"request_{node_id}"
        declared = self.connectors.setdefault(
            connector,
            {"type": "http", "baseUrl": f"{url.scheme}://{url.netloc}", "operations": {}},
        )
        spec: dict[str, Any] = {"method": method, "path": "/".join(segments) or "/"}
        if arguments:
            spec["parameters"] = {
                "type": "object",
                "properties": {name: {"type": "string"} for name in arguments},
                **({"required": required} if required else {}),
            }
        if headers:
            spec["headers"] = headers
        declared["operations"][operation] = spec
        step: dict[str, Any] = {"tool": f"{connector}.{operation}", "label": label}
        if arguments:
            step["arguments"] = arguments
        self.emitted[node_id] = (label, ctx)
        return step

    def model(self, node_id: str, model: Any) -> dict[str, Any]:
        if not isinstance(model, dict):
            return {}
        provider = str(model.get("provider") or "").split("/")[-1]
        name = str(model.get("name") or model.get("model") or "")
        out: dict[str, Any] = {}
        if provider == "openai_api_compatible":
            self.note(
                node_id,
                "an OpenAI-compatible endpoint: give the model's base URL and "
                "key through a named provider (model: team:NAME)",
                "data",
                "model",
            )
        if name:
            prefix = PROVIDERS.get(provider)
            if prefix is None:
                self.note(
                    node_id,
                    f"the model provider '{provider}' has no LiteLLM name here: "
                    f"kept as '{provider}/{name}', check it",
                    "data",
                    "model",
                )
                prefix = provider or "openai"
            out["model"] = f"{prefix}/{name}"
            self.models[out["model"]] += 1
        params = model.get("completion_params")
        if isinstance(params, dict):
            mapped: dict[str, Any] = {}
            for key, value in params.items():
                if key == "temperature" and isinstance(value, int | float):
                    mapped["temperature"] = min(max(value, 0), 2)
                elif key == "top_p" and isinstance(value, int | float):
                    mapped["topP"] = min(max(value, 0), 1)
                elif key == "seed" and isinstance(value, int):
                    mapped["seed"] = value
                elif key == "stop" and isinstance(value, list):
                    mapped["stop"] = [str(s) for s in value]
                elif key == "max_tokens" and isinstance(value, int) and value > 0:
                    out["maxOutputTokens"] = min(value, 1_000_000)
                else:
                    self.note(
                        node_id,
                        f"the completion parameter '{key}' is not mapped",
                        "data",
                        "model",
                        "completion_params",
                        key,
                    )
            if mapped:
                out["params"] = mapped
        return out

    def end(self, node_id: str, data: dict[str, Any]) -> None:
        outputs = data.get("outputs") or []
        shown = []
        for output in outputs:
            if isinstance(output, dict):
                selector = output.get("value_selector") or []
                shown.append(f"{output.get('variable')} = {'.'.join(str(s) for s in selector)}")
        if len(shown) > 1:
            self.note(
                node_id,
                "the workflow returns several outputs ("
                + "; ".join(shown)
                + "); a loop's result is its steps' outputs, read them there",
                "data",
                "outputs",
            )

    def route(
        self, node_id: str, stop: str | None, ctx: tuple[str, ...]
    ) -> tuple[list[Any], str | None]:
        """Return the steps of an if-else or classifier node and the node after its branches."""
        data = self.nodes[node_id]["data"]
        steps: list[Any] = []
        cases: list[tuple[str, str | None]] = []
        if self.kind(node_id) == "if-else":
            self.emitted[node_id] = ("", ctx)
            raw = data.get("cases")
            if not isinstance(raw, list):  # DSL before 0.1.1: one case, handle 'true'
                raw = [
                    {
                        "case_id": "true",
                        "conditions": data.get("conditions") or [],
                        "logical_operator": data.get("logical_operator", "and"),
                    }
                ]
            for i, case in enumerate(raw):
                if isinstance(case, dict):
                    handle = str(case.get("case_id") or case.get("id") or "true")
                    cases.append((handle, self.condition(node_id, case, i, ctx)))
        else:
            classify = self.classifier(node_id, data, ctx)
            steps.append(classify)
            for item in data.get("classes") or []:
                if isinstance(item, dict) and item.get("id") is not None:
                    name = string(item.get("name")) or str(item["id"])
                    cases.append(
                        (
                            str(item["id"]),
                            f"{step_ref(classify['label'])}.output['class'] == {quote(name)}",
                        )
                    )
        by_handle: dict[str, str] = {}
        for handle, target in self.out[node_id]:
            by_handle.setdefault(handle, target)
        targets = list(dict.fromkeys(by_handle.values()))
        join = (self.join(targets) if len(targets) > 1 else None) or stop
        branches: list[tuple[str | None, list[Any]]] = []
        for handle, when in cases:
            case_target = by_handle.get(handle)
            if when is None and case_target:
                self.note(
                    node_id,
                    f"the branch '{handle}' is left out: its condition cannot be translated",
                )
                continue
            body = (
                self.walk(case_target, join, (*ctx, f"{node_id}:{handle}")) if case_target else []
            )
            branches.append((when, body))
        false_target = by_handle.get("false")
        otherwise = (
            self.walk(false_target, join, (*ctx, f"{node_id}:false")) if false_target else []
        )
        step = _chain(branches, otherwise)
        if step is not None:
            title = string(data.get("title"))
            if self.kind(node_id) == "question-classifier":
                title = f"Route by {title}" if title else ""
            step["label"] = self.labels.take(title, "Condition")
            steps.append(step)
        return steps, join

    def classifier(
        self, node_id: str, data: dict[str, Any], ctx: tuple[str, ...]
    ) -> dict[str, Any]:
        """Return the agent step that does a question classifier's classifying."""
        label = self.labels.take(string(data.get("title")), "Classify")
        names = [
            string(c.get("name")) or str(c.get("id"))
            for c in data.get("classes") or []
            if isinstance(c, dict)
        ]
        query = self.ref(data.get("query_variable_selector") or [], ctx)
        prompt = (
            "Classify the input into exactly one of these classes: "
            + ", ".join(jinja_text(n) for n in names)
            + "."
        )
        instruction = data.get("instruction")
        if isinstance(instruction, str) and instruction.strip():
            prompt += "\n\n" + self.template(node_id, instruction.strip(), ctx, ("instruction",))
        prompt += "\n\nInput:\n" + ("{{ " + query + " }}" if query else "(not mapped)")
        step: dict[str, Any] = {"prompt": prompt, "label": label}
        step.update(self.model(node_id, data.get("model")))
        step["output"] = {
            "schema": {
                "type": "object",
                "properties": {"class": {"type": "string", "enum": names}},
                "required": ["class"],
            }
        }
        self.emitted[node_id] = (label, ctx)
        return step

    def condition(
        self, node_id: str, case: dict[str, Any], i: int, ctx: tuple[str, ...]
    ) -> str | None:
        parts = []
        for j, cond in enumerate(case.get("conditions") or []):
            if not isinstance(cond, dict):
                continue
            expr = self.compare(cond, ctx)
            if expr is None:
                self.note(
                    node_id,
                    f"the condition on {cond.get('variable_selector')} "
                    f"({cond.get('comparison_operator')}) cannot be translated; "
                    "it is left out",
                    "data",
                    "cases",
                    i,
                    "conditions",
                    j,
                )
                continue
            parts.append(expr)
        if not parts:
            return None
        joiner = " or " if case.get("logical_operator") == "or" else " and "
        return joiner.join(f"({p})" for p in parts) if len(parts) > 1 else parts[0]

    def compare(self, cond: dict[str, Any], ctx: tuple[str, ...]) -> str | None:
        lhs = self.ref(cond.get("variable_selector") or [], ctx)
        if lhs is None:
            return None
        op = str(cond.get("comparison_operator", ""))
        value = cond.get("value")
        numeric = cond.get("varType") == "number" or op in (">", "<", "≥", "≤", ">=", "<=")
        if numeric:
            try:
                literal = repr(float(str(value)))
            except ValueError:
                return None
            side = f"({lhs} | float)"
        else:
            literal, side = quote("" if value is None else str(value)), f"({lhs} | string)"
        table = {
            "contains": f"{literal} in {side}",
            "not contains": f"{literal} not in {side}",
            "start with": f"{side}.startswith({literal})",
            "end with": f"{side}.endswith({literal})",
            "is": f"{side} == {literal}",
            "=": f"{side} == {literal}",
            "is not": f"{side} != {literal}",
            "≠": f"{side} != {literal}",
            "empty": f"not {lhs}",
            "not empty": f"{lhs}",
            "null": f"{lhs} is none",
            "not null": f"{lhs} is not none",
            ">": f"{side} > {literal}",
            "<": f"{side} < {literal}",
            "≥": f"{side} >= {literal}",
            ">=": f"{side} >= {literal}",
            "≤": f"{side} <= {literal}",
            "<=": f"{side} <= {literal}",
        }
        return table.get(op)

    # ── variables ────────────────────────────────────────────────────────

    def ref(self, selector: list[Any], ctx: tuple[str, ...]) -> str | None:
        """Return the Jinja2 expression of a Dify variable selector, or None."""
        if len(selector) < 2:
            return None
        node_id, var = str(selector[0]), str(selector[1])
        if node_id == "sys":
            if var == "query" and self.mode == "advanced-chat":
                return "inputs.query"
            return "run.id" if var == "workflow_run_id" else None
        if node_id not in self.nodes:
            return None
        kind = self.kind(node_id)
        if kind == "start":
            return f"inputs.{var}" if var in self.inputs and var.isidentifier() else None
        if kind == "variable-aggregator":
            return self.aggregate(node_id, ctx)
        if node_id not in self.emitted or not self.emitted[node_id][0]:
            return None
        label, where = self.emitted[node_id]
        expr = f"{step_ref(label)}.output"
        if kind == "question-classifier" and var == "class_name":
            expr += "['class']"
        elif kind == "http-request" and var == "body":
            pass
        elif kind == "llm" and var == "structured_output":
            expr += "".join(f"[{quote(str(part))}]" for part in selector[2:])
        elif var != "text":
            return None  # usage, files, reasoning_content...: nothing LoopKit keeps
        if where != ctx[: len(where)]:
            return f"({expr} if {step_ref(label)} is defined else '')"
        return expr

    def what(self, selector: list[str]) -> str:
        node_id = selector[0]
        if node_id in self.nodes:
            return f"an output of the {self.kind(node_id)} node '{self.title(node_id)}'"
        return f"a {node_id} variable" if node_id in ("sys", "env", "conversation") else "unknown"

    def aggregate(self, node_id: str, ctx: tuple[str, ...]) -> str | None:
        data = self.nodes[node_id]["data"]
        selectors = list(data.get("variables") or [])
        advanced = data.get("advanced_settings")
        if isinstance(advanced, dict) and advanced.get("group_enabled"):
            for group in advanced.get("groups") or []:
                selectors += group.get("variables") or []
        options = [self.ref(s, ctx) for s in selectors if isinstance(s, list)]
        chosen = [o for o in options if o is not None]
        if not chosen:
            return None
        expr = "''"
        for option in reversed(chosen):
            if " if " in option and option.endswith("else '')"):
                inner = option[1 : -len(" else '')")]
                expr = f"({inner} else {expr})"
            else:
                expr = option
        return expr

    def template(
        self, node_id: str, text: str, ctx: tuple[str, ...], path: tuple[str | int, ...]
    ) -> str:
        out, last = [], 0
        for match in _VAR.finditer(text):
            out.append(jinja_text(text[last : match.start()]))
            last = match.end()
            selector = match.group(1).split(".")
            expr = self.ref(selector, ctx)
            if expr is None:
                self.note(
                    node_id,
                    f"the variable {{{{#{match.group(1)}#}}}} ({self.what(selector)}) "
                    "has no LoopKit counterpart; it is left in the prompt as text",
                    "data",
                    *path,
                )
                out.append(jinja_text(f"[{match.group(1)}]"))
            else:
                out.append("{{ " + expr + " }}")
        out.append(jinja_text(text[last:]))
        return "".join(out)


def _one(steps: list[Any]) -> Any:
    return steps[0] if len(steps) == 1 else {"sequential": steps}


def _chain(
    branches: list[tuple[str | None, list[Any]]], otherwise: list[Any]
) -> dict[str, Any] | None:
    """Return nested conditionals for if / elif... / else branches (None when all are empty)."""
    result: list[Any] = otherwise
    for when, body in reversed(branches):
        if when is None:
            continue
        if body:
            step: dict[str, Any] = {"when": when, "then": body}
            if result:
                step["else"] = result
        elif result:
            step = {"when": f"not ({when})", "then": result}
        else:
            continue
        result = [step]
    if not result or result is otherwise:
        return {"sequential": otherwise} if otherwise else None
    first: dict[str, Any] = result[0]
    return first


def _agent_steps(steps: list[Any]) -> list[dict[str, Any]]:
    out = []
    for step in steps:
        if "prompt" in step:
            out.append(step)
        for key in ("parallel", "sequential", "then", "else"):
            if isinstance(step.get(key), list):
                out += _agent_steps(step[key])
    return out

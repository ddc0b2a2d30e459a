"""Open Agent Spec (oracle/agent-spec; JSON or YAML) → a loop.

A ``Flow`` is walked along its ``control_flow_connections`` from its
``start_node``: the flow's ``inputs`` become the loop's inputs, ``LlmNode``s
(and ``AgentNode``s) agent steps, a ``BranchingNode`` a conditional on the
value that its data edge brings, a ``ParallelFlowNode`` a ``parallel`` group of
its subflows, a ``FlowNode`` its subflow's steps in sequence. A prompt's
``{{name}}`` is read through the node's data edge: a flow input becomes
``inputs.<name>``, an earlier node's output ``steps['<node>'].output``
(``.output.<name>`` when the node has several outputs: it then answers with
JSON). A branch that leads back to an earlier node (the flow repeats work
until a check passes) becomes Maker/Checker verification of that node. A
single ``Agent`` becomes one agent step. Tool, API, map and message nodes
are noted.
"""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Any

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

FORMAT = "agentspec"

_TYPE = re.compile(r"""["']?component_type["']?\s*:\s*["']?(Flow|Agent)\b""")
_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_JSON_TYPES = {"string": None, "integer": "integer", "number": "number", "boolean": "boolean"}

#: Agent Spec LLM config → LiteLLM provider prefix.
LLM_CONFIGS = {
    "OpenAiConfig": "openai",
    "OpenAiCompatibleConfig": "openai",
    "VllmConfig": "hosted_vllm",
    "OllamaConfig": "ollama",
    "OciGenAiConfig": "oci",
}

_SKIPPED = {
    "ToolNode": "a tool node calls a tool; declare a connector and add a tool step",
    "ApiNode": "an API node calls an HTTP API; declare an http connector and add a tool step",
    "APINode": "an API node calls an HTTP API; declare an http connector and add a tool step",
    "MapNode": "a map node runs a subflow per item; LoopKit has no loop-over-items step",
    "InputMessageNode": "an input message node waits for a user's message mid-flow; "
    "an approval step is the closest LoopKit has",
    "OutputMessageNode": "an output message node shows text to a user; the loop's result is "
    "its steps' outputs",
    "CatchExceptionNode": "a catch-exception node; a failing LoopKit step fails the run",
}


def detect(text: str, filename: str) -> bool:
    """Return True for an Agent Spec document (a Flow or Agent ``component_type``)."""
    return bool(_TYPE.search(text)) and (
        "agentspec_version" in text or "start_node" in text or "llm_config" in text
    )


def convert(text: str, filename: str) -> Conversion:
    """Convert an Agent Spec Flow or Agent; raise ``SpecError`` when it is not one."""
    source = load_structured(text, filename)
    if not isinstance(source.data, dict) or source.data.get("component_type") not in (
        "Flow",
        "Agent",
    ):
        raise refuse(
            "not an Agent Spec flow or agent: the top-level component_type must be "
            "'Flow' or 'Agent'",
            filename,
        )
    return _Converter(source).run()


class _Converter:
    def __init__(self, source: Source) -> None:
        self.src = source
        self.notes: list[Note] = []
        self.labels = Labels()
        self.components: dict[str, dict[str, Any]] = {}
        self.collect(source.data)
        self.inputs: dict[str, dict[str, Any]] = {}
        self.emitted: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.structured: set[str] = set()
        self.models: list[str] = []
        self.cycle: set[str] = set()
        self.maker: str | None = None

    def collect(self, value: Any) -> None:
        """Index every component (by id, and by its key under $referenced_components)."""
        if isinstance(value, dict):
            refs = value.get("$referenced_components")
            if isinstance(refs, dict):
                for key, component in refs.items():
                    if isinstance(component, dict):
                        self.components[str(key)] = component
            if isinstance(value.get("id"), str) and "component_type" in value:
                self.components.setdefault(value["id"], value)
            for child in value.values():
                self.collect(child)
        elif isinstance(value, list):
            for child in value:
                self.collect(child)

    def resolve(self, value: Any) -> dict[str, Any] | None:
        if isinstance(value, dict):
            ref = value.get("$component_ref") or value.get("$ref")
            if isinstance(ref, str):
                return self.components.get(ref)
            return value
        return None

    def note(self, node: dict[str, Any], message: str) -> None:
        name = string(node.get("name")) or str(node.get("id"))
        where = self.src.where("$referenced_components", str(node.get("id")))
        note = Note(f"{node.get('component_type')} '{name}': {message}", where)
        if note not in self.notes:
            self.notes.append(note)

    def run(self) -> Conversion:
        root = self.src.data
        data: dict[str, Any] = {
            "name": loop_name(string(root.get("name")), PurePath(self.src.file).stem),
        }
        if string(root.get("description")):
            data["description"] = string(root.get("description"))
        data["tags"] = ["agentspec"]
        data["trigger"] = {"type": "manual"}
        self.read_inputs(root.get("inputs") or [])
        if root["component_type"] == "Agent":
            pipeline = [self.agent_step(root, root, ())]
        else:
            self.find_cycles(root)
            pipeline = self.walk_flow(root, ())
        if not pipeline:
            raise refuse("the flow has no LLM or agent node LoopKit can run", self.src.file)
        if self.inputs:
            data["inputs"] = self.inputs
        if self.models:
            model = max(set(self.models), key=self.models.count)
            data["model"] = model
            _drop_model(pipeline, model)
        data["pipeline"] = pipeline
        if self.maker is not None:
            data["verify"] = {
                "maker": [self.maker],
                "checker": "Adversarial Verifier",
                "maxRounds": 3,
            }
        return Conversion(FORMAT, data, self.notes)

    def read_inputs(self, inputs: list[Any]) -> None:
        for item in inputs:
            if not isinstance(item, dict) or not item.get("title"):
                continue
            name = str(item["title"])
            entry: dict[str, Any] = {}
            if item.get("description"):
                entry["description"] = string(item["description"])
            kind = _JSON_TYPES.get(str(item.get("type")))
            if kind:
                entry["type"] = "number" if kind == "number" else kind
            if "default" in item and isinstance(item["default"], str | int | float | bool):
                entry["default"] = item["default"]
            else:
                entry["required"] = True
            self.inputs[name] = entry

    # ── graph ────────────────────────────────────────────────────────────

    def edges(self, flow: dict[str, Any]) -> dict[str, list[tuple[str | None, str]]]:
        out: dict[str, list[tuple[str | None, str]]] = {}
        for edge in flow.get("control_flow_connections") or []:
            edge = self.resolve(edge) or {}
            source, target = self.resolve(edge.get("from_node")), self.resolve(edge.get("to_node"))
            if source and target:
                branch = edge.get("from_branch")
                out.setdefault(str(source["id"]), []).append(
                    (str(branch) if branch is not None else None, str(target["id"]))
                )
        return out

    def find_cycles(self, flow: dict[str, Any]) -> None:
        """Find the first back edge: its target becomes the maker, the loop's nodes the cycle."""
        edges = self.edges(flow)
        start = self.resolve(flow.get("start_node"))
        if start is None:
            return
        stack: list[str] = []
        seen: set[str] = set()

        def visit(node: str) -> None:
            stack.append(node)
            seen.add(node)
            for _, target in edges.get(node, []):
                if target in stack and self.maker is None:
                    members = stack[stack.index(target) :]
                    self.cycle = set(members)
                elif target not in seen:
                    visit(target)
            stack.pop()

        visit(str(start["id"]))

    def walk_flow(self, flow: dict[str, Any], ctx: tuple[str, ...]) -> list[Any]:
        start = self.resolve(flow.get("start_node"))
        if start is None:
            raise refuse(f"the flow '{flow.get('name')}' has no start_node", self.src.file)
        self.flow = flow
        return self.walk(flow, self.next_of(flow, str(start["id"])), None, ctx)

    def next_of(self, flow: dict[str, Any], node: str) -> list[str]:
        return [t for _, t in self.edges(flow).get(node, [])]

    def walk(
        self, flow: dict[str, Any], targets: list[str], stop: str | None, ctx: tuple[str, ...]
    ) -> list[Any]:
        steps: list[Any] = []
        current = targets[0] if targets else None
        while current is not None and current != stop:
            if current in self.emitted:
                break  # a back edge: handled as verification
            node = self.components.get(current)
            if node is None:
                break
            kind = node.get("component_type")
            if kind == "EndNode":
                break
            if kind == "BranchingNode":
                step, current = self.branching(flow, node, stop, ctx)
                if step is not None:
                    steps.append(step)
                continue
            steps += self.node_steps(flow, node, ctx)
            following = self.next_of(flow, current)
            current = following[0] if following else None
        return steps

    def node_steps(
        self, flow: dict[str, Any], node: dict[str, Any], ctx: tuple[str, ...]
    ) -> list[Any]:
        kind = str(node.get("component_type"))
        node_id = str(node["id"])
        if kind == "LlmNode":
            return [self.llm_step(flow, node, ctx)]
        if kind == "AgentNode":
            agent = self.resolve(node.get("agent")) or {}
            return [self.agent_step(node, agent, ctx, flow)]
        self.emitted[node_id] = ("", ctx)
        if kind == "ParallelFlowNode":
            branches = []
            for sub in node.get("subflows") or []:
                subflow = self.resolve(sub)
                if subflow is not None:
                    steps = self.walk_flow(subflow, ctx)
                    if steps:
                        branches.append(steps[0] if len(steps) == 1 else {"sequential": steps})
            self.flow = flow
            if len(branches) > 1:
                return [
                    {
                        "parallel": branches,
                        "label": self.labels.take(string(node.get("name")), "Parallel"),
                    }
                ]
            return branches
        if kind == "FlowNode":
            subflow = self.resolve(node.get("subflow"))
            steps = self.walk_flow(subflow, ctx) if subflow else []
            self.flow = flow
            return steps
        if kind == "StartNode":
            return []
        self.note(node, "not mapped: " + _SKIPPED.get(kind, "LoopKit has no step for it"))
        return []

    def branching(
        self, flow: dict[str, Any], node: dict[str, Any], stop: str | None, ctx: tuple[str, ...]
    ) -> tuple[dict[str, Any] | None, str | None]:
        node_id = str(node["id"])
        self.emitted[node_id] = ("", ctx)
        by_branch: dict[str, str] = {}
        for branch, target in self.edges(flow).get(node_id, []):
            by_branch[branch or "next"] = target
        inputs = [i.get("title") for i in node.get("inputs") or [] if isinstance(i, dict)]
        value = self.value(flow, node, str(inputs[0]), ctx) if inputs else None
        raw_mapping = node.get("mapping")
        mapping: dict[str, Any] = raw_mapping if isinstance(raw_mapping, dict) else {}
        end_ids = {
            t
            for t in by_branch.values()
            if (self.components.get(t) or {}).get("component_type") == "EndNode"
        }
        loops_back = {b: t for b, t in by_branch.items() if t in self.emitted}
        for branch, target in loops_back.items():
            maker = self.emitted[target][0]
            if maker and self.maker is None:
                self.maker = maker
                self.note(
                    node,
                    f"the branch '{branch}' leads back to '{maker}' (the flow "
                    "repeats it until the check passes): mapped as Maker/Checker "
                    f"verification with '{maker}' as the maker and the built-in "
                    "adversarial checker (up to 3 rounds); the checking steps of the "
                    "flow still run each round",
                )
        forward = {b: t for b, t in by_branch.items() if b not in loops_back and t not in end_ids}
        if not forward:
            return None, None
        if value is None:
            self.note(
                node,
                "the value it branches on cannot be read; every branch but the default is left out",
            )
            return None, by_branch.get("default")
        branches: list[tuple[str, list[Any]]] = []
        for branch, target in forward.items():
            if branch == "default":
                continue
            keys = [k for k, v in mapping.items() if v == branch] or [branch]
            when = " or ".join(f"({value} | string) == {quote(str(k))}" for k in keys)
            body = self.walk(flow, [target], stop, (*ctx, f"{node_id}:{branch}"))
            if body:
                branches.append((when, body))
        default = forward.get("default")
        otherwise = (
            self.walk(flow, [default], stop, (*ctx, f"{node_id}:default")) if default else []
        )
        step: dict[str, Any] | None = None
        for when, body in reversed(branches):
            step = {
                "when": when,
                "then": body,
                **({"else": [step]} if step else ({"else": otherwise} if otherwise else {})),
            }
        if step is None and otherwise:
            return None, default
        if step is not None:
            step["label"] = self.labels.take(string(node.get("name")), "Branch")
        return step, None

    # ── steps ────────────────────────────────────────────────────────────

    def llm_step(
        self, flow: dict[str, Any], node: dict[str, Any], ctx: tuple[str, ...]
    ) -> dict[str, Any]:
        label = self.labels.take(string(node.get("name")), "Step")
        prompt = self.template(flow, node, str(node.get("prompt_template") or ""), ctx)
        step: dict[str, Any] = {
            "prompt": prompt or f"(the node '{label}' had no prompt)",
            "label": label,
        }
        self.model(node, step)
        outputs = [o for o in node.get("outputs") or [] if isinstance(o, dict)]
        if len(outputs) > 1 or (outputs and outputs[0].get("type") not in (None, "string")):
            properties = {
                str(o["title"]): {
                    k: v for k, v in o.items() if k in ("type", "description", "enum", "items")
                }
                for o in outputs
                if o.get("title")
            }
            step["output"] = {
                "schema": {"type": "object", "properties": properties, "required": list(properties)}
            }
            self.structured.add(str(node["id"]))
        self.emitted[str(node["id"])] = (label, ctx)
        return step

    def agent_step(
        self,
        node: dict[str, Any],
        agent: dict[str, Any],
        ctx: tuple[str, ...],
        flow: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        label = self.labels.take(string(node.get("name")) or string(agent.get("name")), "Agent")
        system = str(agent.get("system_prompt") or "")
        prompt = (
            self.template(flow, node, system, ctx)
            if flow is not None
            else self.template_inputs(system)
        )
        step: dict[str, Any] = {
            "prompt": prompt or f"(the agent '{label}' had no prompt)",
            "label": label,
        }
        self.model(agent, step)
        tools = [self.resolve(t) or {} for t in agent.get("tools") or []]
        if tools:
            names = ", ".join(string(t.get("name")) or "?" for t in tools)
            self.note(
                agent,
                f"its tools ({names}) are not mapped: declare connectors and list them on the step",
            )
        if agent.get("toolboxes"):
            self.note(agent, "its toolboxes (MCP) are not mapped: declare mcp connectors")
        self.emitted[str(node.get("id"))] = (label, ctx)
        return step

    def model(self, holder: dict[str, Any], step: dict[str, Any]) -> None:
        config = self.resolve(holder.get("llm_config"))
        if config is None:
            return
        kind = str(config.get("component_type") or config.get("type") or "")
        model_id = config.get("model_id")
        if not model_id:
            return
        prefix = LLM_CONFIGS.get(kind)
        if prefix is None:
            self.note(config, f"the LLM config {kind} has no LiteLLM name here; set the model")
            return
        step["model"] = f"{prefix}/{model_id}"
        self.models.append(step["model"])
        if config.get("url"):
            self.note(
                config,
                f"its endpoint ({config['url']}) goes into a named provider "
                "(model: team:NAME) with its base URL",
            )
        params = config.get("default_generation_parameters")
        if isinstance(params, dict):
            mapped = {}
            if isinstance(params.get("temperature"), int | float):
                mapped["temperature"] = min(max(params["temperature"], 0), 2)
            if isinstance(params.get("top_p"), int | float):
                mapped["topP"] = min(max(params["top_p"], 0), 1)
            if isinstance(params.get("max_tokens"), int) and params["max_tokens"] > 0:
                step["maxOutputTokens"] = params["max_tokens"]
            if mapped:
                step["params"] = mapped

    def template_inputs(self, text: str) -> str:
        out, last = [], 0
        for match in _VAR.finditer(text):
            out.append(jinja_text(text[last : match.start()]))
            last = match.end()
            name = match.group(1)
            self.inputs.setdefault(name, {"required": True})
            out.append("{{ inputs." + name + " }}")
        out.append(jinja_text(text[last:]))
        return "".join(out).strip()

    def template(
        self, flow: dict[str, Any], node: dict[str, Any], text: str, ctx: tuple[str, ...]
    ) -> str:
        out, last = [], 0
        for match in _VAR.finditer(text):
            out.append(jinja_text(text[last : match.start()]))
            last = match.end()
            expr = self.value(flow, node, match.group(1), ctx)
            out.append("{{ " + expr + " }}" if expr else jinja_text(f"[{match.group(1)}]"))
        out.append(jinja_text(text[last:]))
        return "".join(out).strip()

    def value(
        self, flow: dict[str, Any], node: dict[str, Any], name: str, ctx: tuple[str, ...]
    ) -> str | None:
        """Return the Jinja2 expression of a node's input ``name`` (from its data edge)."""
        node_id = str(node.get("id"))
        for edge in flow.get("data_flow_connections") or []:
            edge = self.resolve(edge) or {}
            destination = self.resolve(edge.get("destination_node"))
            if not destination or str(destination.get("id")) != node_id:
                continue
            if edge.get("destination_input") != name:
                continue
            source = self.resolve(edge.get("source_node")) or {}
            output = str(edge.get("source_output"))
            source_id = str(source.get("id"))
            if source.get("component_type") == "StartNode":
                self.inputs.setdefault(output, {"required": True})
                return f"inputs.{output}" if output.isidentifier() else None
            if source_id in self.emitted and self.emitted[source_id][0]:
                label, where = self.emitted[source_id]
                expr = f"{step_ref(label)}.output"
                if source_id in self.structured:
                    expr += f".{output}" if output.isidentifier() else f"[{quote(output)}]"
                if where != ctx[: len(where)]:
                    return f"({expr} if {step_ref(label)} is defined else '')"
                return expr
            if source_id == node_id or source_id in self.cycle:
                if source_id == node_id:
                    self.note(
                        node,
                        f"its input '{name}' is its own previous output: in a "
                        "verification round LoopKit shows a maker its previous answer "
                        "itself",
                    )
                    return "''"
                self.note(
                    node,
                    f"its input '{name}' comes from a later node of the loop "
                    f"('{source.get('name')}'): read as the checker's feedback",
                )
                return "feedback"
            self.note(
                node,
                f"its input '{name}' comes from '{source.get('name')}', which "
                "was not mapped; it is left in the prompt as [name]",
            )
            return None
        if name in self.inputs:
            return f"inputs.{name}"
        self.note(node, f"its input '{name}' has no data edge; it is left in the prompt as [name]")
        return None


def _drop_model(steps: list[Any], model: str) -> None:
    for step in steps:
        if step.get("model") == model:
            del step["model"]
        for key in ("parallel", "sequential", "then", "else"):
            if isinstance(step.get(key), list):
                _drop_model(step[key], model)

"""CrewAI project (``config/agents.yaml`` + ``config/tasks.yaml``, YAML or JSONC) → a loop.

Agents become subagents (role ``executor``; their role, goal and backstory
the system prompt; ``llm`` the model), tasks become agent steps in file order
(CrewAI's sequential process), each running as its agent. As in CrewAI, a
task without ``context`` reads the previous task's output, one with
``context`` the listed tasks' outputs. Consecutive ``async_execution`` tasks
become a ``parallel`` group. A task's ``guardrail`` becomes Maker/Checker
verification (the task the maker, a verifier subagent with the guardrail as
its prompt the checker); ``human_input`` an approval gate after the task.
``{placeholder}`` interpolations become declared ``inputs``. A crew whose
``crew.py`` says ``Process.hierarchical`` becomes a plan step: a manager
(planner) chooses among the tasks, each a plan template.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePath
from typing import Any

from loopkit.importers.base import (
    Conversion,
    Labels,
    Note,
    Source,
    jinja_text,
    load_structured,
    loop_name,
    refuse,
    step_ref,
    string,
)

FORMAT = "crewai"
SUFFIXES = (".yaml", ".yml", ".json", ".jsonc")

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TASK_SHAPE = re.compile(r"^\s*['\"]?expected_output['\"]?\s*:", re.M)
_AGENT_SHAPE = re.compile(r"^\s*['\"]?backstory['\"]?\s*:", re.M)
_HIERARCHICAL = re.compile(r"Process\.hierarchical|process\s*=\s*['\"]hierarchical['\"]")
_MANAGER_LLM = re.compile(r"manager_llm\s*=\s*['\"]([^'\"]+)['\"]")

_AGENT_KEYS = {
    "role",
    "goal",
    "backstory",
    "llm",
    "tools",
    "verbose",
    "allow_delegation",
    "max_iter",
    "max_rpm",
    "memory",
    "cache",
    "max_execution_time",
}
_TASK_KEYS = {
    "description",
    "expected_output",
    "agent",
    "context",
    "async_execution",
    "guardrail",
    "human_input",
    "output_file",
    "tools",
    "markdown",
    "name",
}


def detect(text: str, filename: str) -> bool:
    """Return True for a CrewAI agents or tasks config (by its keys, or its file name)."""
    stem = PurePath(filename).stem.lower()
    if stem in ("agents", "tasks") and PurePath(filename).suffix.lower() in SUFFIXES:
        return bool(_TASK_SHAPE.search(text) or _AGENT_SHAPE.search(text) or "role" in text)
    return bool(
        _TASK_SHAPE.search(text) and re.search(r"^\s*['\"]?description['\"]?\s*:", text, re.M)
    ) or bool(_AGENT_SHAPE.search(text) and re.search(r"^\s*['\"]?goal['\"]?\s*:", text, re.M))


def is_tasks(text: str) -> bool:
    return bool(_TASK_SHAPE.search(text))


def find_project(path: Path) -> tuple[Path | None, Path, Path | None]:
    """Return (agents file, tasks file, crew.py) of a project folder or of one config file.

    Raise ``SpecError`` when there is no tasks file.
    """
    if path.is_dir():
        candidates = sorted(
            (
                p
                for p in path.rglob("tasks.*")
                if p.suffix.lower() in SUFFIXES
                and ".venv" not in p.parts
                and "node_modules" not in p.parts
            ),
            key=lambda p: (len(p.parts), str(p)),
        )
        if not candidates:
            raise refuse(
                "no CrewAI tasks file (config/tasks.yaml) in this folder",
                str(path),
                hint="give the crew's folder, or its config/tasks.yaml",
            )
        tasks = candidates[0]
    elif path.stem.lower() == "agents":
        siblings = [path.with_name("tasks" + s) for s in SUFFIXES]
        found = [s for s in siblings if s.is_file()]
        if not found:
            raise refuse(
                "a CrewAI agents file without a tasks file beside it",
                str(path),
                hint="import the crew's folder or its tasks.yaml",
            )
        tasks = found[0]
    else:
        tasks = path
    agents = next(
        (a for a in (tasks.with_name("agents" + s) for s in SUFFIXES) if a.is_file()), None
    )
    crew = None
    for folder in (tasks.parent.parent, tasks.parent):
        for name in ("crew.py", "main.py"):
            if (folder / name).is_file() and _HIERARCHICAL.search(
                (folder / name).read_text(encoding="utf-8", errors="replace")
            ):
                crew = folder / name
    if crew is None and (tasks.parent.parent / "crew.py").is_file():
        crew = tasks.parent.parent / "crew.py"
    return agents, tasks, crew


def convert(
    tasks_text: str,
    tasks_file: str,
    agents_text: str | None = None,
    agents_file: str | None = None,
    crew_text: str | None = None,
    name: str | None = None,
) -> Conversion:
    """Convert a crew's tasks (and agents) config; raise ``SpecError`` when malformed."""
    tasks = load_structured(tasks_text, tasks_file)
    agents = load_structured(agents_text, agents_file or "agents.yaml") if agents_text else None
    return _Converter(tasks, agents, crew_text or "", name).run()


class _Converter:
    def __init__(self, tasks: Source, agents: Source | None, crew: str, name: str | None) -> None:
        self.tasks, self.agents_src = tasks, agents
        self.hierarchical = bool(_HIERARCHICAL.search(crew))
        manager = _MANAGER_LLM.search(crew)
        self.manager_llm = manager.group(1) if manager else None
        self.name = name
        self.notes: list[Note] = []
        self.inputs: dict[str, dict[str, Any]] = {}
        _mapping_of_mappings(tasks, "task")
        if agents is not None:
            _mapping_of_mappings(agents, "agent")

    def interpolate(self, text: str) -> str:
        """Return CrewAI text with ``{name}`` interpolations as ``{{ inputs.name }}``."""
        out, last = [], 0
        for match in _PLACEHOLDER.finditer(text):
            out.append(jinja_text(text[last : match.start()]))
            self.inputs.setdefault(match.group(1), {"required": True})
            out.append("{{ inputs." + match.group(1) + " }}")
            last = match.end()
        out.append(jinja_text(text[last:]))
        return "".join(out)

    def run(self) -> Conversion:
        subagents = self.subagents()
        labels = Labels()
        tasks: dict[str, dict[str, Any]] = self.tasks.data
        label_of = {key: labels.take(key, key) for key in tasks}
        steps: list[dict[str, Any]] = []
        makers: list[str] = []
        guardrails: list[str] = []
        group: list[dict[str, Any]] = []
        previous: list[str] = []  # what a task without `context` reads (CrewAI's default)
        data: dict[str, Any] = {}
        for i, (key, task) in enumerate(tasks.items()):
            for extra in task:
                if extra not in _TASK_KEYS:
                    self.notes.append(
                        Note(
                            f"task '{key}': the key '{extra}' is not mapped",
                            self.tasks.where(key, extra),
                        )
                    )
            label = label_of[key]
            if not task.get("async_execution") and group:
                steps += self.flush(group)
                previous, group = [s["label"] for s in group], []
            running = {s["label"] for s in group}
            context = task.get("context")
            if context is None:
                reads = previous
            else:
                reads = []
                for j, other in enumerate(context if isinstance(context, list) else [context]):
                    known = other in label_of and list(tasks).index(str(other)) < i
                    if known and label_of[other] not in running:
                        reads.append(label_of[other])
                    else:
                        self.notes.append(
                            Note(
                                f"task '{key}': the context task '{other}' does "
                                "not finish before it starts; left out",
                                self.tasks.where(key, "context", j),
                            )
                        )
            step = self.step(key, task, label, reads, subagents)
            if task.get("async_execution"):
                group.append(step)
            else:
                steps.append(step)
                previous = [label]
            if task.get("guardrail"):
                makers.append(label)
                guardrails.append(f"- {label}: {string(task['guardrail'])}")
            if task.get("human_input"):
                if group:
                    steps += self.flush(group)
                    previous, group = [s["label"] for s in group], []
                steps.append(
                    {
                        "approve": f"Is the output of '{label}' good to go on?",
                        "label": labels.take(f"Review {label}", "Review"),
                    }
                )
                self.notes.append(
                    Note(
                        f"task '{key}': human_input (a person comments on the answer before it "
                        "is final) became an approval gate after the step: approve or reject, "
                        "no comments back to the agent",
                        self.tasks.where(key, "human_input"),
                    )
                )
            if task.get("output_file"):
                self.notes.append(
                    Note(
                        f"task '{key}': output_file is not mapped: a loop keeps outputs in its "
                        "memory; write a file through a connector in onPass",
                        self.tasks.where(key, "output_file"),
                    )
                )
        steps += self.flush(group)
        if not steps:
            raise refuse("the CrewAI tasks file defines no task", self.tasks.file)
        if self.hierarchical:
            steps = [self.plan(tasks, steps, subagents)]
            makers = []
        folder = PurePath(self.tasks.file).parent
        data["name"] = loop_name(
            self.name, folder.parent.name if folder.name == "config" else folder.name, "crew"
        )
        # The file's name only: a local path would go into prompts, commits and other teams' views.
        data["description"] = (
            f"Imported from the CrewAI crew '{data['name']}' ({PurePath(self.tasks.file).name})."
        )
        data["tags"] = ["crewai"]
        data["trigger"] = {"type": "manual"}
        if self.inputs:
            data["inputs"] = self.inputs
        data["pipeline"] = steps
        if makers:
            data["verify"] = {"maker": makers, "checker": "guardrail"}
            subagents["guardrail"] = {
                "role": "verifier",
                "description": "The tasks' guardrails, as a checker.",
                "prompt": self.interpolate(
                    "Check each output against its guardrail; fail it when one is not met.\n"
                    + "\n".join(guardrails)
                ),
            }
        if subagents:
            data["subagents"] = subagents
        return Conversion(FORMAT, data, self.notes)

    def flush(self, group: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(group) > 1:
            return [{"parallel": list(group)}]
        return list(group)

    def step(
        self,
        key: str,
        task: dict[str, Any],
        label: str,
        reads: list[str],
        subagents: dict[str, Any],
    ) -> dict[str, Any]:
        description = string(task.get("description"))
        if not description:
            raise refuse(
                f"task '{key}' has no description", self.tasks.file, **_pos(self.tasks, key)
            )
        prompt = self.interpolate(description)
        expected = string(task.get("expected_output"))
        if expected:
            prompt += "\n\nExpected output: " + self.interpolate(expected)
        for other in reads:
            prompt += f"\n\nContext from '{other}':\n{{{{ {step_ref(other)}.output }}}}"
        step: dict[str, Any] = {"prompt": prompt, "label": label}
        agent = task.get("agent")
        if agent is not None:
            if str(agent) in subagents:
                step["subagent"] = str(agent)
            else:
                self.notes.append(
                    Note(
                        f"task '{key}': its agent '{agent}' is not defined in "
                        "the agents file; the step runs without it",
                        self.tasks.where(key, "agent"),
                    )
                )
        if task.get("tools"):
            self.notes.append(
                Note(
                    f"task '{key}': its tools are not mapped (CrewAI tools are "
                    "Python classes): declare connectors",
                    self.tasks.where(key, "tools"),
                )
            )
        return step

    def subagents(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.agents_src is None:
            self.notes.append(
                Note(
                    "no agents file beside the tasks file: steps run without subagents",
                    self.tasks.file,
                )
            )
            return out
        for key, agent in self.agents_src.data.items():
            role, goal = string(agent.get("role")), string(agent.get("goal"))
            backstory = string(agent.get("backstory"))
            parts = [
                f"You are {role}." if role else "",
                f"Your goal: {goal}" if goal else "",
                backstory,
            ]
            sub: dict[str, Any] = {"role": "executor"}
            if role:
                sub["description"] = role
            sub["prompt"] = self.interpolate("\n\n".join(p for p in parts if p))
            llm = agent.get("llm")
            if isinstance(llm, str) and llm.strip():
                sub["model"] = llm.strip()
            elif llm is not None:
                self.notes.append(
                    Note(
                        f"agent '{key}': llm is not a model name; not mapped",
                        self.agents_src.where(key, "llm"),
                    )
                )
            for extra in agent:
                if extra == "tools" and agent.get("tools"):
                    self.notes.append(
                        Note(
                            f"agent '{key}': its tools ({', '.join(map(str, agent['tools']))}) are "
                            "not mapped (CrewAI tools are Python classes): declare connectors",
                            self.agents_src.where(key, "tools"),
                        )
                    )
                elif extra == "allow_delegation" and agent.get(extra):
                    self.notes.append(
                        Note(
                            f"agent '{key}': delegation to other agents is not mapped",
                            self.agents_src.where(key, extra),
                        )
                    )
                elif extra not in _AGENT_KEYS:
                    self.notes.append(
                        Note(
                            f"agent '{key}': the key '{extra}' is not mapped",
                            self.agents_src.where(key, extra),
                        )
                    )
            out[str(key)] = sub
        return out

    def plan(
        self, tasks: dict[str, Any], steps: list[dict[str, Any]], subagents: dict[str, Any]
    ) -> dict[str, Any]:
        templates = {}
        for step in _agent_steps(steps):
            template = {
                "description": step["label"].replace("_", " "),
                "prompt": _no_context(step["prompt"]),
            }
            if "subagent" in step:
                template["subagent"] = step["subagent"]
            templates[step["label"]] = template
        subagents["manager"] = {
            "role": "planner",
            "description": "The crew's manager: delegates the tasks to the agents.",
            "prompt": "You manage a crew. Choose which task to delegate next, to whom, and "
            "stop when the crew's work is done.",
        }
        if self.manager_llm:
            subagents["manager"]["model"] = self.manager_llm
        self.notes.append(
            Note(
                "the crew's process is hierarchical: it became a plan step whose "
                "planner (the manager) chooses among the tasks; approvals, "
                "parallel tasks and guardrails of the tasks are not kept",
                self.tasks.file,
            )
        )
        return {
            "plan": "Complete the crew's tasks: " + ", ".join(templates) + ".",
            "label": "Crew",
            "planner": "manager",
            "templates": templates,
            "maxSteps": max(len(templates), 1),
        }


def _no_context(prompt: str) -> str:
    return prompt.split("\n\nContext from '")[0]


def _agent_steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for step in steps:
        if "prompt" in step:
            out.append(step)
        out += _agent_steps(step.get("parallel", []))
    return out


def _pos(source: Source, *path: str) -> dict[str, Any]:
    position = source.doc.position(tuple(path)) if source.doc else None
    return {"line": position[0], "column": position[1]} if position else {}


def _mapping_of_mappings(source: Source, kind: str) -> None:
    if not isinstance(source.data, dict) or not source.data:
        raise refuse(
            f"a CrewAI {kind}s file must map each {kind}'s name to its settings", source.file
        )
    for key, value in source.data.items():
        if not isinstance(value, dict):
            raise refuse(
                f"{kind} '{key}' must be a mapping of settings",
                source.file,
                **_pos(source, str(key)),
                path=str(key),
            )

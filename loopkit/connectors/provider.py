"""The engine's tool provider: a step's connectors, skills and subagent, as tools.

``ConnectorTools`` is what ``loopkit run`` and the web worker hand to
``run_loop(tool_provider=...)``. For each agent step it gathers:

- the tools of the step's connectors and of its subagent's connectors,
  narrowed by the step's ``tools:`` allow-list and the subagent's (a tool
  must pass both when both are set);
- for the step's and its subagent's skills: their descriptions for the
  system prompt and the ``load_skill`` / ``read_skill_file`` tools.

Every tool result is redacted before the model sees it: a secret resolved
for a connector (a token in a header) cannot travel back through a tool
into the model's answers, events or memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loopkit import secrets, spec
from loopkit.connectors import ConnectorError, ConnectorTool, Toolbox, select
from loopkit.engine.agent import ToolProvider
from loopkit.errors import RunError, SpecError
from loopkit.skills import Catalog, Skill, discover, instructions, resolve, skill_tools
from loopkit.tools import Tool, ToolResult


class Redacted(Tool):
    """A tool whose results have every known secret masked."""

    def __init__(self, inner: Tool) -> None:
        self.inner = inner
        self.name = inner.name
        self.description = inner.description
        self.parameters = inner.parameters

    async def call(self, arguments: dict[str, Any]) -> ToolResult:
        result = await self.inner.call(arguments)
        return ToolResult(
            secrets.redact(result.content), result.is_error, secrets.redact(result.data)
        )


class ConnectorTools(ToolProvider):
    """Tools for the agent steps of one run; connectors stop when the run ends."""

    def __init__(
        self,
        loop: spec.Loop,
        project: spec.Project | None = None,
        *,
        root: Path | None = None,
        env: Mapping[str, str] | None = None,
        catalog: Catalog | None = None,
        toolbox: Toolbox | None = None,
    ) -> None:
        self.root = root or Path.cwd()
        self.project = project
        self.subagents = {**(project.subagents if project else {}), **loop.subagents}
        self.toolbox = toolbox or Toolbox.for_loop(loop, project, env=env, root=self.root)
        self._catalog = catalog
        self._skills: dict[tuple[str, ...], list[Skill]] = {}

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            dirs = self.project.effective_skills_dirs if self.project else ["skills"]
            self._catalog = discover(self.root, dirs)
        return self._catalog

    def _subagent(self, step: spec.AgentStep) -> spec.SubAgent | None:
        return self.subagents.get(step.subagent) if step.subagent else None

    def skills_for(self, step: spec.AgentStep) -> list[Skill]:
        """Return the skills of ``step`` and its subagent; raise ``RunError`` for a missing one."""
        agent = self._subagent(step)
        refs = tuple(dict.fromkeys([*step.skills, *(agent.skills if agent else [])]))
        if not refs:
            return []
        if refs not in self._skills:
            try:
                self._skills[refs] = resolve(refs, self.catalog, self.root)
            except SpecError as exc:
                raise RunError(
                    f"{step.label or 'a step'}: " + "; ".join(p.message for p in exc.problems),
                    step=step.label,
                    code="unknown_skill",
                ) from None
        return self._skills[refs]

    async def tools_for(self, step: spec.AgentStep, loop: spec.Loop) -> list[Tool]:
        agent = self._subagent(step)
        names = list(dict.fromkeys([*step.connectors, *(agent.connectors if agent else [])]))
        try:
            tools = await self.toolbox.tools(names)
        except ConnectorError as exc:
            raise RunError(str(exc), step=step.label, code="connector_error") from None
        tools = select(tools, step.tools)
        if agent is not None:
            tools = select(tools, agent.tools)
        out: list[Tool] = [Redacted(t) for t in tools]
        out += skill_tools(self.skills_for(step))
        return out

    async def tool_for(self, step: spec.ToolStep, loop: spec.Loop) -> Tool | None:
        """Return the tool a ``tool:`` step calls, started with its connector (redacted)."""
        try:
            tools = await self.toolbox.tools([step.connector])
        except ConnectorError as exc:
            raise RunError(str(exc), step=step.label, code="connector_error") from None
        for tool in tools:
            if isinstance(tool, ConnectorTool) and tool.tool == step.tool_name:
                return Redacted(tool)
        return None

    async def instructions_for(self, step: spec.AgentStep, loop: spec.Loop) -> str:
        return instructions(self.skills_for(step))

    async def close(self) -> None:
        await self.toolbox.aclose()

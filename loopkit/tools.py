"""Tools an agent step can call: the seam between the engine and connectors.

The engine's agent step is a tool-use loop over a list of ``Tool``. Connectors
(MCP servers, HTTP APIs, SQL databases) produce tools; the engine neither knows
nor cares where a tool comes from.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ToolResult:
    """What a tool call gave back. ``is_error`` results are shown to the model, not raised."""

    content: str
    is_error: bool = False
    data: dict[str, Any] = field(default_factory=dict)


#: Longest tool result kept in a ``tool_called`` event (the summary a run view shows).
SUMMARY_CHARS = 500


def summary(result: ToolResult, limit: int = SUMMARY_CHARS) -> str:
    """Return a tool result as one line of at most ``limit`` characters (for events and logs)."""
    text = " ".join(result.content.split())
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


class Tool(ABC):
    """A function the model may call.

    Contract: ``name`` is unique within a step and matches ``^[a-zA-Z0-9_-]{1,64}$``;
    ``parameters`` is a JSON Schema object for the arguments; ``call`` never
    raises for a failure the model could react to (bad arguments, a 404, a
    refused query): it returns ``ToolResult(is_error=True)`` instead.
    """

    name: str
    description: str
    parameters: dict[str, Any]

    @abstractmethod
    async def call(self, arguments: dict[str, Any]) -> ToolResult:
        """Run the tool with the model's arguments."""

    def openai_schema(self) -> dict[str, Any]:
        """Return the tool in the OpenAI/LiteLLM function-calling shape."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters or {"type": "object", "properties": {}},
            },
        }


class FunctionTool(Tool):
    """A tool backed by a Python coroutine function (tests, built-ins)."""

    def __init__(self, name: str, description: str, parameters: dict[str, Any], func: Any) -> None:
        self.name, self.description, self.parameters, self._func = (
            name,
            description,
            parameters,
            func,
        )

    async def call(self, arguments: dict[str, Any]) -> ToolResult:
        result = await self._func(**arguments)
        return result if isinstance(result, ToolResult) else ToolResult(content=str(result))

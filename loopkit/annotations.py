"""GitHub Actions annotations: workflow commands that put a problem at its file:line.

A step that prints ``::error file=loops/x.yaml,line=12,col=5,title=...::message``
gets an annotation on that line of the pull request's diff and in the run's
summary (``::warning`` and ``::notice`` likewise). The runner reads these lines
from the step's output; the escaping follows the runner's rules (those of
``@actions/core``'s ``command.ts``): in the message ``%``, CR and LF are
percent-encoded; in a property, ``:`` and ``,`` are too, since they separate
properties. ``loopkit validate`` and ``loopkit test`` print them with
``--format github``, or by themselves when ``GITHUB_ACTIONS=true``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Level = Literal["error", "warning", "notice"]

__all__ = [
    "Annotation",
    "escape_data",
    "escape_property",
    "in_github_actions",
    "workspace_path",
]


def escape_data(text: str) -> str:
    """Escape a workflow command's message (``%``, CR and LF)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value (the message's escapes, ``:`` and ``,``)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def in_github_actions() -> bool:
    """Return True inside a GitHub Actions job (the runner sets ``GITHUB_ACTIONS=true``)."""
    return os.environ.get("GITHUB_ACTIONS") == "true"


def workspace_path(file: str) -> str:
    """Return ``file`` relative to the job's checkout (``GITHUB_WORKSPACE``) when inside it.

    GitHub places an annotation by the file's path in the repository; a path
    relative to another folder (the step's ``working-directory``) would miss.
    """
    workspace = os.environ.get("GITHUB_WORKSPACE")
    if not workspace:
        return file
    try:
        relative = Path(file).resolve().relative_to(Path(workspace).resolve())
    except (ValueError, OSError):
        return file
    return relative.as_posix()


@dataclass(frozen=True)
class Annotation:
    """One annotation; ``str()`` is its workflow command, one line."""

    level: Level
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    title: str | None = None

    def __str__(self) -> str:
        properties = []
        if self.file:
            properties.append(f"file={escape_property(workspace_path(self.file))}")
        if self.line is not None:
            properties.append(f"line={self.line}")
            if self.column is not None:
                properties.append(f"col={self.column}")
        if self.title:
            properties.append(f"title={escape_property(self.title)}")
        head = f"::{self.level}"
        if properties:
            head += " " + ",".join(properties)
        return f"{head}::{escape_data(self.message)}"

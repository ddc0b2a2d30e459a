"""Other tools' agent files in the builder: imported as loops, and a loop exported as gh-aw.

The import page and ``POST /api/loops/import`` take Dify DSL workflows,
CrewAI agents and tasks files (uploaded together), GitHub agentic workflows
(``.md``) and Open Agent Spec flows (``.json``/``.yaml``) beside loop files.
``convert_uploads`` turns each into canonical loop YAML with
``loopkit.importers`` (the CLI's ``loopkit import``) and keeps what did not
map, so the import answers with it; the loops are then imported like any
other, all or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from django.http import HttpRequest, HttpResponse

from builder.models import Loop
from builder.services import InvalidLoop, _problem
from loopkit import yamlio
from loopkit.errors import SpecError
from loopkit.importers import convert_upload, gh_aw_export


@dataclass
class Converted:
    """One uploaded file of another format, converted: what to show and to audit."""

    file: str
    format: str
    loop: str
    notes: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "format": self.format, "loop": self.loop, "notes": self.notes}


def convert_uploads(
    files: list[tuple[str, bytes]],
) -> tuple[list[tuple[str, bytes]], list[Converted]]:
    """Return the upload with other formats converted to loop YAML, and what was converted.

    Raise ``InvalidLoop`` (422) with every problem when a file of another
    format cannot be read or converted.
    """
    texts: list[tuple[str, str]] = []
    raw: dict[str, bytes] = {}
    for name, content in files:
        try:
            texts.append((name, content.decode("utf-8")))
        except UnicodeDecodeError:
            raw[name] = content  # not text: the loop validator says so
    try:
        imported, rest = convert_upload(texts)
    except SpecError as exc:
        bad = sorted({p.file or "upload" for p in exc.problems})
        raise InvalidLoop(
            f"nothing was imported: {len(bad)} file(s) cannot be converted ({', '.join(bad)})",
            errors=[{**_problem(p), "file": p.file} for p in exc.problems],
        ) from None
    out = [(name, text.encode("utf-8")) for name, text in rest]
    out += list(raw.items())
    converted = []
    for item in imported:
        shown = PurePosixPath(item.source).name
        out.append((f"{shown} ({item.format})", item.yaml.encode("utf-8")))
        converted.append(
            Converted(
                file=shown,
                format=item.format,
                loop=item.name,
                notes=[n.as_dict() for n in item.notes],
            )
        )
    return out, converted


def audit(converted: list[Converted]) -> dict[str, Any]:
    """Return what the import's audit event says of the converted files."""
    if not converted:
        return {}
    return {
        "converted": [
            {"file": c.file, "format": c.format, "loop": c.loop, "notes": len(c.notes)}
            for c in converted
        ]
    }


def export_gh_aw(yaml_text: str) -> tuple[str, list[str]]:
    """Return a stored (valid) loop version as a gh-aw workflow and what the export lost."""
    loop = yamlio.load_loop(yaml_text, check=False)
    markdown, lost = gh_aw_export.export(loop)
    return markdown, [str(n) for n in lost]


def gh_aw_response(request: HttpRequest, loop: Loop) -> HttpResponse:
    """Answer the loop's current version as a gh-aw download, audited as an export."""
    from loopkit_web.audit.services import record

    version = loop.current()
    markdown, lost = export_gh_aw(version.yaml)
    record(
        request,
        "loop.exported",
        loop,
        after={"version": version.number, "format": "gh-aw", "lost": lost},
    )
    response = HttpResponse(markdown, content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{loop.name}.md"'
    return response

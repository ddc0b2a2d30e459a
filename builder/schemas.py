"""Request and response bodies of the builder API (see docs/builder-api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import Field, Schema

from loopkit_web.errors import MAX_ID, ProblemOut
from loopkit_web.openapi import exactly_one_of

__all__ = ["ProblemOut"]  # re-exported: the validate API's problems are the errors' problems


class ValidateIn(Schema):
    model_config = exactly_one_of("yaml", "spec")

    yaml: str | None = Field(None, description="The loop as YAML text.")
    spec: dict[str, Any] | None = Field(None, description="The loop as JSON data (camelCase).")


class ValidateOut(Schema):
    ok: bool
    spec: dict[str, Any] | None
    yaml: str | None
    errors: list[ProblemOut]
    lrs: dict[str, Any] | None


class LoopCreateIn(Schema):
    yaml: str
    message: str = Field("", max_length=500)


class LoopSaveIn(Schema):
    yaml: str
    base_version: int = Field(ge=1, le=MAX_ID)
    message: str = Field("", max_length=500)


class LoopSummaryOut(Schema):
    id: int
    name: str
    description: str
    version: int
    lrs_score: int | None
    lrs_grade: str
    updated_at: datetime


class LoopOut(LoopSummaryOut):
    yaml: str
    spec: dict[str, Any]
    lrs: dict[str, Any] | None
    author: str
    message: str
    saved: bool = Field(True, description="False when a save changed nothing (same YAML).")
    tests: dict[str, Any] | None = Field(
        None,
        description="A save of a loop with tests: their replay against the new version "
        "(version, total, passed, failed, results), as POST /api/loops/{id}/tests/run.",
    )


class VersionSummaryOut(Schema):
    version: int
    author: str
    message: str
    created_at: datetime
    lrs_score: int | None
    lrs_grade: str
    restored_from: int | None


class VersionOut(VersionSummaryOut):
    yaml: str
    lrs: dict[str, Any] | None


class ChangeOut(Schema):
    kind: str
    path: str
    summary: str
    section: str
    label: str | None = None
    from_path: str | None = None


class DiffOut(Schema):
    from_version: int
    to_version: int
    yaml_from: str
    yaml_to: str
    changes: list[ChangeOut]
    lrs_from: dict[str, Any] | None
    lrs_to: dict[str, Any] | None


class ImportFile(Schema):
    name: str = Field(max_length=300)
    content: str


class ImportJsonIn(Schema):
    files: list[ImportFile]
    overwrite: bool = False
    message: str = Field("", max_length=500)


class ConvertedNoteOut(Schema):
    message: str
    where: str


class ConvertedOut(Schema):
    """A file of another tool's format, converted to a loop (loopkit.importers)."""

    file: str
    format: str
    loop: str
    notes: list[ConvertedNoteOut]


class ImportOut(Schema):
    created: list[str]
    updated: list[str]
    unchanged: list[str]
    converted: list[ConvertedOut] = []


class RepositoryIn(Schema):
    url: str = Field(min_length=1, max_length=500)
    branch: str = Field("main", max_length=200)
    folder: str = Field("loops/", max_length=200)
    username_env: str = Field("", max_length=100)
    password_env: str = Field("", max_length=100)


class RepositoryOut(Schema):
    url: str
    branch: str
    folder: str
    username_env: str
    password_env: str
    last_export_at: datetime | None
    last_export_commit: str
    last_import_at: datetime | None
    last_import_commit: str


class GitExportIn(Schema):
    message: str = Field("", max_length=500)


class GitExportOut(Schema):
    commit: str | None
    files: list[str]
    pushed: bool


class GitImportIn(Schema):
    overwrite: bool = False


class GitImportOut(ImportOut):
    commit: str

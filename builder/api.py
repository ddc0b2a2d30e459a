"""The builder API, mounted at /api/loops: validate, CRUD, versions, diff, import/export, git.

The contract is docs/builder-api.md. Reads need membership of the loop's team
(another team's ids are 404); mutations need the editor role, repository
settings the admin role.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.text import slugify
from ninja import Query, Router, Status
from pydantic import ValidationError as PydanticValidationError

from builder import conversions, gitsync, services
from builder.models import GitRepository, Loop, LoopVersion
from builder.schemas import (
    DiffOut,
    GitExportIn,
    GitExportOut,
    GitImportIn,
    GitImportOut,
    ImportJsonIn,
    ImportOut,
    LoopCreateIn,
    LoopOut,
    LoopSaveIn,
    LoopSummaryOut,
    RepositoryIn,
    RepositoryOut,
    ValidateIn,
    ValidateOut,
    VersionOut,
    VersionSummaryOut,
)
from loopkit_web.errors import MAX_ID, BadRequest, Invalid, NotFound, errors
from loopkit_web.openapi import DOWNLOAD, inline_refs
from loopkit_web.teams.scoping import current_team, get_scoped_or_404, require_role
from runs import looptests

API_PREFIX = "/loops"
router = Router(tags=["loops"])


def loop_out(
    loop: Loop, version: LoopVersion | None = None, *, saved: bool = True
) -> dict[str, Any]:
    """Return the API body of a loop at ``version`` (default: its current one)."""
    version = version or loop.current()
    return {
        "id": loop.pk,
        "name": loop.name,
        "description": loop.description,
        "version": loop.version,
        "lrs_score": loop.lrs_score,
        "lrs_grade": loop.lrs_grade,
        "updated_at": loop.updated_at,
        "yaml": version.yaml,
        "spec": services.loop_data(version.yaml),
        "lrs": version.lrs_report,
        "author": version.author_label,
        "message": version.message,
        "saved": saved,
    }


def _version_out(v: LoopVersion, *, full: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "version": v.number,
        "author": v.author_label,
        "message": v.message,
        "created_at": v.created_at,
        "lrs_score": v.lrs_score,
        "lrs_grade": v.lrs_grade,
        "restored_from": v.restored_from,
    }
    if full:
        out.update(yaml=v.yaml, lrs=v.lrs_report)
    return out


def _loop(request: HttpRequest, loop_id: int, role: str | None = None) -> Loop:
    loop: Loop = get_scoped_or_404(Loop.objects.select_related("team"), request, pk=loop_id)
    require_role(request, role or "viewer", team=loop.team)
    return loop


def _team(request: HttpRequest, role: str) -> Any:
    team = current_team(request)
    require_role(request, role, team=team)
    return team


@router.post("/validate", response={200: ValidateOut, **errors(400, 403, 413, 422)})
def validate(request: HttpRequest, body: ValidateIn) -> Any:
    """Validate a loop (YAML or JSON) and score it, with the engine itself."""
    if (body.yaml is None) == (body.spec is None):
        raise Invalid("send exactly one of 'yaml' or 'spec'")
    return services.validate(body.yaml, body.spec).as_dict()


@router.get("", response={200: list[LoopSummaryOut], **errors()})
def list_loops(request: HttpRequest) -> Any:
    """List the current team's loops (an API token's team for tokens)."""
    return Loop.objects.for_current_team(request).order_by("name")


@router.post("", response={201: LoopOut, **errors(400, 403, 404, 409, 413, 422)})
def create_loop(request: HttpRequest, body: LoopCreateIn) -> Any:
    team = _team(request, "editor")
    loop, version = services.create_loop(request, team, body.yaml, body.message)
    return Status(201, loop_out(loop, version))


@router.get("/export", response={200: None, **errors(404)}, openapi_extra=DOWNLOAD["zip"])
def export_all(request: HttpRequest) -> HttpResponse:
    """Download every loop of the current team as a zip of loops/<name>.yaml."""
    team = _team(request, "viewer")
    loops = list(Loop.objects.for_team(team).order_by("name"))
    data = services.export_zip(loops)
    from loopkit_web.audit.services import record

    record(
        request,
        "loops.exported",
        team=team,
        target_type="builder.loop",
        target_label=f"{len(loops)} loop(s)",
        after={"loops": [loop.name for loop in loops]},
    )
    response = HttpResponse(data, content_type="application/zip")
    name = slugify(team.name) or "team"
    response["Content-Disposition"] = f'attachment; filename="{name}-loops.zip"'
    return response


@router.post(
    "/import",
    response={200: ImportOut, **errors(400, 403, 404, 409, 413, 422)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["files"],
                        "properties": {
                            "files": {
                                "type": "array",
                                "minItems": 1,
                                "items": {"type": "string", "format": "binary"},
                            },
                            "overwrite": {"type": "boolean"},
                            "message": {"type": "string", "maxLength": 500},
                        },
                    }
                },
                "application/json": {"schema": inline_refs(ImportJsonIn.model_json_schema())},
            },
        }
    },
)
def import_files(request: HttpRequest) -> Any:
    """Import YAML files and/or zips (multipart field ``files``); ``overwrite=true`` saves
    clashing names as new versions. All or nothing."""
    team = _team(request, "editor")
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared > services.max_upload_bytes():
        raise services.too_large(declared)  # refused before the body is read
    if request.content_type == "application/json":
        # Read the stream, not request.body: that one stops at DATA_UPLOAD_MAX_MEMORY_SIZE
        # (2.5 MB), below the import limit checked above.
        raw = request.read(services.max_upload_bytes() + 1)
        if len(raw) > services.max_upload_bytes():
            raise services.too_large(len(raw))
        try:
            body = ImportJsonIn.model_validate_json(raw)
        except PydanticValidationError as exc:
            raise Invalid(f"invalid import body: {exc.errors()[0]['msg']}") from None
        uploads = [(f.name, f.content.encode()) for f in body.files]
        overwrite, message = body.overwrite, body.message
    else:
        try:
            uploaded = request.FILES.getlist("files")
        except MultiPartParserError as exc:
            raise BadRequest(f"the multipart body cannot be read: {exc}") from None
        uploads = [(f.name or "upload", f.read()) for f in uploaded]
        overwrite = str(request.POST.get("overwrite", "")).lower() in ("1", "true", "on", "yes")
        message = request.POST.get("message", "")
    files, converted = conversions.convert_uploads(services.expand_uploads(uploads))
    result = services.import_loops(
        request,
        team,
        files,
        overwrite=overwrite,
        message=message,
        audit_extra=conversions.audit(converted),
    )
    return {**result.as_dict(), "converted": [c.as_dict() for c in converted]}


@router.get("/repository", response={200: RepositoryOut, **errors(404)})
def get_repository(request: HttpRequest) -> Any:
    team = _team(request, "viewer")
    return get_scoped_or_404(GitRepository, request, team=team)


@router.put("/repository", response={200: RepositoryOut, **errors(400, 403, 404, 413, 422)})
def put_repository(request: HttpRequest, body: RepositoryIn) -> Any:
    team = _team(request, "admin")
    return gitsync.configure(request, team, body.dict())


@router.delete("/repository", response={204: None, **errors(403, 404)})
def delete_repository(request: HttpRequest) -> Any:
    team = _team(request, "admin")
    gitsync.remove(request, get_scoped_or_404(GitRepository, request, team=team))
    return Status(204, None)


@router.post(
    "/repository/export", response={200: GitExportOut, **errors(400, 403, 404, 413, 422, 502)}
)
def git_export(request: HttpRequest, body: GitExportIn) -> Any:
    team = _team(request, "editor")
    repo = get_scoped_or_404(GitRepository, request, team=team)
    return gitsync.export_to_repository(request, repo, body.message)


@router.post(
    "/repository/import", response={200: GitImportOut, **errors(400, 403, 404, 409, 413, 422, 502)}
)
def git_import(request: HttpRequest, body: GitImportIn) -> Any:
    team = _team(request, "editor")
    repo = get_scoped_or_404(GitRepository, request, team=team)
    result, commit = gitsync.import_from_repository(request, repo, overwrite=body.overwrite)
    return {**result.as_dict(), "commit": commit}


@router.get("/{id:loop_id}", response={200: LoopOut, **errors(404)})
def get_loop(request: HttpRequest, loop_id: int) -> Any:
    return loop_out(_loop(request, loop_id))


@router.put("/{id:loop_id}", response={200: LoopOut, **errors(400, 403, 404, 409, 413, 422)})
def save_loop(request: HttpRequest, loop_id: int, body: LoopSaveIn) -> Any:
    """Save a new version; 409 with the other change when ``base_version`` is stale."""
    loop = _loop(request, loop_id, "editor")
    loop, version, created = services.save_loop(
        request, loop, body.yaml, body.base_version, body.message
    )
    out = loop_out(loop, version, saved=created)
    if created and loop.tests.exists():  # replayed from cassettes: dry, no cost (runs.looptests)
        out["tests"] = looptests.summary(
            looptests.run_tests(request, loop, version, trigger="save")
        )
    return out


@router.delete("/{id:loop_id}", response={204: None, **errors(403, 404)})
def delete_loop(request: HttpRequest, loop_id: int) -> Any:
    services.delete_loop(request, _loop(request, loop_id, "editor"))
    return Status(204, None)


@router.get(
    "/{id:loop_id}/export", response={200: None, **errors(404)}, openapi_extra=DOWNLOAD["yaml"]
)
def export_one(request: HttpRequest, loop_id: int) -> HttpResponse:
    """Download the current version's YAML."""
    from loopkit_web.audit.services import record

    loop = _loop(request, loop_id)
    version = loop.current()
    record(request, "loop.exported", loop, after={"version": version.number})
    response = HttpResponse(version.yaml, content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{loop.name}.yaml"'
    return response


@router.get(
    "/{id:loop_id}/export/gh-aw",
    response={200: None, **errors(404)},
    openapi_extra=DOWNLOAD["markdown"],
)
def export_gh_aw(request: HttpRequest, loop_id: int) -> HttpResponse:
    """Download the current version as a GitHub agentic workflow (markdown with front matter).

    What the workflow cannot say (docs/import-export.md) is recorded in the audit event.
    """
    return conversions.gh_aw_response(request, _loop(request, loop_id))


@router.get("/{id:loop_id}/versions", response={200: list[VersionSummaryOut], **errors(404)})
def list_versions(request: HttpRequest, loop_id: int) -> Any:
    loop = _loop(request, loop_id)
    return [_version_out(v) for v in loop.versions.order_by("-number")]


@router.get("/{id:loop_id}/versions/{id:number}", response={200: VersionOut, **errors(404)})
def get_version(request: HttpRequest, loop_id: int, number: int) -> Any:
    version = get_scoped_or_404(LoopVersion, request, loop_id=loop_id, number=number)
    require_role(request, "viewer", team=version.loop.team)
    return _version_out(version, full=True)


@router.get("/{id:loop_id}/diff", response={200: DiffOut, **errors(404, 422)})
def diff(
    request: HttpRequest,
    loop_id: int,
    # ninja types Query as a generic alias for annotations; called as a default it is untyped.
    from_: int | None = Query(None, alias="from", ge=1, le=MAX_ID),  # type: ignore[type-arg]
    to: int | None = Query(None, ge=1, le=MAX_ID),  # type: ignore[type-arg]
) -> Any:
    """Compare two versions (default: the previous and the current one)."""
    loop = _loop(request, loop_id)
    to = to if to is not None else loop.version
    from_ = from_ if from_ is not None else max(to - 1, 1)
    versions = {v.number: v for v in loop.versions.filter(number__in=[from_, to])}
    missing = [n for n in (from_, to) if n not in versions]
    if missing:
        raise NotFound(f"'{loop.name}' has no version {missing[0]}")
    old, new = versions[from_], versions[to]
    return {
        "from_version": from_,
        "to_version": to,
        "yaml_from": old.yaml,
        "yaml_to": new.yaml,
        "changes": services.changes_between(old, new),
        "lrs_from": old.lrs_report,
        "lrs_to": new.lrs_report,
    }


@router.post(
    "/{id:loop_id}/versions/{id:number}/restore", response={200: LoopOut, **errors(403, 404, 409)}
)
def restore(request: HttpRequest, loop_id: int, number: int) -> Any:
    """Make a new version with the YAML of version ``number``."""
    loop = _loop(request, loop_id, "editor")
    if not loop.versions.filter(number=number).exists():
        raise NotFound(f"'{loop.name}' has no version {number}")
    loop, version = services.restore_version(request, loop, number)
    return loop_out(loop, version)

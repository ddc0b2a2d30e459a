"""Server-rendered pages: loop list and detail, the editor shell, diff, import/export, git.

The editor page mounts the React island built from frontend/ when its files
exist; without them it is a plain YAML form posting to the same service
(progressive enhancement). Every mutation goes through ``builder.services``
or ``builder.gitsync``, which audit it.
"""

from __future__ import annotations

import difflib
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_http_methods, require_POST

from builder import conversions, definitions, gitsync, services
from builder.gallery import example_templates, team_templates, template_yaml
from builder.models import GitRepository, Loop
from loopkit_web.accounts.decorators import download_view
from loopkit_web.audit.services import record
from loopkit_web.teams.models import ROLE_RANK
from loopkit_web.teams.scoping import current_team, get_scoped_or_404, membership_for, require_role
from runs import looptests

STARTER_YAML = """name: my-loop
description: What this loop does.
pipeline:
  - prompt: Describe the first step.
    label: First step
"""


def _loop(request: HttpRequest, loop_id: int, role: str = "viewer") -> Loop:
    loop: Loop = get_scoped_or_404(Loop.objects.select_related("team"), request, pk=loop_id)
    require_role(request, role, team=loop.team)
    return loop


def _team(request: HttpRequest, role: str) -> Any:
    team = current_team(request)
    require_role(request, role, team=team)
    return team


def _can(request: HttpRequest, team: Any, role: str) -> bool:
    membership = membership_for(request, team)
    return membership is not None and ROLE_RANK[membership.role] >= ROLE_RANK[role]


def static_built(*names: str) -> bool:
    """Return True if these built static files (frontend/'s Vite output) are there to load."""
    return all(finders.find(n) or staticfiles_storage.exists(n) for n in names)


def editor_built() -> bool:
    """Return True if the Vite build of the editor island is there to load."""
    return static_built("editor/editor.js", "editor/editor.css")


@login_required
def loop_list(request: HttpRequest) -> HttpResponse:
    team = _team(request, "viewer")
    loops = Loop.objects.for_team(team).order_by("name")
    return render(
        request,
        "builder/loop_list.html",
        {
            "team": team,
            "loops": loops,
            "can_edit": _can(request, team, "editor"),
            "repository": GitRepository.objects.filter(team=team).first(),
        },
    )


@login_required
def loop_detail(request: HttpRequest, loop_id: int) -> HttpResponse:
    loop = _loop(request, loop_id)
    versions = list(loop.versions.order_by("-number"))
    return render(
        request,
        "builder/loop_detail.html",
        {
            "loop": loop,
            "versions": versions,
            "current": versions[0] if versions else None,
            "can_edit": _can(request, loop.team, "editor"),
        },
    )


def _editor_page(
    request: HttpRequest,
    loop: Loop | None,
    text: str,
    *,
    read_only: bool,
    status: int = 200,
    errors: list[dict[str, Any]] | None = None,
    conflict: dict[str, Any] | None = None,
    message: str = "",
    base_version: int | None = None,
    template: str = "",
) -> HttpResponse:
    # A new loop: the island validates its own starter (or the template's copy) and its LRS.
    lrs = loop.lrs_report if loop is not None else None
    team = loop.team if loop is not None else current_team(request)
    editor_data = {
        "loopId": loop.pk if loop is not None else None,
        "version": loop.version if loop is not None else None,
        "yaml": text if loop is not None else template,
        "lrs": lrs,
        "apiBase": "/api/loops",
        "readOnly": read_only,
        "csrfToken": get_token(request),
        # Test runs keep their pinned outputs per user and loop in the browser.
        "user": str(request.user.pk or ""),
        # What the team's loops define and the server's skills, for the pickers.
        **definitions.team_definitions(team),
        "versionsUrl": reverse("builder:loop_detail", args=[loop.pk]) if loop else None,
        "diffUrl": reverse("builder:loop_diff", args=[loop.pk]) if loop else None,
        "editUrl": reverse("builder:loop_list") + "{id}/edit/",
    }
    return render(
        request,
        "builder/loop_edit.html",
        {
            "loop": loop,
            "yaml_text": text,
            "editor_data": editor_data,
            "editor_built": editor_built(),
            "read_only": read_only,
            "errors": errors or [],
            "conflict": conflict,
            "message": message,
            "base_version": base_version
            if base_version is not None
            else (loop.version if loop else 0),
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def loop_new(request: HttpRequest) -> HttpResponse:
    team = _team(request, "editor")
    if request.method == "POST":
        text = request.POST.get("yaml", "")
        message = request.POST.get("message", "")
        try:
            loop, _ = services.create_loop(request, team, text, message)
        except services.BuilderError as exc:
            messages.error(request, exc.message)
            return _editor_page(
                request, None, text, read_only=False, status=exc.status,
                errors=exc.extra.get("errors"), message=message,
            )  # fmt: skip
        messages.success(request, f"Created loop “{loop.name}” (version 1).")
        return redirect("builder:loop_edit", loop_id=loop.pk)
    source = request.GET.get("from", "")
    if source:  # a copy of a template of the gallery (loop_templates), not saved yet
        text = template_yaml(team, source)
        return _editor_page(request, None, text, read_only=False, template=text)
    return _editor_page(request, None, STARTER_YAML, read_only=False)


@login_required
def loop_templates(request: HttpRequest) -> HttpResponse:
    """The gallery of "New loop": the example loops and the team's loops, to start from a copy."""
    team = _team(request, "editor")
    return render(
        request,
        "builder/loop_templates.html",
        {
            "team": team,
            "examples": example_templates(),
            "team_loops": team_templates(team),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def loop_edit(request: HttpRequest, loop_id: int) -> HttpResponse:
    if request.method == "POST":
        loop = _loop(request, loop_id, "editor")
        text = request.POST.get("yaml", "")
        message = request.POST.get("message", "")
        try:
            base = int(request.POST.get("base_version", ""))
        except ValueError:
            base = -1
        try:
            loop, version, created = services.save_loop(request, loop, text, base, message)
        except services.BuilderError as exc:
            messages.error(request, exc.message)
            return _editor_page(
                request, loop, text, read_only=False, status=exc.status,
                errors=exc.extra.get("errors"), conflict=exc.extra.get("current") and exc.extra,
                message=message, base_version=base,
            )  # fmt: skip
        if created:
            messages.success(request, f"Saved version {version.number} of “{loop.name}”.")
            if loop.tests.exists():  # replayed from their cassettes (runs.looptests)
                results = looptests.run_tests(request, loop, version, trigger="save")
                passed = sum(1 for r in results if r.passed)
                level = messages.success if passed == len(results) else messages.error
                level(request, f"Tests: {passed}/{len(results)} passed on v{version.number}.")
        else:
            messages.info(request, "Nothing changed: no new version was made.")
        return redirect("builder:loop_edit", loop_id=loop.pk)
    loop = _loop(request, loop_id)
    return _editor_page(
        request, loop, loop.current().yaml, read_only=not _can(request, loop.team, "editor")
    )


def side_by_side(old: str, new: str) -> list[dict[str, Any]]:
    """Return rows of a side-by-side line diff: numbers, texts and the change tag."""
    a, b = old.splitlines(), new.splitlines()
    rows: list[dict[str, Any]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        for k in range(max(i2 - i1, j2 - j1)):
            left = i1 + k if i1 + k < i2 else None
            right = j1 + k if j1 + k < j2 else None
            rows.append(
                {
                    "tag": tag,
                    "left_no": left + 1 if left is not None else None,
                    "left": a[left] if left is not None else "",
                    "right_no": right + 1 if right is not None else None,
                    "right": b[right] if right is not None else "",
                }
            )
    return rows


@login_required
def loop_diff(request: HttpRequest, loop_id: int) -> HttpResponse:
    loop = _loop(request, loop_id)

    def number(name: str, default: int) -> int:
        try:
            return int(request.GET.get(name, default))
        except ValueError:
            return default

    to = number("to", loop.version)
    from_ = number("from", max(to - 1, 1))
    versions = {v.number: v for v in loop.versions.filter(number__in=[from_, to])}
    if from_ not in versions or to not in versions:
        messages.error(
            request, f"“{loop.name}” has no version {from_ if from_ not in versions else to}."
        )
        return redirect("builder:loop_detail", loop_id=loop.pk)
    old, new = versions[from_], versions[to]
    changes = services.changes_between(old, new)
    return render(
        request,
        "builder/loop_diff.html",
        {
            "loop": loop,
            "old": old,
            "new": new,
            "rows": side_by_side(old.yaml, new.yaml),
            "changes": changes,
            "graph_built": static_built("editor/graph.js", "editor/graph.css"),
            "graph_data": {
                "spec": services.loop_data(new.yaml),
                # A removed step has no node left; a removed section still has its own.
                "highlight": [
                    c["path"] for c in changes if c["kind"] != "removed" or c["section"] != "step"
                ],
            },
            "numbers": list(loop.versions.order_by("-number").values_list("number", flat=True)),
            "can_edit": _can(request, loop.team, "editor"),
        },
    )


@login_required
@require_POST
def restore_version(request: HttpRequest, loop_id: int, number: int) -> HttpResponse:
    loop = _loop(request, loop_id, "editor")
    if not loop.versions.filter(number=number).exists():
        messages.error(request, f"“{loop.name}” has no version {number}.")
        return redirect("builder:loop_detail", loop_id=loop.pk)
    loop, version = services.restore_version(request, loop, number)
    messages.success(request, f"Restored version {number} as version {version.number}.")
    return redirect("builder:loop_detail", loop_id=loop.pk)


@login_required
@require_POST
def loop_delete(request: HttpRequest, loop_id: int) -> HttpResponse:
    loop = _loop(request, loop_id, "editor")
    name = loop.name
    services.delete_loop(request, loop)
    messages.success(request, f"Deleted loop “{name}” and its versions.")
    return redirect("builder:loop_list")


@download_view
def export_one(request: HttpRequest, loop_id: int) -> HttpResponse:
    loop = _loop(request, loop_id)
    version = loop.current()
    record(request, "loop.exported", loop, after={"version": version.number})
    response = HttpResponse(version.yaml, content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{loop.name}.yaml"'
    return response


@download_view
def export_gh_aw(request: HttpRequest, loop_id: int) -> HttpResponse:
    return conversions.gh_aw_response(request, _loop(request, loop_id))


@download_view
def export_all(request: HttpRequest) -> HttpResponse:
    team = _team(request, "viewer")
    loops = list(Loop.objects.for_team(team).order_by("name"))
    record(
        request,
        "loops.exported",
        team=team,
        target_type="builder.loop",
        target_label=f"{len(loops)} loop(s)",
        after={"loops": [loop.name for loop in loops]},
    )
    response = HttpResponse(services.export_zip(loops), content_type="application/zip")
    response["Content-Disposition"] = (
        f'attachment; filename="{slugify(team.name) or "team"}-loops.zip"'
    )
    return response


@login_required
@require_http_methods(["GET", "POST"])
def import_loops(request: HttpRequest) -> HttpResponse:
    team = _team(request, "editor")
    context: dict[str, Any] = {"team": team, "errors": [], "conflicts": []}
    status = 200
    if request.method == "POST":
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        try:
            if declared > services.max_upload_bytes():
                raise services.too_large(declared)
            uploads = [(f.name or "upload", f.read()) for f in request.FILES.getlist("files")]
            files, converted = conversions.convert_uploads(services.expand_uploads(uploads))
            result = services.import_loops(
                request,
                team,
                files,
                overwrite=request.POST.get("overwrite") == "on",
                message=request.POST.get("message", ""),
                audit_extra=conversions.audit(converted),
            )
        except services.BuilderError as exc:
            messages.error(request, exc.message)
            context["errors"] = exc.extra.get("errors", [])
            context["conflicts"] = exc.extra.get("conflicts", [])
            status = exc.status
        else:
            messages.success(request, _import_summary(result.as_dict()))
            if not converted:
                return redirect("builder:loop_list")
            # Converted files: stay to show what did not map, with links to the loops.
            names = {loop.name: loop.pk for loop in Loop.objects.for_team(team)}
            context["converted"] = [{**c.as_dict(), "pk": names.get(c.loop)} for c in converted]
    context["max_bytes"] = services.max_upload_bytes()
    return render(request, "builder/import.html", context, status=status)


def _import_summary(result: dict[str, list[str]]) -> str:
    parts = [f"{label}: {', '.join(names)}" for label, names in result.items() if names]
    return "Imported. " + "; ".join(parts) if parts else "Nothing to import."


@login_required
@require_http_methods(["GET", "POST"])
def repository(request: HttpRequest) -> HttpResponse:
    team = _team(request, "viewer")
    repo = GitRepository.objects.filter(team=team).first()
    can_admin = _can(request, team, "admin")
    data: dict[str, Any] = (
        {f: getattr(repo, f) for f in gitsync.REPO_FIELDS}
        if repo
        else {
            "url": "",
            "branch": "main",
            "folder": "loops/",
            "username_env": "",
            "password_env": "",
        }
    )
    status = 200
    if request.method == "POST":
        require_role(request, "admin", team=team)
        data = {f: request.POST.get(f, "") for f in gitsync.REPO_FIELDS}
        try:
            if request.POST.get("remove") and repo is not None:
                gitsync.remove(request, repo)
                messages.success(request, "The repository settings were removed.")
            else:
                gitsync.configure(request, team, data)
                messages.success(request, "Repository settings saved.")
            return redirect("builder:repository")
        except services.BuilderError as exc:
            messages.error(request, exc.message)
            status = exc.status
    return render(
        request,
        "builder/repository.html",
        {
            "team": team,
            "repo": repo,
            "data": data,
            "can_admin": can_admin,
            "can_edit": _can(request, team, "editor"),
        },
        status=status,
    )


@login_required
@require_POST
def repository_export(request: HttpRequest) -> HttpResponse:
    team = _team(request, "editor")
    repo = get_scoped_or_404(GitRepository, request, team=team)
    try:
        result = gitsync.export_to_repository(request, repo, request.POST.get("message", ""))
    except services.BuilderError as exc:
        messages.error(request, exc.message)
    else:
        if result["pushed"]:
            messages.success(
                request,
                f"Exported {len(result['files'])} loop(s): commit {result['commit'][:10]} pushed.",
            )
        else:
            messages.info(request, "The repository already has these loops: nothing to commit.")
    return redirect("builder:repository")


@login_required
@require_POST
def repository_import(request: HttpRequest) -> HttpResponse:
    team = _team(request, "editor")
    repo = get_scoped_or_404(GitRepository, request, team=team)
    try:
        result, commit = gitsync.import_from_repository(
            request, repo, overwrite=request.POST.get("overwrite") == "on"
        )
    except services.BuilderError as exc:
        messages.error(request, exc.message)
        return redirect("builder:repository")
    messages.success(request, f"{_import_summary(result.as_dict())} (commit {commit[:10]})")
    return redirect("builder:loop_list")

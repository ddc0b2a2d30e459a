"""Loop mutations and reads shared by the API, the pages and git sync.

Every mutation runs in one transaction and writes one audit event through
``loopkit_web.audit.services.record``. Validation is the engine's own
(``loopkit.document.analyze``): the web app never re-implements a rule of the
loop spec.
"""

from __future__ import annotations

import io
import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import PurePosixPath
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from builder.changes import Change, loop_changes
from builder.models import Loop, LoopVersion
from loopkit import spec, yamlio
from loopkit.document import Analysis, analyze
from loopkit.errors import Problem
from loopkit_web.audit.services import record, snapshot
from loopkit_web.errors import ApiError
from runs.looptests import export_files

AUDITED = ["name", "version", "lrs_score", "lrs_grade"]


class BuilderError(ApiError):
    """A request the builder refuses (400 unless the kind or ``status=`` says otherwise)."""


class InvalidLoop(BuilderError):
    status = 422
    code = "invalid_loop"


class NameClash(BuilderError):
    status = 409
    code = "name_taken"


class StaleVersion(BuilderError):
    status = 409
    code = "stale_version"


# ── Validation ────────────────────────────────────────────────────────────


def _problem(p: Problem) -> dict[str, Any]:
    return {
        "message": p.message,
        "path": p.path,
        "line": p.line,
        "column": p.column,
        "code": p.code,
        "hint": p.hint,
    }


class Validation:
    """The engine's analysis of one loop, in the API's terms: canonical forms, errors, LRS."""

    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis

    @property
    def loop(self) -> spec.Loop | None:
        return self.analysis.loop

    @property
    def data(self) -> dict[str, Any] | None:
        return self.analysis.data

    @property
    def yaml(self) -> str | None:
        return self.analysis.yaml

    @cached_property
    def errors(self) -> list[dict[str, Any]]:
        return [_problem(p) for p in self.analysis.problems]

    @cached_property
    def lrs(self) -> dict[str, Any] | None:
        report = self.analysis.report
        return report.as_dict() if report is not None else None

    @property
    def ok(self) -> bool:
        return self.analysis.ok

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "spec": self.data,
            "yaml": self.yaml,
            "errors": self.errors,
            "lrs": self.lrs,
        }

    def raise_if_invalid(self, file: str | None = None) -> None:
        if not self.ok:
            where = f"{file}: " if file else ""
            first = self.errors[0] if self.errors else {"message": "invalid loop"}
            at = f" (line {first['line']})" if first.get("line") else ""
            raise InvalidLoop(
                f"{where}the loop is not valid: {first['message']}{at}",
                errors=self.errors,
                file=file,
            )


def validate(
    text: str | bytes | None = None, data: Any = None, *, file: str | None = None
) -> Validation:
    """Validate YAML text or loop data (JSON, camelCase) with ``loopkit.document.analyze``.

    A loop that passes the schema but fails a cross-reference check still gets
    its canonical spec, YAML and LRS (so the editor can keep drawing it), with
    ``ok`` false and the problems in ``errors``.
    """
    return Validation(analyze(text if text is not None else data, file=file))


#: Canonical data by canonical YAML: a version's data is known from the save that wrote it.
_DATA: OrderedDict[str, dict[str, Any]] = OrderedDict()
_DATA_MAX = 64
_DATA_LOCK = threading.Lock()


def _remember(yaml_text: str, data: dict[str, Any]) -> None:
    with _DATA_LOCK:
        _DATA[yaml_text] = data
        _DATA.move_to_end(yaml_text)
        while len(_DATA) > _DATA_MAX:
            _DATA.popitem(last=False)


def loop_data(text: str) -> dict[str, Any]:
    """Return the canonical data of a stored (hence valid) version's YAML.

    The data of a version this process just validated (a save answering with
    the saved loop) is not parsed again. Callers must not change it.
    """
    known = _DATA.get(text)
    if known is not None:
        return known
    data: dict[str, Any] = yamlio.to_data(yamlio.load_loop(text, check=False))
    _remember(text, data)
    return data


def changes_between(old: LoopVersion, new: LoopVersion) -> list[Change]:
    """Return the change list from version ``old`` to version ``new``."""
    return loop_changes(loop_data(old.yaml), loop_data(new.yaml), old.lrs_report, new.lrs_report)


# ── Mutations ─────────────────────────────────────────────────────────────


def _author(request: HttpRequest | None) -> Any:
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


def _add_version(
    loop: Loop,
    checked: Validation,
    request: HttpRequest | None,
    message: str,
    restored_from: int | None = None,
) -> LoopVersion:
    """Append a version to ``loop`` (locked by the caller) and make it current."""
    if checked.loop is None or checked.yaml is None or checked.data is None:
        raise InvalidLoop("the loop is not valid")
    _remember(checked.yaml, checked.data)
    author = _author(request)
    loop.version += 1
    loop.name = checked.loop.name
    loop.description = checked.loop.description or ""
    lrs = checked.lrs or {}
    loop.lrs_score = lrs.get("score")
    loop.lrs_grade = lrs.get("grade") or ""
    loop.lrs_report = checked.lrs
    loop.updated_at = timezone.now()
    _check_name_free(loop)
    loop.save()
    return LoopVersion.objects.create(
        loop=loop,
        number=loop.version,
        yaml=checked.yaml,
        author=author,
        author_label=author.get_username() if author is not None else "",
        message=message[:500],
        lrs_score=loop.lrs_score,
        lrs_grade=loop.lrs_grade,
        lrs_report=checked.lrs,
        restored_from=restored_from,
    )


def _check_name_free(loop: Loop) -> None:
    clash = Loop.objects.filter(team_id=loop.team_id, name=loop.name).exclude(pk=loop.pk)
    if clash.exists():
        raise NameClash(
            f"a loop named '{loop.name}' already exists in this team: "
            "rename this one or edit the existing loop",
            name=loop.name,
        )


def create_loop(
    request: HttpRequest | None, team: Any, text: str, message: str = ""
) -> tuple[Loop, LoopVersion]:
    """Create a loop from YAML text; raise InvalidLoop or NameClash."""
    checked = validate(text)
    checked.raise_if_invalid()
    try:
        with transaction.atomic():
            loop = Loop(team=team, created_by=_author(request))
            version = _add_version(loop, checked, request, message or "Created")
            record(request, "loop.created", loop, after=snapshot(loop, AUDITED))
    except IntegrityError:  # a concurrent create of the same name won the race
        # checked is valid (raise_if_invalid above), so it has a loop.
        raise NameClash(f"a loop named '{checked.loop.name}' already exists in this team") from None  # type: ignore[union-attr]
    return loop, version


def save_loop(
    request: HttpRequest | None, loop: Loop, text: str, base_version: int, message: str = ""
) -> tuple[Loop, LoopVersion, bool]:
    """Save ``text`` as a new version of ``loop`` if ``base_version`` is still current.

    Return ``(loop, version, created)``; ``created`` is False when the canonical
    YAML equals the current version's (nothing to save). Raise StaleVersion
    (with the other change) when someone saved since ``base_version``.
    """
    checked = validate(text)
    checked.raise_if_invalid()
    with transaction.atomic():
        locked = Loop.objects.select_for_update().get(pk=loop.pk)
        current = locked.versions.get(number=locked.version)
        if base_version != locked.version:
            base = locked.versions.filter(number=base_version).first()
            raise StaleVersion(
                f"version {base_version} is not the current version of '{locked.name}': "
                f"{current.author_label or 'someone'} saved version {locked.version} since. "
                "Reload it (or copy your changes) and save again.",
                current=current.as_dict(),
                changes=changes_between(base, current) if base is not None else [],
            )
        if current.yaml == checked.yaml:
            return locked, current, False
        before = snapshot(locked, AUDITED)
        version = _add_version(locked, checked, request, message or f"Version {locked.version + 1}")
        record(request, "loop.saved", locked, before=before, after=snapshot(locked, AUDITED))
    return locked, version, True


def restore_version(
    request: HttpRequest | None, loop: Loop, number: int
) -> tuple[Loop, LoopVersion]:
    """Make a new version holding the YAML of version ``number``."""
    with transaction.atomic():
        locked = Loop.objects.select_for_update().get(pk=loop.pk)
        old = locked.versions.get(number=number)
        checked = validate(old.yaml)
        if checked.loop is None:
            raise InvalidLoop(f"version {number} no longer loads", errors=checked.errors)
        before = snapshot(locked, AUDITED)
        version = _add_version(
            locked, checked, request, f"Restored version {number}", restored_from=number
        )
        record(
            request,
            "loop.restored",
            locked,
            before={**before, "restored_from": None},
            after={**snapshot(locked, AUDITED), "restored_from": number},
        )
    return locked, version


def delete_loop(request: HttpRequest | None, loop: Loop) -> None:
    """Delete a loop and all its versions."""
    with transaction.atomic():
        before = snapshot(loop, AUDITED)
        record(request, "loop.deleted", loop, before=before)
        loop.delete()


# ── Import and export ─────────────────────────────────────────────────────


def max_upload_bytes() -> int:
    return int(getattr(settings, "LOOPKIT_IMPORT_MAX_BYTES", 10 * 1024 * 1024))


MAX_ZIP_MEMBERS = 1000
MAX_ZIP_RATIO = 200


def too_large(size: int) -> BuilderError:
    return BuilderError(
        f"the upload is {size:,} bytes; imports are limited to {max_upload_bytes():,} bytes",
        status=413,
    )


def is_loop_file(name: str) -> bool:
    return name.lower().endswith((".yaml", ".yml"))


#: Files of other tools' formats the import converts (builder.conversions): gh-aw
#: workflows (.md), Agent Spec flows (.json), CrewAI config (.jsonc); their YAML
#: forms (Dify, CrewAI, Agent Spec) end in .yaml/.yml like loops.
FOREIGN_SUFFIXES = (".md", ".markdown", ".json", ".jsonc")


def read_zip(name: str, content: bytes) -> list[tuple[str, bytes]]:
    """Return the loop files of a zip of a repository's ``loops/`` (or of loop files).

    Refuse path traversal, absolute paths, links, too many members, members
    whose expansion is out of proportion (zip bombs) and a total expansion
    above the upload limit. Other files (README, .git, ...) are skipped.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except zipfile.BadZipFile:
        raise BuilderError(f"{name}: the file is not a zip archive") from None
    members = archive.infolist()
    if len(members) > MAX_ZIP_MEMBERS:
        raise BuilderError(
            f"{name}: the zip holds {len(members):,} files; at most {MAX_ZIP_MEMBERS:,} are allowed"
        )
    limit, total, files = max_upload_bytes(), 0, []
    for info in members:
        path = PurePosixPath(info.filename.replace("\\", "/"))
        if info.filename.startswith(("/", "\\")) or ".." in path.parts or ":" in path.parts[0]:
            raise BuilderError(f"{name}: refused the unsafe path '{info.filename}' in the zip")
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise BuilderError(f"{name}: refused the symbolic link '{info.filename}' in the zip")
        if info.is_dir() or not is_loop_file(info.filename):
            continue
        parts = path.parts
        if len(parts) > 1 and "loops" not in parts[:-1]:
            continue  # YAML outside loops/ (CI config, ...) is not a loop
        if info.file_size > yamlio.MAX_BYTES or (
            info.compress_size and info.file_size / info.compress_size > MAX_ZIP_RATIO
        ):
            raise BuilderError(
                f"{name}: '{info.filename}' expands too much to be a loop file (a zip bomb?)"
            )
        with archive.open(info) as handle:
            data = handle.read(yamlio.MAX_BYTES + 1)  # never trust the declared size
        total += len(data)
        if len(data) > yamlio.MAX_BYTES or total > limit:
            raise BuilderError(f"{name}: the zip expands beyond the import limit (a zip bomb?)")
        files.append((info.filename, data))
    if not files:
        raise BuilderError(f"{name}: the zip holds no loop files (loops/*.yaml)")
    return files


def expand_uploads(uploads: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Turn uploaded files (YAML files and zips) into a list of loop files."""
    if not uploads:
        raise BuilderError("no file was uploaded: send YAML files or a zip of loops/")
    total = sum(len(c) for _, c in uploads)
    if total > max_upload_bytes():
        raise too_large(total)
    files: list[tuple[str, bytes]] = []
    for name, content in uploads:
        if name.lower().endswith(".zip") or content[:4] == b"PK\x03\x04":
            files += read_zip(name, content)
        elif is_loop_file(name) or name.lower().endswith(FOREIGN_SUFFIXES):
            files.append((name, content))
        else:
            raise BuilderError(
                f"{name}: not a loop file: upload .yaml/.yml files or a .zip (or a Dify, "
                "CrewAI, GitHub agentic workflow or Agent Spec file)"
            )
    return files


@dataclass
class ImportResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}


def import_loops(
    request: HttpRequest | None,
    team: Any,
    files: list[tuple[str, bytes]],
    *,
    overwrite: bool = False,
    message: str = "",
    action: str = "loops.imported",
    audit_extra: dict[str, Any] | None = None,
) -> ImportResult:
    """Import loop files into ``team``: all of them or none.

    Every file is validated first and every problem of every file is reported
    at once. A name that already exists is a clash unless ``overwrite``, which
    saves the file as a new version of the existing loop.
    """
    checked: list[tuple[str, Validation]] = []
    errors: list[dict[str, Any]] = []
    for name, content in files:
        result = validate(content, file=name)
        if not result.ok:
            errors += [{**e, "file": name} for e in result.errors]
        checked.append((name, result))
    if errors:
        bad = sorted({e["file"] for e in errors})
        raise InvalidLoop(
            f"nothing was imported: {len(bad)} file(s) are not valid loops ({', '.join(bad)})",
            errors=errors,
        )
    seen: dict[str, str] = {}
    # Every result is valid (no errors above), so each has a loop.
    for name, result in checked:
        loop_name = result.loop.name  # type: ignore[union-attr]
        if loop_name in seen:
            raise NameClash(
                f"nothing was imported: {seen[loop_name]} and {name} both define the loop '{loop_name}'"
            )
        seen[loop_name] = name
    outcome = ImportResult()
    with transaction.atomic():
        existing = {
            loop.name: loop
            for loop in Loop.objects.select_for_update().filter(team=team, name__in=list(seen))
        }
        if existing and not overwrite:
            names = sorted(existing)
            raise NameClash(
                "nothing was imported: the team already has loop(s) named "
                + ", ".join(f"'{n}'" for n in names)
                + "; import with overwrite to save them as new versions",
                conflicts=names,
            )
        for name, result in checked:
            loop = existing.get(result.loop.name)  # type: ignore[union-attr]  # valid: has a loop
            note = message or f"Imported from {PurePosixPath(name).name}"
            if loop is None:
                loop = Loop(team=team, created_by=_author(request))
                _add_version(loop, result, request, note)
                outcome.created.append(loop.name)
            elif loop.current().yaml == result.yaml:
                outcome.unchanged.append(loop.name)
            else:
                _add_version(loop, result, request, note)
                outcome.updated.append(loop.name)
        record(
            request,
            action,
            team=team,
            target_type="builder.loop",
            target_label=f"{len(files)} file(s)",
            after={**outcome.as_dict(), "overwrite": overwrite, **(audit_extra or {})},
        )
    return outcome


def export_zip(loops: list[Loop], folder: str = "loops") -> bytes:
    """Return a zip of ``<folder>/<name>.yaml`` for the current version of each loop, and
    their tests (``tests/*.test.yaml`` and cassettes, runs.looptests) for ``loopkit test``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for loop in loops:
            archive.writestr(f"{folder}/{loop.name}.yaml", loop.current().yaml)
        for path, text in export_files(loops, folder):
            archive.writestr(path, text)
    return buffer.getvalue()

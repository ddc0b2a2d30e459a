"""``loopkit pull`` / ``loopkit push``: sync a project's loops folder with a team on a server.

Both talk to the builder API of a LoopKit server with an API token (which
acts in its team only)::

    loopkit pull  --server https://loopkit.example.com --token lk_...
    loopkit push  -m "Tune budgets"

``--server`` defaults to ``$LOOPKIT_SERVER`` and ``--token`` to
``$LOOPKIT_TOKEN``. Pull writes ``loops/<name>.yaml`` for every loop of the
team and leaves a local file that differs alone unless ``--force``. Push
imports every loop file of the folder in one all-or-nothing request; loops
that exist get a new version (unless ``--no-overwrite``).

Exit status: 0 on success, 1 when the server refuses or cannot be reached,
2 for a usage error (no server or token, no loop files).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any, TextIO

LOOP_SUFFIXES = (".yaml", ".yml")
_SAFE_MEMBER = re.compile(r"^loops/([A-Za-z0-9][A-Za-z0-9._-]*)\.yaml$")
TIMEOUT_SECONDS = 60.0


class SyncError(Exception):
    """A failure to report to the user, with the exit status to return."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server", metavar="URL", help="the LoopKit server (default: $LOOPKIT_SERVER)"
    )
    parser.add_argument("--token", help="an API token of the team (default: $LOOPKIT_TOKEN)")
    parser.add_argument(
        "--dir",
        metavar="FOLDER",
        help="the loops folder (default: the project's, usually loops/)",
    )


def add_pull_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument(
        "--force", action="store_true", help="overwrite local files that differ from the server"
    )


def add_push_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("-m", "--message", default="", help="the message of the new versions")
    parser.add_argument(
        "--no-overwrite",
        action="store_true",
        help="refuse (and push nothing) if a loop already exists on the server",
    )


def _settings(args: argparse.Namespace) -> tuple[str, str, Path]:
    server = (args.server or os.environ.get("LOOPKIT_SERVER") or "").strip().rstrip("/")
    token = (args.token or os.environ.get("LOOPKIT_TOKEN") or "").strip()
    if not server:
        raise SyncError("no server: pass --server URL or set LOOPKIT_SERVER", 2)
    if not server.startswith(("http://", "https://")):
        raise SyncError(f"the server '{server}' must start with http:// or https://", 2)
    if not token:
        raise SyncError(
            "no API token: pass --token or set LOOPKIT_TOKEN (create one under API tokens)", 2
        )
    if args.dir:
        folder = Path(args.dir)
    else:
        from loopkit.project import find_project

        folder = find_project().loops_dir
    return server, token, folder


def _request(server: str, token: str, method: str, path: str, **kwargs: Any) -> Any:
    import httpx

    url = f"{server}/api/loops{path}"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    try:
        response = httpx.request(
            method, url, headers=headers, timeout=TIMEOUT_SECONDS, follow_redirects=False, **kwargs
        )
    except httpx.HTTPError as exc:
        raise SyncError(f"cannot reach {server}: {exc}") from None
    if response.status_code == 401:
        raise SyncError(f"{server} refused the API token (revoked, or not a LoopKit token?)")
    if response.status_code >= 400:
        raise SyncError(_refusal(response))
    return response


def _refusal(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"the server answered HTTP {response.status_code}"
    lines = [str(body.get("message") or f"HTTP {response.status_code}")]
    for error in body.get("errors") or []:
        where = ":".join(
            str(part)
            for part in (error.get("file"), error.get("line"), error.get("column"))
            if part
        )
        path = f" ({error['path']})" if error.get("path") else ""
        lines.append(f"  {where}: {error.get('message')}{path}")
    return "\n".join(lines)


def pull(args: argparse.Namespace, out: TextIO) -> int:
    """Write the team's loops into the folder; return the exit status."""
    import io
    import zipfile

    server, token, folder = _settings(args)
    response = _request(server, token, "GET", "/export")
    try:
        archive = zipfile.ZipFile(io.BytesIO(response.content))
    except zipfile.BadZipFile:
        raise SyncError(f"{server} did not answer with a zip of loops") from None
    folder.mkdir(parents=True, exist_ok=True)
    written, unchanged, kept = [], [], []
    for info in archive.infolist():
        match = _SAFE_MEMBER.match(info.filename)
        if match is None:
            continue  # never write outside the folder, whatever the server sends
        target = folder / f"{match.group(1)}.yaml"
        content = archive.read(info)
        if target.is_file():
            if target.read_bytes() == content:
                unchanged.append(target)
                continue
            if not args.force:
                kept.append(target)
                continue
        target.write_bytes(content)
        written.append(target)
    for path in written:
        out.write(f"wrote {path}\n")
    for path in kept:
        out.write(f"kept {path}: it differs from the server (use --force to overwrite)\n")
    out.write(
        f"pulled {len(written) + len(unchanged)} loop(s) from {server}: "
        f"{len(written)} written, {len(unchanged)} unchanged, {len(kept)} kept\n"
    )
    return 1 if kept else 0


def push(args: argparse.Namespace, out: TextIO) -> int:
    """Import the folder's loop files into the team; return the exit status."""
    server, token, folder = _settings(args)
    files = (
        sorted(p for p in folder.iterdir() if p.suffix in LOOP_SUFFIXES and p.is_file())
        if folder.is_dir()
        else []
    )
    if not files:
        raise SyncError(f"no loop files (*.yaml) in {folder}", 2)
    try:
        payload = [
            {"name": f"{folder.name}/{p.name}", "content": p.read_text(encoding="utf-8")}
            for p in files
        ]
    except UnicodeDecodeError as exc:
        raise SyncError(f"a loop file is not UTF-8 text: {exc}", 2) from None
    body = {"files": payload, "overwrite": not args.no_overwrite, "message": args.message}
    result = _request(server, token, "POST", "/import", json=body).json()
    for key in ("created", "updated", "unchanged"):
        if result.get(key):
            out.write(f"{key}: {', '.join(result[key])}\n")
    out.write(f"pushed {len(files)} file(s) to {server}\n")
    return 0


def _run(action: Any, args: argparse.Namespace) -> int:
    try:
        return int(action(args, sys.stdout))
    except SyncError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return exc.status


def handle_pull(args: argparse.Namespace) -> int:
    return _run(pull, args)


def handle_push(args: argparse.Namespace) -> int:
    return _run(push, args)

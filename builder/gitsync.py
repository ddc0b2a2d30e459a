"""Export a team's loops into a git repository and import them back, with the git CLI.

A team has at most one ``GitRepository``. Export checks out its branch into a
temporary directory, writes ``<folder>/<name>.yaml`` for every loop (the
current version's canonical YAML), commits as the user who asked (committer
"LoopKit") and pushes. Import reads ``<folder>/*.yaml`` from the branch and
goes through the same all-or-nothing import as uploads.

Credentials never touch the database: ``username_env`` / ``password_env``
name environment variables of the server process, which git reads through an
askpass helper, so they appear in no URL, command line or error message.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from builder.models import GitRepository, Loop
from builder.services import BuilderError, ImportResult, import_loops, is_loop_file
from loopkit_web.audit.services import record, snapshot
from runs.looptests import export_files

GIT_TIMEOUT_SECONDS = 120
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BRANCH = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]+(?<![./])$")
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?!//)")
REPO_FIELDS = ["url", "branch", "folder", "username_env", "password_env"]


class GitError(BuilderError):
    """A git command failed (unreachable remote, rejected push, ...)."""

    status = 502
    code = "upstream_failed"


def local_paths_allowed() -> bool:
    return bool(getattr(settings, "LOOPKIT_GIT_ALLOW_LOCAL", False))


def clean_config(data: dict[str, Any]) -> dict[str, str]:
    """Return the repository settings normalised, or raise BuilderError saying what is wrong."""
    url = str(data.get("url", "")).strip()
    branch = str(data.get("branch") or "main").strip()
    folder = str(data.get("folder") or "loops/").strip().strip("/")
    username_env = str(data.get("username_env") or "").strip()
    password_env = str(data.get("password_env") or "").strip()
    if not url:
        raise BuilderError("the repository URL is required")
    if url.startswith("-") or "::" in url.split("/")[0]:
        raise BuilderError(f"'{url}' is not a repository URL git may use here")
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https", "ssh", "git"):
        if urlsplit(url).password is not None or (
            scheme.startswith("http") and "@" in urlsplit(url).netloc
        ):
            raise BuilderError(
                "put no credentials in the URL: name the environment variables that hold "
                "them in 'username env' and 'password env'"
            )
    elif _SCP_LIKE.match(url):
        pass
    elif scheme in ("", "file"):
        path = Path(urlsplit(url).path if scheme == "file" else url)
        if not local_paths_allowed():
            raise BuilderError(
                "local repository paths are disabled on this server "
                "(set LOOPKIT_GIT_ALLOW_LOCAL=true to allow them)"
            )
        if not path.is_absolute():
            raise BuilderError(f"the local repository path '{url}' must be absolute")
    else:
        raise BuilderError(f"the URL scheme '{scheme}' is not supported: use https, ssh or a path")
    if not _BRANCH.match(branch):
        raise BuilderError(f"'{branch}' is not a valid branch name")
    parts = PurePosixPath(folder).parts
    if folder and (".." in parts or folder.startswith(("/", "\\")) or ".git" in parts):
        raise BuilderError(f"the folder '{folder}' must be a relative path inside the repository")
    for label, name in (("username env", username_env), ("password env", password_env)):
        if name and not _ENV_NAME.match(name):
            raise BuilderError(f"{label} '{name}' is not an environment variable name")
    return {
        "url": url,
        "branch": branch,
        "folder": f"{folder}/" if folder else "",
        "username_env": username_env,
        "password_env": password_env,
    }


def configure(request: HttpRequest, team: Any, data: dict[str, Any]) -> GitRepository:
    """Create or update the team's repository settings (audited)."""
    cleaned = clean_config(data)
    repo = GitRepository.objects.filter(team=team).first()
    before = snapshot(repo, REPO_FIELDS) if repo is not None else None
    if repo is None:
        repo = GitRepository(team=team)
    for key, value in cleaned.items():
        setattr(repo, key, value)
    repo.updated_at = timezone.now()
    repo.save()
    action = "git_repository.created" if before is None else "git_repository.updated"
    record(request, action, repo, before=before, after=snapshot(repo, REPO_FIELDS))
    return repo


def remove(request: HttpRequest, repo: GitRepository) -> None:
    record(request, "git_repository.deleted", repo, before=snapshot(repo, REPO_FIELDS))
    repo.delete()


class _Git:
    """Run git in one working directory with credentials from named env vars."""

    def __init__(self, repo: GitRepository, workdir: Path) -> None:
        self.repo, self.workdir = repo, workdir
        self.env = {
            **os.environ,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
        }
        self.secrets: list[str] = []
        for attr, target in (
            ("username_env", "LOOPKIT_GIT_USERNAME"),
            ("password_env", "LOOPKIT_GIT_PASSWORD"),
        ):
            name = getattr(repo, attr)
            if not name:
                continue
            if name not in os.environ:
                raise BuilderError(
                    f"the environment variable {name} (named in the repository settings) is "
                    "not set on the server"
                )
            self.env[target] = os.environ[name]
            self.secrets.append(os.environ[name])
        if self.secrets:
            askpass = workdir.parent / "askpass.sh"
            askpass.write_text(
                '#!/bin/sh\ncase "$1" in\n  Username*) printf "%s" "$LOOPKIT_GIT_USERNAME" ;;\n'
                '  *) printf "%s" "$LOOPKIT_GIT_PASSWORD" ;;\nesac\n'
            )
            askpass.chmod(stat.S_IRWXU)
            self.env["GIT_ASKPASS"] = str(askpass)

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        try:
            done = subprocess.run(
                ["git", *self.protocols(), "-c", "core.hooksPath=/dev/null", *args],
                cwd=self.workdir,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=GIT_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise GitError(f"git {args[0]} took longer than {GIT_TIMEOUT_SECONDS} s") from None
        except FileNotFoundError:
            raise GitError("git is not installed on the server") from None
        if check and done.returncode != 0:
            raise GitError(f"git {args[0]} failed: {self._scrub(done.stderr or done.stdout)}")
        return done

    @staticmethod
    def protocols() -> list[str]:
        """Allow the network transports (and local paths where allowed), nothing else."""
        allowed = ["https", "http", "ssh", "git", *(["file"] if local_paths_allowed() else [])]
        out = ["-c", "protocol.allow=never"]
        for name in allowed:
            out += ["-c", f"protocol.{name}.allow=always"]
        return out

    def _scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        lines = [line for line in text.strip().splitlines() if line.strip()]
        return " ".join(lines[-3:])[:500] or "no output"

    def checkout(self) -> bool:
        """Check out the branch (shallow); return False when it does not exist yet."""
        branch = self.repo.branch
        self("init", "-q", "-b", branch, ".")
        self("remote", "add", "origin", self.repo.url)
        heads = self("ls-remote", "--heads", "origin", f"refs/heads/{branch}")
        if not heads.stdout.strip():
            return False
        self("fetch", "-q", "--depth", "1", "origin", f"refs/heads/{branch}")
        self("checkout", "-q", "-B", branch, "FETCH_HEAD")
        return True


def _author(request: HttpRequest) -> tuple[str, str]:
    user = request.user
    # Behind the API's auth: a signed-in User (AnonymousUser has no full name).
    name = (user.get_full_name() or user.get_username()).replace("<", "").replace(">", "")  # type: ignore[union-attr]
    email = getattr(user, "email", "") or f"{user.get_username()}@users.noreply.loopkit"
    return name, email


def export_to_repository(
    request: HttpRequest, repo: GitRepository, message: str = ""
) -> dict[str, Any]:
    """Write every loop of the team into the repository, commit and push."""
    loops = list(Loop.objects.for_team(repo.team_id).order_by("name"))
    if not loops:
        raise BuilderError("the team has no loops to export")
    with tempfile.TemporaryDirectory(prefix="loopkit-git-") as tmp:
        workdir = Path(tmp) / "repo"
        workdir.mkdir()
        git = _Git(repo, workdir)
        git.checkout()
        folder = workdir / repo.folder
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for loop in loops:
            relative = f"{repo.folder}{loop.name}.yaml"
            target = workdir / relative
            if target.is_symlink():
                target.unlink()
            target.write_text(loop.current().yaml, encoding="utf-8")
            files.append(relative)
        for relative, text in export_files(loops, repo.folder):  # their tests (loopkit test)
            target = workdir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink():
                target.unlink()
            target.write_text(text, encoding="utf-8")
            files.append(relative)
        git("add", "--", *files)
        if not git("status", "--porcelain", "--", *files).stdout.strip():
            head = git("rev-parse", "HEAD", check=False).stdout.strip()
            result: dict[str, Any] = {"commit": head or None, "files": files, "pushed": False}
        else:
            name, email = _author(request)
            text = message.strip() or f"Export {len(loops)} loop(s) from LoopKit"
            git(
                "-c", "user.name=LoopKit", "-c", "user.email=loopkit@users.noreply.loopkit",
                "commit", "-q", "-m", text, "--author", f"{name} <{email}>",
            )  # fmt: skip
            git("push", "-q", "origin", f"HEAD:refs/heads/{repo.branch}")
            head = git("rev-parse", "HEAD").stdout.strip()
            result = {"commit": head, "files": files, "pushed": True}
    repo.last_export_at = timezone.now()
    repo.last_export_commit = result["commit"] or ""
    repo.save(update_fields=["last_export_at", "last_export_commit"])
    record(
        request,
        "loops.git_exported",
        repo,
        after={"url": repo.url, "branch": repo.branch, **result},
    )
    return result


def import_from_repository(
    request: HttpRequest, repo: GitRepository, *, overwrite: bool = False
) -> tuple[ImportResult, str]:
    """Import ``<folder>/*.yaml`` of the branch into the team, all or nothing."""
    with tempfile.TemporaryDirectory(prefix="loopkit-git-") as tmp:
        workdir = Path(tmp) / "repo"
        workdir.mkdir()
        git = _Git(repo, workdir)
        if not git.checkout():
            raise BuilderError(f"the branch '{repo.branch}' does not exist in the repository")
        head = git("rev-parse", "HEAD").stdout.strip()
        folder = workdir / repo.folder
        files: list[tuple[str, bytes]] = []
        if folder.is_dir() and not folder.is_symlink():
            for path in sorted(folder.iterdir()):
                if path.is_symlink() or not path.is_file() or not is_loop_file(path.name):
                    continue
                files.append((f"{repo.folder}{path.name}", path.read_bytes()))
    if not files:
        raise BuilderError(
            f"the repository has no loop files in '{repo.folder or '/'}' on '{repo.branch}'"
        )
    result = import_loops(
        request,
        repo.team,
        files,
        overwrite=overwrite,
        message=f"Imported from {repo.branch}@{head[:10]}",
        action="loops.git_imported",
        audit_extra={"url": repo.url, "branch": repo.branch, "commit": head},
    )
    repo.last_import_at = timezone.now()
    repo.last_import_commit = head
    repo.save(update_fields=["last_import_at", "last_import_commit"])
    return result, head

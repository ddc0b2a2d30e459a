"""Loop YAML samples and helpers shared by the builder tests."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from loopkit import yamlio


def loop_yaml(name: str = "triage", *, budget: bool = True, extra_step: str | None = None) -> str:
    """Return a small canonical loop: two labelled makers, a checker, optionally a budget."""
    steps = [
        {"prompt": "Summarise the new issues.", "label": "Summarise"},
        {"prompt": "Propose labels for each issue.", "label": "Label"},
    ]
    if extra_step:
        steps.append({"prompt": f"{extra_step} the issues.", "label": extra_step})
    data: dict[str, Any] = {
        "name": name,
        "description": "Triage new issues every morning.",
        "trigger": {"type": "cron", "schedule": "0 8 * * 1-5"},
        "pipeline": steps,
        "verify": {
            "maker": ["Summarise", "Label"],
            "checker": "Adversarial Verifier",
            "maxRounds": 2,
        },
    }
    if budget:
        data["budget"] = {"maxTokens": 50000, "maxCostUsd": 1}
    return yamlio.dump(yamlio.loop_from_data(data))


def create(client: Any, yaml: str | None = None, message: str = "first") -> dict[str, Any]:
    response = client.post(
        "/api/loops",
        {"yaml": yaml or loop_yaml(), "message": message},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    return response.json()  # type: ignore[no-any-return]


def save(client: Any, loop_id: int, yaml: str, base: int, message: str = "edit") -> Any:
    return client.put(
        f"/api/loops/{loop_id}",
        {"yaml": yaml, "base_version": base, "message": message},
        content_type="application/json",
    )


def git(*args: str, cwd: str | Path | None = None) -> str:
    """Run git for a test (fixed identity, no global config) and return its stdout."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(cwd or tempfile.gettempdir()),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def make_bare_repo(root: Path, seed: dict[str, str] | None = None, branch: str = "main") -> Path:
    """Create a bare repository under ``root``, with one commit of ``seed`` files if given."""
    bare = root / "remote.git"
    git("init", "-q", "--bare", "-b", branch, str(bare))
    if seed:
        work = root / "seed"
        git("clone", "-q", str(bare), str(work))
        git("checkout", "-q", "-b", branch, cwd=work)
        for name, text in seed.items():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            (work / name).write_text(text)
        git("add", ".", cwd=work)
        git("commit", "-q", "-m", "seed", cwd=work)
        git("push", "-q", "origin", branch, cwd=work)
    return bare


_SHARED_REPO: list[Path] = []


def shared_repo() -> Path:
    """A bare repository for the authorization matrix, made once per test process."""
    if not _SHARED_REPO:
        root = Path(tempfile.mkdtemp(prefix="loopkit-matrix-git-"))
        _SHARED_REPO.append(make_bare_repo(root, {"loops/seeded.yaml": loop_yaml("seeded")}))
    return _SHARED_REPO[0]


def builder_ids(team: Any, user: Any) -> dict[str, Any]:
    """Give a test team a loop (version 1) and a repository; return the ids URLs need."""
    from builder import services
    from builder.models import GitRepository, Loop

    checked = services.validate(loop_yaml("matrix-loop"))
    loop = Loop(team=team, created_by=user)
    services._add_version(loop, checked, None, "matrix")
    repo = str(shared_repo())
    GitRepository.objects.create(team=team, url=repo)
    return {"loop_id": loop.pk, "number": 1, "repo_url": repo}

"""Export into and import from a real git repository (a bare repo made with the git CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from builder.models import GitRepository, Loop
from loopkit_web.audit.models import AuditEvent

from .builder_fixtures import create, git, loop_yaml, make_bare_repo, save

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(make_team: Any, client_for: Any) -> Any:
    team, users = make_team("Acme", roles=["owner", "admin", "editor", "viewer"])
    users["editor"].first_name, users["editor"].last_name = "Eddie", "Editor"
    users["editor"].save()
    return team, users, client_for(users["editor"]), client_for(users["admin"])


def configure(client: Any, url: str | Path, **extra: Any) -> Any:
    return client.put(
        "/api/loops/repository", {"url": str(url), **extra}, content_type="application/json"
    )


def test_it_exports_loops_as_a_commit_by_the_user_and_pushes_it(acme: Any, tmp_path: Path) -> None:
    team, _, editor, admin = acme
    bare = make_bare_repo(tmp_path)
    assert configure(admin, bare).status_code == 200
    create(editor, loop_yaml("triage"))
    create(editor, loop_yaml("nightly", budget=False))

    response = editor.post(
        "/api/loops/repository/export", {"message": "Sync loops"}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["pushed"] is True
    assert body["files"] == ["loops/nightly.yaml", "loops/triage.yaml"]

    clone = tmp_path / "check"
    git("clone", "-q", "-b", "main", str(bare), str(clone))
    assert git("log", "-1", "--format=%H|%an|%ae|%s", cwd=clone).strip() == (
        f"{body['commit']}|Eddie Editor|acme-editor@example.com|Sync loops"
    )
    assert (clone / "loops/triage.yaml").read_text() == loop_yaml("triage")
    assert (clone / "loops/nightly.yaml").read_text() == loop_yaml("nightly", budget=False)
    event = AuditEvent.objects.get(action="loops.git_exported")
    assert event.team_id == team.pk
    assert event.changes["commit"] == [None, body["commit"]]


def test_it_commits_only_what_changed_and_says_when_nothing_did(acme: Any, tmp_path: Path) -> None:
    _, _, editor, admin = acme
    bare = make_bare_repo(tmp_path, {"README.md": "hello\n", "loops/keep.yaml": "kept: true\n"})
    configure(admin, bare)
    loop = create(editor, loop_yaml("triage"))
    first = editor.post("/api/loops/repository/export", {}, content_type="application/json").json()
    again = editor.post("/api/loops/repository/export", {}, content_type="application/json").json()
    assert again == {"commit": first["commit"], "files": ["loops/triage.yaml"], "pushed": False}

    save(editor, loop["id"], loop_yaml("triage", budget=False), base=1)
    third = editor.post("/api/loops/repository/export", {}, content_type="application/json").json()
    clone = tmp_path / "check"
    git("clone", "-q", str(bare), str(clone))
    assert git("rev-list", "--count", "HEAD", cwd=clone).strip() == "3"  # seed + 2 exports
    assert git("log", "-1", "--format=%H %s", cwd=clone).strip() == (
        f"{third['commit']} Export 1 loop(s) from LoopKit"
    )
    assert (clone / "README.md").read_text() == "hello\n"  # other files untouched
    assert (clone / "loops/keep.yaml").read_text() == "kept: true\n"


def test_it_exports_into_a_new_branch_and_another_folder(acme: Any, tmp_path: Path) -> None:
    _, _, editor, admin = acme
    bare = make_bare_repo(tmp_path, {"README.md": "hello\n"})
    assert configure(admin, bare, branch="loopkit/export", folder="agents/loops").json()[
        "folder"
    ] == ("agents/loops/")
    create(editor, loop_yaml("triage"))
    body = editor.post("/api/loops/repository/export", {}, content_type="application/json").json()
    assert body["files"] == ["agents/loops/triage.yaml"]
    assert git("ls-tree", "-r", "--name-only", "loopkit/export", cwd=bare).split() == [
        "agents/loops/triage.yaml"
    ]


def test_it_imports_loops_from_the_repository_all_or_nothing(acme: Any, tmp_path: Path) -> None:
    team, _, editor, admin = acme
    bare = make_bare_repo(
        tmp_path,
        {
            "loops/triage.yaml": loop_yaml("triage"),
            "loops/nightly.yaml": loop_yaml("nightly"),
            "loops/notes.txt": "not a loop",
            "README.md": "hi",
        },
    )
    configure(admin, bare)
    response = editor.post("/api/loops/repository/import", {}, content_type="application/json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["created"] == ["nightly", "triage"]
    assert body["commit"] == git("rev-parse", "main", cwd=bare).strip()
    assert Loop.objects.get(team=team, name="triage").current().yaml == loop_yaml("triage")
    event = AuditEvent.objects.get(action="loops.git_imported")
    assert event.changes["commit"] == [None, body["commit"]]

    clash = editor.post("/api/loops/repository/import", {}, content_type="application/json")
    assert clash.status_code == 409
    assert clash.json()["conflicts"] == ["nightly", "triage"]
    again = editor.post(
        "/api/loops/repository/import", {"overwrite": True}, content_type="application/json"
    ).json()
    assert again["unchanged"] == ["nightly", "triage"]


def test_it_imports_nothing_when_one_repository_file_is_invalid(acme: Any, tmp_path: Path) -> None:
    _, _, editor, admin = acme
    bare = make_bare_repo(
        tmp_path,
        {"loops/good.yaml": loop_yaml("good"), "loops/bad.yaml": "name: bad\npipeline: 3\n"},
    )
    configure(admin, bare)
    response = editor.post("/api/loops/repository/import", {}, content_type="application/json")
    assert response.status_code == 422
    assert response.json()["message"] == (
        "nothing was imported: 1 file(s) are not valid loops (loops/bad.yaml)"
    )
    assert not Loop.objects.exists()


def test_it_says_when_the_branch_does_not_exist(acme: Any, tmp_path: Path) -> None:
    _, _, editor, admin = acme
    configure(admin, make_bare_repo(tmp_path), branch="nope")
    response = editor.post("/api/loops/repository/import", {}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["message"] == "the branch 'nope' does not exist in the repository"


def test_it_reports_an_unreachable_remote_as_a_bad_gateway(acme: Any, tmp_path: Path) -> None:
    _, _, editor, admin = acme
    configure(admin, tmp_path / "missing.git")
    create(editor, loop_yaml())
    response = editor.post("/api/loops/repository/export", {}, content_type="application/json")
    assert response.status_code == 502
    assert response.json()["message"].startswith("git ls-remote failed: ")


def test_it_reads_credentials_only_from_named_environment_variables(
    acme: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, editor, admin = acme
    refused = configure(admin, "https://bob:hunter2@git.example.com/acme/loops.git")
    assert refused.status_code == 400
    assert refused.json()["message"].startswith("put no credentials in the URL")
    ok = configure(admin, "https://git.example.com/acme/loops.git", password_env="ACME_GIT_TOKEN")
    assert ok.json()["password_env"] == "ACME_GIT_TOKEN"
    monkeypatch.delenv("ACME_GIT_TOKEN", raising=False)
    create(editor, loop_yaml())
    response = editor.post("/api/loops/repository/export", {}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["message"] == (
        "the environment variable ACME_GIT_TOKEN (named in the repository settings) is not set "
        "on the server"
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "url",
            "ext::sh -c touch% /tmp/pwned",
            "'ext::sh -c touch% /tmp/pwned' is not a repository URL git may use here",
        ),
        (
            "url",
            "--upload-pack=evil",
            "'--upload-pack=evil' is not a repository URL git may use here",
        ),
        ("url", "relative/path", "the local repository path 'relative/path' must be absolute"),
        ("branch", "-x", "'-x' is not a valid branch name"),
        (
            "folder",
            "../outside",
            "the folder '../outside' must be a relative path inside the repository",
        ),
        ("password_env", "A B", "password env 'A B' is not an environment variable name"),
    ],
)
def test_it_refuses_unsafe_repository_settings(
    acme: Any, tmp_path: Path, field: str, value: str, message: str
) -> None:
    _, _, _, admin = acme
    data = {"url": str(tmp_path), field: value}
    response = admin.put("/api/loops/repository", data, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["message"] == message
    assert not GitRepository.objects.exists()


def test_it_refuses_local_paths_where_the_deployment_forbids_them(
    acme: Any, tmp_path: Path, settings: Any
) -> None:
    settings.LOOPKIT_GIT_ALLOW_LOCAL = False
    _, _, _, admin = acme
    response = configure(admin, tmp_path)
    assert response.status_code == 400
    assert response.json()["message"].startswith("local repository paths are disabled")


def test_it_audits_repository_settings_and_lets_only_admins_change_them(
    acme: Any, tmp_path: Path
) -> None:
    team, _, editor, admin = acme
    assert configure(editor, tmp_path).status_code == 403
    configure(admin, tmp_path, branch="main")
    configure(admin, tmp_path, branch="release")
    updated = AuditEvent.objects.get(action="git_repository.updated")
    assert updated.changes == {"branch": ["main", "release"]}
    assert admin.delete("/api/loops/repository").status_code == 204
    assert AuditEvent.objects.filter(action="git_repository.deleted", team=team).count() == 1
    assert editor.get("/api/loops/repository").status_code == 404


def test_it_pushes_over_https_style_auth_with_credentials_from_the_environment(
    acme: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .git_http import git_http_server

    _, _, editor, admin = acme
    bare = make_bare_repo(tmp_path)
    monkeypatch.setenv("ACME_GIT_USER", "loopkit-bot")
    monkeypatch.setenv("ACME_GIT_TOKEN", "s3cret-token-value")
    create(editor, loop_yaml())
    with git_http_server(tmp_path, "loopkit-bot", "s3cret-token-value") as (base, seen):
        url = f"{base}/{bare.name}"
        configure(admin, url, username_env="ACME_GIT_USER", password_env="ACME_GIT_TOKEN")
        response = editor.post("/api/loops/repository/export", {}, content_type="application/json")
        assert response.status_code == 200, response.content
        assert "loopkit-bot" in seen
        assert git("show", "main:loops/triage.yaml", cwd=bare) == loop_yaml()

        monkeypatch.setenv("ACME_GIT_TOKEN", "wrong-token-value")
        refused = editor.post("/api/loops/repository/import", {}, content_type="application/json")
        assert refused.status_code == 502
        assert refused.json()["message"].startswith("git ls-remote failed: ")
        assert "wrong-token-value" not in refused.content.decode()
    stored = GitRepository.objects.get()
    assert "s3cret" not in f"{stored.url} {stored.username_env} {stored.password_env}"
    assert "s3cret" not in str(list(AuditEvent.objects.values_list("changes", flat=True)))

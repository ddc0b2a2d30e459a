"""The builder's server-rendered pages: list, detail, editor shell (and its plain form), diff."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from builder.models import GitRepository, Loop

from .builder_fixtures import create, git, loop_yaml, make_bare_repo, save

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(make_team: Any, client_for: Any) -> Any:
    team, users = make_team("Acme", roles=["owner", "editor", "viewer"])
    return team, users, client_for(users["editor"])


def editor_data(response: Any) -> dict[str, Any]:
    match = re.search(
        r'<script id="loopkit-editor-data" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.S,
    )
    assert match, "no editor data on the page"
    return json.loads(match.group(1))  # type: ignore[no-any-return]


def test_the_list_shows_the_teams_loops_with_their_grade(
    acme: Any, make_team: Any, client_for: Any
) -> None:
    _, _, client = acme
    loop = create(client)
    page = client.get("/loops/").content.decode()
    assert f'href="/loops/{loop["id"]}/"' in page
    assert f"lk-grade-{loop['lrs_grade']}" in page
    _, others = make_team("Other", roles=["owner"])
    assert "triage" not in client_for(others["owner"]).get("/loops/").content.decode()


def test_the_editor_page_passes_the_loop_to_the_island(acme: Any) -> None:
    _, _, client = acme
    loop = create(client)
    response = client.get(f"/loops/{loop['id']}/edit/")
    assert response.status_code == 200
    data = editor_data(response)
    assert data["loopId"] == loop["id"] and data["version"] == 1
    assert data["yaml"] == loop_yaml()
    assert data["lrs"]["score"] == loop["lrs_score"]
    assert data["apiBase"] == "/api/loops" and data["readOnly"] is False
    assert data["csrfToken"]
    assert data["editUrl"] == "/loops/{id}/edit/"
    assert '<div id="loopkit-editor">' in response.content.decode()


def test_the_editor_page_is_read_only_for_a_viewer(acme: Any, client_for: Any) -> None:
    _, users, client = acme
    loop = create(client)
    response = client_for(users["viewer"]).get(f"/loops/{loop['id']}/edit/")
    assert editor_data(response)["readOnly"] is True
    assert "readonly" in response.content.decode()


def test_the_editor_page_loads_the_built_island_when_it_exists(
    acme: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, client = acme
    monkeypatch.setattr("builder.views.editor_built", lambda: True)
    page = client.get("/loops/new/").content.decode()
    assert '<script src="/static/editor/editor.js" defer></script>' in page
    assert '<link rel="stylesheet" href="/static/editor/editor.css">' in page


def test_the_editor_page_is_a_plain_yaml_form_without_the_built_island(
    acme: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    team, _, client = acme
    monkeypatch.setattr("builder.views.editor_built", lambda: False)
    response = client.get("/loops/new/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "editor/editor.js" not in page and '<textarea id="lk-yaml" name="yaml"' in page
    created = client.post("/loops/new/", {"yaml": loop_yaml(), "message": "by form"})
    loop = Loop.objects.get(team=team, name="triage")
    assert created.status_code == 302 and created["Location"] == f"/loops/{loop.pk}/edit/"
    assert loop.current().message == "by form"


def test_the_plain_form_saves_a_version(acme: Any) -> None:
    _, _, client = acme
    loop = create(client)
    response = client.post(
        f"/loops/{loop['id']}/edit/",
        {"yaml": loop_yaml(budget=False), "base_version": "1", "message": "no budget"},
    )
    assert response.status_code == 302
    assert Loop.objects.get(pk=loop["id"]).current().message == "no budget"


def test_the_plain_form_shows_yaml_errors_at_their_line(acme: Any) -> None:
    _, _, client = acme
    loop = create(client)
    response = client.post(
        f"/loops/{loop['id']}/edit/", {"yaml": "name: x\npipeline: [\n", "base_version": "1"}
    )
    assert response.status_code == 422
    page = response.content.decode()
    assert "line 3:1: YAML syntax error" in page
    assert "name: x\npipeline: [" in page  # the author's text is kept
    assert Loop.objects.get(pk=loop["id"]).version == 1


def test_the_plain_form_shows_the_other_change_on_a_stale_save(acme: Any, client_for: Any) -> None:
    _, users, client = acme
    loop = create(client)
    save(
        client_for(users["owner"]),
        loop["id"],
        loop_yaml(extra_step="Assign"),
        base=1,
        message="theirs",
    )
    response = client.post(
        f"/loops/{loop['id']}/edit/", {"yaml": loop_yaml(budget=False), "base_version": "1"}
    )
    assert response.status_code == 409
    page = response.content.decode()
    assert "Not saved:" in page
    assert "Version 2 by acme-owner: “theirs”" in page
    assert "added agent step &#x27;Assign&#x27;" in page
    assert Loop.objects.get(pk=loop["id"]).version == 2


def test_the_diff_page_shows_yaml_side_by_side_and_the_change_list(acme: Any) -> None:
    _, _, client = acme
    loop = create(client)
    save(client, loop["id"], loop_yaml(budget=False), base=1)
    response = client.get(f"/loops/{loop['id']}/diff/?from=1&to=2")
    page = response.content.decode()
    assert response.status_code == 200
    assert "removed budget" in page
    assert 'class="lk-diff-delete"' in page and "maxTokens: 50000" in page
    missing = client.get(f"/loops/{loop['id']}/diff/?from=1&to=9")
    assert missing.status_code == 302


def test_the_restore_button_makes_a_new_version(acme: Any) -> None:
    _, _, client = acme
    loop = create(client)
    save(client, loop["id"], loop_yaml(budget=False), base=1)
    detail = client.get(f"/loops/{loop['id']}/").content.decode()
    assert f'action="/loops/{loop["id"]}/versions/1/restore/"' in detail
    response = client.post(f"/loops/{loop['id']}/versions/1/restore/")
    assert response.status_code == 302
    current = Loop.objects.get(pk=loop["id"]).current()
    assert current.number == 3 and current.yaml == loop_yaml()


def test_the_import_page_imports_a_zip_and_explains_refusals(acme: Any) -> None:
    team, _, client = acme
    bad = client.post(
        "/loops/import/", {"files": [SimpleUploadedFile("bad.yaml", b"name: x\npipeline: 3\n")]}
    )
    assert bad.status_code == 422
    assert "bad.yaml:2:11" in bad.content.decode()
    good = client.post(
        "/loops/import/", {"files": [SimpleUploadedFile("a.yaml", loop_yaml("a").encode())]}
    )
    assert good.status_code == 302
    assert Loop.objects.filter(team=team, name="a").exists()


def test_the_repository_page_configures_exports_and_imports(acme: Any, tmp_path: Path) -> None:
    team, users, client = acme
    from django.test import Client

    owner = Client()
    owner.force_login(users["owner"])
    bare = make_bare_repo(tmp_path)
    response = owner.post(
        "/loops/repository/", {"url": str(bare), "branch": "main", "folder": "loops/"}
    )
    assert response.status_code == 302
    assert GitRepository.objects.get(team=team).url == str(bare)
    create(client)
    assert client.post("/loops/repository/export/", {"message": "from page"}).status_code == 302
    assert git("log", "-1", "--format=%s", "main", cwd=bare).strip() == "from page"
    denied = client.post("/loops/repository/", {"url": "/elsewhere"})
    assert denied.status_code == 403

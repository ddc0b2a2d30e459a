"""The web app's import takes Dify, CrewAI, gh-aw and Agent Spec files; a loop exports as gh-aw."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from builder.models import Loop
from loopkit.importers import convert_path
from loopkit_web.audit.models import AuditEvent

from .builder_fixtures import create

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "import"
CREW = FIXTURES / "crewai/release_notes/src/release_notes/config"


@pytest.fixture
def acme(make_team: Any, client_for: Any) -> Any:
    team, users = make_team("Acme", roles=["owner", "editor", "viewer"])
    return team, users, client_for(users["editor"])


def upload(client: Any, *paths: Path, url: str = "/api/loops/import") -> Any:
    files = [SimpleUploadedFile(p.name, p.read_bytes()) for p in paths]
    return client.post(url, {"files": files})


def test_a_dify_workflow_is_converted_imported_and_audited(acme: Any) -> None:
    team, _, client = acme
    response = upload(client, FIXTURES / "dify/LanguageConsistencyChecker.yml")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["created"] == ["languageconsistencychecker"]
    (converted,) = body["converted"]
    assert converted["file"] == "LanguageConsistencyChecker.yml"
    assert (converted["format"], converted["loop"]) == ("dify", "languageconsistencychecker")
    assert {
        "message": "tool node '英文': not mapped: a tool node calls a Dify tool; declare a "
        "connector and add a tool step",
        "where": "LanguageConsistencyChecker.yml:261:7",
    } in converted["notes"]
    version = Loop.objects.get(team=team, name="languageconsistencychecker").current()
    # The same loop `loopkit import` writes.
    assert version.yaml == convert_path(FIXTURES / "dify/LanguageConsistencyChecker.yml").yaml
    assert version.message == "Imported from LanguageConsistencyChecker.yml (dify)"
    event = AuditEvent.objects.get(action="loops.imported")
    assert event.changes["converted"][1] == [
        {
            "file": "LanguageConsistencyChecker.yml",
            "format": "dify",
            "loop": "languageconsistencychecker",
            "notes": len(converted["notes"]),
        }
    ]


def test_crewai_agents_and_tasks_uploaded_together_make_one_loop(acme: Any) -> None:
    team, _, client = acme
    body = upload(client, CREW / "agents.yaml", CREW / "tasks.yaml").json()
    assert body["created"] == ["crew"]
    assert [c["format"] for c in body["converted"]] == ["crewai"]
    assert "subagent: writer" in Loop.objects.get(team=team, name="crew").current().yaml


def test_gh_aw_and_agent_spec_files_import_through_the_json_body_too(acme: Any) -> None:
    _, _, client = acme
    files = [
        {"name": p.name, "content": p.read_text()}
        for p in (
            FIXTURES / "gh-aw/issue-triage.md",
            FIXTURES / "agentspec/howto_flow_with_conditional_branches.yaml",
        )
    ]
    response = client.post("/api/loops/import", {"files": files}, content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["created"] == ["issue-triage", "generate-code-and-review-flow"]
    assert [c["format"] for c in response.json()["converted"]] == ["gh-aw", "agentspec"]


def test_a_malformed_workflow_imports_nothing_and_says_where(acme: Any) -> None:
    _, _, client = acme
    broken = SimpleUploadedFile("triage.md", b"---\non:\n  issues: [\n---\nDo it.\n")
    good = SimpleUploadedFile("dify.yml", (FIXTURES / "dify/seo_slug_generator.yml").read_bytes())
    response = client.post("/api/loops/import", {"files": [good, broken]})
    assert response.status_code == 422
    body = response.json()
    assert body["message"] == "nothing was imported: 1 file(s) cannot be converted (triage.md)"
    (error,) = body["errors"]
    assert (error["file"], error["code"], error["line"]) == ("triage.md", "yaml_syntax", 4)
    assert not Loop.objects.exists()
    assert not AuditEvent.objects.filter(action="loops.imported").exists()


def test_a_viewer_cannot_import_and_an_import_stays_in_the_importers_team(
    acme: Any, make_team: Any, client_for: Any
) -> None:
    team, users, client = acme
    refused = upload(client_for(users["viewer"]), FIXTURES / "gh-aw/weekly-digest.md")
    assert refused.status_code == 403
    other, others = make_team("Other", roles=["editor"])
    theirs = upload(client_for(others["editor"]), FIXTURES / "gh-aw/weekly-digest.md")
    assert theirs.status_code == 200
    ours = upload(client, FIXTURES / "gh-aw/weekly-digest.md")
    assert ours.json()["created"] == ["weekly-digest"]  # no clash across teams
    assert Loop.objects.filter(name="weekly-digest").count() == 2
    assert Loop.objects.get(team=other, name="weekly-digest").pk != (
        Loop.objects.get(team=team, name="weekly-digest").pk
    )


def test_a_loop_downloads_as_a_gh_aw_workflow_that_imports_back(
    acme: Any, make_team: Any, client_for: Any
) -> None:
    _, _, client = acme
    loop = create(client)
    response = client.get(f"/api/loops/{loop['id']}/export/gh-aw")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="triage.md"'
    text = response.content.decode()
    assert text.startswith("---\ndescription: Triage new issues every morning.\non:\n  schedule:")
    event = AuditEvent.objects.get(action="loop.exported")
    assert event.changes["format"] == [None, "gh-aw"]
    assert any("self-check" in note for note in event.changes["lost"][1])

    _, others = make_team("Other", roles=["editor"])
    stranger = client_for(others["editor"])
    assert stranger.get(f"/api/loops/{loop['id']}/export/gh-aw").status_code == 404
    back = stranger.post(
        "/api/loops/import", {"files": [SimpleUploadedFile("triage.md", response.content)]}
    )
    assert back.json()["created"] == ["triage"]
    assert back.json()["converted"][0]["format"] == "gh-aw"


def test_the_pages_import_a_workflow_show_its_notes_and_offer_the_download(acme: Any) -> None:
    team, _, client = acme
    page = upload(client, FIXTURES / "gh-aw/issue-triage.md", url="/loops/import/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Converted from other formats" in html
    assert "issue-triage.md (gh-aw)" in html
    assert "the safe output &#x27;add-comment&#x27; is not mapped" in html
    loop = Loop.objects.get(team=team, name="issue-triage")
    detail = client.get(f"/loops/{loop.pk}/").content.decode()
    assert f'href="/loops/{loop.pk}/export.md"' in detail
    download = client.get(f"/loops/{loop.pk}/export.md")
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="issue-triage.md"'
    assert b"on:\n  issues:\n    types:\n    - opened\n    - reopened\n" in download.content

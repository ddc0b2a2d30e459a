"""The connectors, subagents and skills the editor offers: what the team's loops define."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from builder.definitions import team_definitions
from loopkit import yamlio

from .builder_fixtures import create, save
from .test_builder_pages import editor_data

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def loop_with(name: str, connectors: dict[str, Any], subagents: dict[str, Any]) -> str:
    data: dict[str, Any] = {
        "name": name,
        "pipeline": [{"prompt": "Do it.", "label": "Do", "connectors": list(connectors)}],
        "connectors": connectors,
        "subagents": subagents,
    }
    return yamlio.dump(yamlio.loop_from_data(data))


GITHUB = {"type": "http", "baseUrl": "https://api.github.com"}
DB = {"type": "sql", "url": "${DATABASE_URL}", "rowLimit": 100}
JUDGE = {"role": "verifier", "model": "gpt-4o-mini"}


@pytest.fixture
def acme(make_team: Any, client_for: Any) -> Any:
    team, users = make_team("Acme", roles=["owner", "editor", "viewer"])
    return team, users, client_for(users["editor"])


def test_the_team_definitions_gather_every_loops_connectors_and_subagents(acme: Any) -> None:
    team, _, client = acme
    create(client, loop_with("b-loop", {"github": GITHUB}, {"judge": JUDGE}))
    create(client, loop_with("a-loop", {"github": GITHUB, "db": DB}, {}))

    found = team_definitions(team, skills=False)

    assert found["connectors"] == {
        "db": {"definition": DB, "loops": ["a-loop"], "variants": 1},
        "github": {"definition": GITHUB, "loops": ["a-loop", "b-loop"], "variants": 1},
    }
    assert found["subagents"] == {
        "judge": {"definition": JUDGE, "loops": ["b-loop"], "variants": 1}
    }


def test_the_first_loop_by_name_wins_a_name_defined_differently_and_variants_say_so(
    acme: Any,
) -> None:
    team, _, client = acme
    other = {"type": "http", "baseUrl": "https://github.example.com/api/v3"}
    create(client, loop_with("z-loop", {"github": other}, {}))
    create(client, loop_with("m-loop", {"github": GITHUB}, {}))

    github = team_definitions(team, skills=False)["connectors"]["github"]

    assert github == {"definition": GITHUB, "loops": ["m-loop", "z-loop"], "variants": 2}


def test_only_the_current_version_and_only_the_team_count(
    acme: Any, make_team: Any, client_for: Any
) -> None:
    team, _, client = acme
    loop = create(client, loop_with("a-loop", {"github": GITHUB}, {}))
    assert save(client, loop["id"], loop_with("a-loop", {"db": DB}, {}), 1).status_code == 200
    _, others = make_team("Other", roles=["owner"])
    create(client_for(others["owner"]), loop_with("theirs", {"secret": GITHUB}, {"spy": JUDGE}))

    found = team_definitions(team, skills=False)

    assert list(found["connectors"]) == ["db"]
    assert found["subagents"] == {}


def test_the_skills_are_those_discovered_under_the_project_root(tmp_path: Path, acme: Any) -> None:
    team, _, _ = acme
    folder = tmp_path / "skills" / "sql-review"
    folder.mkdir(parents=True)
    (folder / "SKILL.md").write_text(
        "---\nname: sql-review\ndescription: Review SQL for injection and full scans.\n---\nBody.\n"
    )
    with override_settings(LOOPKIT_PROJECT_ROOT=tmp_path):
        skills = team_definitions(team)["skills"]

    assert {"name": "sql-review", "description": "Review SQL for injection and full scans.",
            "source": "project"} in skills  # fmt: skip
    assert "changelog-reading" not in [s["name"] for s in skills]  # BASE_DIR's are not there


def test_the_editor_page_passes_the_team_definitions_to_the_island(acme: Any) -> None:
    _, _, client = acme
    create(client, loop_with("a-loop", {"github": GITHUB}, {"judge": JUDGE}))

    for url in (
        "/loops/new/",
        "/loops/{}/edit/".format(create(client, loop_with("b", {}, {}))["id"]),
    ):
        data = editor_data(client.get(url))
        assert data["connectors"]["github"]["definition"] == GITHUB
        assert data["subagents"]["judge"]["loops"] == ["a-loop"]
        assert "changelog-reading" in [s["name"] for s in data["skills"]]

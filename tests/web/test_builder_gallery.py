"""The template gallery of "New loop" (/loops/templates/) and starting a loop from a copy."""

from __future__ import annotations

from typing import Any

import pytest

from builder.models import Loop
from loopkit import examples, yamlio
from loopkit.document import analyze

from .runs_support import make_loop
from .test_builder_pages import editor_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(make_team: Any, client_for: Any) -> Any:
    team, users = make_team("Acme", roles=["owner", "editor", "viewer"])
    return team, users, client_for(users["editor"])


def test_the_gallery_lists_the_examples_and_the_teams_loops_with_their_score(
    acme: Any, make_team: Any
) -> None:
    team, _, client = acme
    ours = make_loop(team)
    other_team, _ = make_team("Other", roles=["editor"])
    make_loop(other_team, name="their-secret-loop")

    response = client.get("/loops/templates/")

    assert response.status_code == 200
    page = response.content.decode()
    for name in examples.names():
        report = analyze(examples.read(name)).report
        assert report is not None
        assert f'data-template="example:{name}"' in page
        assert f'title="Loop Readiness Score {report.score}/100">{report.grade}</span>' in page
    assert f'data-template="loop:{ours.pk}"' in page
    assert "their-secret-loop" not in page


def test_the_loops_page_offers_the_gallery_for_a_new_loop(acme: Any) -> None:
    _, _, client = acme
    assert (
        'href="/loops/templates/" data-testid="new-loop"' in client.get("/loops/").content.decode()
    )


def test_an_example_opens_in_the_editor_as_an_unsaved_copy(acme: Any) -> None:
    _, _, client = acme
    name = examples.names()[0]

    data = editor_data(client.get(f"/loops/new/?from=example:{name}"))

    original = yamlio.loop_from_data(analyze(examples.read(name)).data)
    copy = analyze(data["yaml"])
    assert copy.ok and copy.loop is not None
    assert data["loopId"] is None
    assert copy.loop.name == f"{original.name}-copy"
    assert copy.loop.pipeline == original.pipeline
    assert not Loop.objects.exists()


def test_a_team_loop_copy_gets_a_free_name(acme: Any) -> None:
    team, _, client = acme
    loop = make_loop(team, name="review")
    make_loop(team, name="review-copy")

    data = editor_data(client.get(f"/loops/new/?from=loop:{loop.pk}"))

    assert analyze(data["yaml"]).loop.name == "review-copy-2"  # type: ignore[union-attr]


def test_another_teams_loop_or_an_unknown_template_is_not_found(acme: Any, make_team: Any) -> None:
    _, _, client = acme
    other_team, _ = make_team("Other", roles=["editor"])
    theirs = make_loop(other_team, name="theirs")
    for source in (f"loop:{theirs.pk}", "example:no-such-example", "file:/etc/passwd", "loop:x"):
        assert client.get(f"/loops/new/?from={source}").status_code == 404, source


def test_a_viewer_cannot_open_the_gallery(acme: Any, client_for: Any) -> None:
    _, users, _ = acme
    assert client_for(users["viewer"]).get("/loops/templates/").status_code == 403

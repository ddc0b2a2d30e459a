"""The demo loader: `make run` (manage.py loopkit_start) loads loops/*.yaml into the demo team."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from builder.demo import load_example_loops
from builder.models import Loop
from loopkit_web.audit.models import AuditEvent

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def test_it_is_registered_with_the_foundations_demo_hook() -> None:
    assert "builder.demo.load_example_loops" in settings.LOOPKIT_DEMO_LOADERS


def test_it_loads_every_example_loop_once_and_leaves_edits_alone(make_team: Any) -> None:
    team, users = make_team("Demo", roles=["owner"])
    out = io.StringIO()
    load_example_loops(team=team, user=users["owner"], stdout=out)
    names = sorted(p.stem for p in (ROOT / "loops").glob("*.yaml"))
    assert names, "the project ships example loops"
    assert sorted(Loop.objects.filter(team=team).values_list("name", flat=True)) == names
    assert "skipped" not in out.getvalue()
    assert f"example loops: {len(names)} loaded into team Demo" in out.getvalue()
    first = Loop.objects.filter(team=team).first()
    assert first is not None and first.lrs_grade and first.current().author == users["owner"]
    assert AuditEvent.objects.filter(action="loop.created", team=team).count() == len(names)

    first.versions.filter(number=1).update(message="edited by hand")
    load_example_loops(team=team, user=users["owner"], stdout=io.StringIO())
    assert Loop.objects.filter(team=team).count() == len(names)
    assert first.current().message == "edited by hand"


def test_it_reports_and_skips_an_invalid_example(
    make_team: Any, tmp_path: Path, settings: Any
) -> None:
    (tmp_path / "good.yaml").write_text("name: good\npipeline:\n  - prompt: Hi.\n")
    (tmp_path / "bad.yaml").write_text("name: bad\npipeline: 3\n")
    settings.LOOPKIT_EXAMPLE_LOOPS_DIR = tmp_path
    team, users = make_team("Demo", roles=["owner"])
    out = io.StringIO()
    load_example_loops(team=team, user=users["owner"], stdout=out)
    assert list(Loop.objects.filter(team=team).values_list("name", flat=True)) == ["good"]
    assert "skipped loops/bad.yaml: " in out.getvalue()

"""``loopkit pull`` / ``loopkit push`` against a live server with an API token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from builder.models import Loop
from loopkit.cli import main

from .builder_fixtures import loop_yaml

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def team_token(make_team: Any) -> Any:
    from loopkit_web.accounts.models import ApiToken

    team, users = make_team("Acme", roles=["editor", "viewer"])
    _, raw = ApiToken.issue(user=users["editor"], team=team, name="cli")
    _, viewer_raw = ApiToken.issue(user=users["viewer"], team=team, name="cli")
    return team, raw, viewer_raw


def test_push_then_pull_round_trips_a_loops_folder(
    live_server: Any, team_token: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    team, raw, _ = team_token
    source = tmp_path / "a" / "loops"
    source.mkdir(parents=True)
    (source / "triage.yaml").write_text(loop_yaml("triage"))
    (source / "nightly.yaml").write_text(loop_yaml("nightly"))
    common = ["--server", live_server.url, "--token", raw]

    assert main(["push", *common, "--dir", str(source), "-m", "from the CLI"]) == 0
    assert "created: nightly, triage" in capsys.readouterr().out
    assert Loop.objects.get(team=team, name="triage").current().message == "from the CLI"

    (source / "triage.yaml").write_text(loop_yaml("triage", budget=False))
    assert main(["push", *common, "--dir", str(source)]) == 0
    assert "updated: triage" in capsys.readouterr().out
    assert Loop.objects.get(team=team, name="triage").version == 2

    target = tmp_path / "b" / "loops"
    assert main(["pull", *common, "--dir", str(target)]) == 0
    assert "pulled 2 loop(s)" in capsys.readouterr().out
    assert (target / "triage.yaml").read_text() == loop_yaml("triage", budget=False)
    assert (target / "nightly.yaml").read_text() == loop_yaml("nightly")


def test_pull_keeps_local_changes_unless_forced(
    live_server: Any, team_token: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, raw, _ = team_token
    folder = tmp_path / "loops"
    folder.mkdir()
    (folder / "triage.yaml").write_text(loop_yaml())
    common = ["--server", live_server.url, "--token", raw, "--dir", str(folder)]
    assert main(["push", *common]) == 0
    (folder / "triage.yaml").write_text("# local edit\n" + loop_yaml())
    assert main(["pull", *common]) == 1
    assert "kept " in capsys.readouterr().out
    assert (folder / "triage.yaml").read_text().startswith("# local edit")
    assert main(["pull", *common, "--force"]) == 0
    assert (folder / "triage.yaml").read_text() == loop_yaml()


def test_push_reports_every_error_and_pushes_nothing(
    live_server: Any, team_token: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    team, raw, viewer_raw = team_token
    folder = tmp_path / "loops"
    folder.mkdir()
    (folder / "good.yaml").write_text(loop_yaml("good"))
    (folder / "bad.yaml").write_text("name: bad\npipeline: 3\n")
    assert main(["push", "--server", live_server.url, "--token", raw, "--dir", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "error: nothing was imported: 1 file(s) are not valid loops (loops/bad.yaml)" in err
    assert "loops/bad.yaml:2:11:" in err
    assert not Loop.objects.filter(team=team).exists()

    (folder / "bad.yaml").unlink()
    assert (
        main(["push", "--server", live_server.url, "--token", viewer_raw, "--dir", str(folder)])
        == 1
    )
    assert "needs the editor role" in capsys.readouterr().err


def test_it_explains_a_missing_token_a_refused_token_and_an_unreachable_server(
    live_server: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LOOPKIT_TOKEN", raising=False)
    monkeypatch.setenv("LOOPKIT_SERVER", live_server.url)
    assert main(["pull", "--dir", str(tmp_path)]) == 2
    assert "no API token: pass --token or set LOOPKIT_TOKEN" in capsys.readouterr().err
    assert main(["pull", "--token", "lk_wrong", "--dir", str(tmp_path)]) == 1
    assert "refused the API token" in capsys.readouterr().err
    assert (
        main(["pull", "--server", "http://127.0.0.1:9", "--token", "x", "--dir", str(tmp_path)])
        == 1
    )
    assert "cannot reach http://127.0.0.1:9" in capsys.readouterr().err

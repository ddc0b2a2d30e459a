"""Loop tests in the web app: keep a live run as a test, replay it, see it fail after an edit."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loopkit import secrets
from loopkit.testing import replay
from loopkit_web.audit.models import AuditEvent
from runs.models import LoopTest, LoopTestResult, Run, RunCassette
from tests.engine.llm_server import LLMServer, Recorded, Reply, verdict

from .builder_fixtures import git, make_bare_repo
from .runs_support import loop_yaml, make_loop

KEY = "sk-loop-tests-key-000777"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    yield
    secrets.REGISTRY.clear()


@pytest.fixture
def team(make_team: Any) -> tuple[Any, dict[str, Any]]:
    return make_team("Acme", roles=["admin", "editor", "viewer"])


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        srv.when(lambda body: Recorded(body, 0.0).is_checker, verdict(True, 0.9))
        srv.default = Reply("No bugs found.", prompt_tokens=50, completion_tokens=5)
        yield srv


def post(client: Any, url: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(url, json.dumps(body or {}), content_type="application/json")


def live_run(team: Any, client_for: Any, server: LLMServer) -> tuple[Any, dict[str, Any]]:
    """Give the team a provider on the test server and a loop; run it live; return both."""
    acme, users = team
    provider = {
        "name": "fast",
        "model": "openai/test-model",
        "api_key": KEY,
        "api_base": server.url,
        "default": True,
    }
    assert post(client_for(users["admin"]), "/api/providers", provider).status_code == 201
    loop = make_loop(acme, loop_yaml("review"))
    body = post(client_for(users["editor"]), "/api/runs", {"loop_id": loop.pk}).json()
    assert body["status"] == "succeeded", body
    return loop, body


def test_a_live_run_is_recorded_with_its_secrets_masked(
    team: Any, client_for: Any, server: LLMServer
) -> None:
    _, run = live_run(team, client_for, server)

    cassette = RunCassette.objects.get(run_id=run["id"]).text
    assert "loop: review" in cassette
    assert "step: Bug Review" in cassette and "Review for bugs" in cassette
    assert RunCassette.objects.get(run_id=run["id"]).calls == len(server.completed())
    assert KEY not in cassette


def test_a_kept_run_replays_as_a_passing_test_with_no_model_call(
    team: Any, client_for: Any, server: LLMServer
) -> None:
    loop, run = live_run(team, client_for, server)
    editor = client_for(team[1]["editor"])

    kept = post(editor, f"/api/runs/{run['id']}/keep-as-test", {"name": "happy path"})

    assert kept.status_code == 201, kept.content
    test = kept.json()
    assert (test["name"], test["source_run"], test["last_result"]) == (
        "happy path",
        run["id"],
        None,
    )
    assert test["test_yaml"].endswith(
        "loop: ../loops/review.yaml\ncassette: review.happy-path.cassette.yaml\nname: happy path\n"
        "expect:\n  status: succeeded\n  verification:\n    passed: true\n    rounds: 1\n"
    )
    calls = len(server.completed())
    server.stop()  # a replay calls nothing

    ran = post(editor, f"/api/loops/{loop.pk}/tests/run").json()

    assert (ran["version"], ran["total"], ran["passed"], ran["failed"]) == (1, 1, 1, 0), ran
    assert ran["results"][0]["replayed"] == calls
    assert ran["results"][0]["status"] == "succeeded"
    listed = client_for(team[1]["viewer"]).get(f"/api/loops/{loop.pk}/tests").json()
    assert [(t["name"], t["last_result"]["passed"]) for t in listed] == [("happy path", True)]


def test_a_saved_prompt_edit_fails_the_test_naming_the_step(
    team: Any, client_for: Any, server: LLMServer
) -> None:
    loop, run = live_run(team, client_for, server)
    editor = client_for(team[1]["editor"])
    post(editor, f"/api/runs/{run['id']}/keep-as-test", {"name": "happy path"})
    server.stop()
    current = editor.get(f"/api/loops/{loop.pk}").json()
    edited = current["yaml"].replace("Review for bugs", "Review for every bug")

    saved = editor.put(
        f"/api/loops/{loop.pk}",
        json.dumps({"yaml": edited, "base_version": 1, "message": "sharper"}),
        content_type="application/json",
    ).json()

    tests = saved["tests"]
    assert (tests["version"], tests["total"], tests["passed"], tests["failed"]) == (2, 1, 0, 1)
    failure = tests["results"][0]["failures"][0]
    assert failure["message"] == (
        "the request of step 'Bug Review' (maker, round 1) is not in the cassette: "
        "message 1 (user) changed"
    )
    assert failure["location"] == "loops/review.yaml:6:17"  # the prompt of the step
    assert "-Review for bugs" in failure["diff"] and "+Review for every bug" in failure["diff"]
    assert LoopTestResult.objects.get(trigger="save").version_number == 2
    # The version the test was kept from still passes.
    again = post(editor, f"/api/loops/{loop.pk}/tests/run", {"version": 1}).json()
    assert (again["version"], again["passed"]) == (1, 1)


def test_a_save_of_a_loop_without_tests_runs_none(team: Any, client_for: Any) -> None:
    acme, users = team
    loop = make_loop(acme, loop_yaml("quiet"))
    editor = client_for(users["editor"])
    text = editor.get(f"/api/loops/{loop.pk}").json()["yaml"].replace("bugs", "defects")

    saved = editor.put(
        f"/api/loops/{loop.pk}",
        json.dumps({"yaml": text, "base_version": 1}),
        content_type="application/json",
    ).json()

    assert (saved["version"], saved["tests"]) == (2, None)


def test_expectations_are_edited_as_yaml_and_bad_yaml_is_refused_at_its_line_and_column(
    team: Any, client_for: Any, server: LLMServer
) -> None:
    loop, run = live_run(team, client_for, server)
    editor = client_for(team[1]["editor"])
    test = post(editor, f"/api/runs/{run['id']}/keep-as-test").json()
    url = f"/api/loops/{loop.pk}/tests/{test['id']}"
    bad = test["test_yaml"].replace("status: succeeded", "status: succeeded\n  rounds: two")

    refused = editor.put(url, json.dumps({"test_yaml": bad}), content_type="application/json")

    assert refused.status_code == 422
    body = refused.json()
    assert body["code"] == "invalid_test"
    line = bad.splitlines().index("  rounds: two") + 1
    assert body["errors"][0]["location"] == f"tests/review-run-{run['id']}.test.yaml:{line}:3"
    assert body["errors"][0]["path"] == "expect.rounds"
    assert body["message"].startswith(f"the test file is not valid: tests/review-run-{run['id']}")
    # A valid edit (an output expectation) is kept and holds on replay.
    good = test["test_yaml"] + "  outputs:\n    Summary: {contains: No bugs}\n"
    saved = editor.put(url, json.dumps({"test_yaml": good}), content_type="application/json")
    assert saved.status_code == 200, saved.content
    server.stop()
    assert post(editor, f"/api/loops/{loop.pk}/tests/run").json()["passed"] == 1
    stricter = good.replace("contains: No bugs", "contains: Ship it")
    editor.put(url, json.dumps({"test_yaml": stricter}), content_type="application/json")
    failed = post(editor, f"/api/loops/{loop.pk}/tests/run").json()["results"][0]
    assert failed["failures"][0]["message"] == (
        "output of 'Summary': expected to contain 'Ship it', got 'No bugs found.'"
    )


def test_a_dry_run_has_no_recording_to_keep(team: Any, client_for: Any) -> None:
    acme, users = team
    loop = make_loop(acme, loop_yaml("dry"))
    editor = client_for(users["editor"])
    run = post(editor, "/api/runs", {"loop_id": loop.pk, "dry_run": True}).json()

    refused = post(editor, f"/api/runs/{run['id']}/keep-as-test")

    assert refused.status_code == 409
    assert refused.json()["code"] == "no_recording"
    assert refused.json()["message"] == (
        f"run #{run['id']} has no recording: a dry run is not recorded "
        "(it calls no model): start a live run"
    )


def test_viewers_read_tests_editors_keep_run_and_delete_them_and_each_is_audited(
    team: Any, client_for: Any, server: LLMServer, make_team: Any
) -> None:
    loop, run = live_run(team, client_for, server)
    users = team[1]
    viewer, editor = client_for(users["viewer"]), client_for(users["editor"])
    _, others = make_team("Other", roles=["owner"])
    outsider = client_for(others["owner"])

    assert post(viewer, f"/api/runs/{run['id']}/keep-as-test").status_code == 403
    assert post(outsider, f"/api/runs/{run['id']}/keep-as-test").status_code == 404
    test = post(editor, f"/api/runs/{run['id']}/keep-as-test", {"name": "t1"}).json()
    taken = post(editor, f"/api/runs/{run['id']}/keep-as-test", {"name": "t1"})
    assert (taken.status_code, taken.json()["code"]) == (409, "name_taken")
    url = f"/api/loops/{loop.pk}/tests/{test['id']}"

    assert viewer.get(url).json()["cassette"].startswith("# LoopKit cassette")
    assert outsider.get(url).status_code == 404
    assert outsider.get(f"/api/loops/{loop.pk}/tests").status_code == 404
    assert post(viewer, f"/api/loops/{loop.pk}/tests/run").status_code == 403
    assert post(editor, f"/api/loops/{loop.pk}/tests/run").status_code == 200
    assert viewer.delete(url).status_code == 403
    assert editor.delete(url).status_code == 204
    assert not LoopTest.objects.exists()

    actions = list(
        AuditEvent.objects.filter(action__startswith="loop_test").values_list("action", flat=True)
    )
    assert sorted(actions) == ["loop_test.deleted", "loop_test.kept", "loop_tests.run"]


def test_deleting_a_run_deletes_its_cassette_but_not_the_kept_test(
    team: Any, client_for: Any, server: LLMServer
) -> None:
    _, run = live_run(team, client_for, server)
    post(client_for(team[1]["editor"]), f"/api/runs/{run['id']}/keep-as-test")

    Run.objects.filter(pk=run["id"]).delete()

    assert not RunCassette.objects.exists()
    assert LoopTest.objects.get().source_run is None


def test_the_pages_keep_a_run_as_a_test_and_list_its_result_on_the_loop_page(
    team: Any, client_for: Any, server: LLMServer
) -> None:
    loop, run = live_run(team, client_for, server)
    editor, viewer = client_for(team[1]["editor"]), client_for(team[1]["viewer"])
    assert b'data-testid="keep-as-test"' in editor.get(f"/runs/{run['id']}/").content
    assert b'data-testid="keep-as-test"' not in viewer.get(f"/runs/{run['id']}/").content

    kept = editor.post(f"/runs/{run['id']}/keep-as-test/", {"name": "from the page"})
    assert kept.status_code == 302 and kept["Location"] == f"/loops/{loop.pk}/#tests"
    ran = editor.post(f"/loops/{loop.pk}/tests/run/")
    assert ran.status_code == 302

    page = viewer.get(f"/loops/{loop.pk}/").content.decode()
    assert '<tr data-test="from the page">' in page
    assert '<span class="lk-pass" data-result="pass">pass</span>' in page
    assert "1/1 passed" in page
    assert 'data-testid="run-tests"' not in page  # a viewer reads, an editor runs


def test_the_export_zip_holds_the_tests_and_loopkit_test_passes_on_it(
    team: Any, client_for: Any, server: LLMServer, tmp_path: Path
) -> None:
    _loop, run = live_run(team, client_for, server)
    editor = client_for(team[1]["editor"])
    post(editor, f"/api/runs/{run['id']}/keep-as-test", {"name": "happy path"})
    server.stop()

    exported = editor.get("/api/loops/export")

    archive = zipfile.ZipFile(io.BytesIO(exported.content))
    assert sorted(archive.namelist()) == [
        "loops/review.yaml",
        "tests/review.happy-path.cassette.yaml",
        "tests/review.happy-path.test.yaml",
    ]
    archive.extractall(tmp_path)
    result = replay(tmp_path / "tests" / "review.happy-path.test.yaml")
    assert (result.name, result.passed, result.status) == ("happy path", True, "succeeded")


def test_the_git_export_writes_the_tests_beside_the_loops_folder(
    team: Any, client_for: Any, server: LLMServer, tmp_path: Path
) -> None:
    _loop, run = live_run(team, client_for, server)
    users = team[1]
    editor = client_for(users["editor"])
    post(editor, f"/api/runs/{run['id']}/keep-as-test", {"name": "happy path"})
    bare = make_bare_repo(tmp_path)
    settings = {"url": str(bare), "folder": "agents/loops"}
    assert (
        client_for(users["admin"])
        .put("/api/loops/repository", json.dumps(settings), content_type="application/json")
        .status_code
        == 200
    )
    server.stop()

    body = post(editor, "/api/loops/repository/export").json()

    assert body["files"] == [
        "agents/loops/review.yaml",
        "agents/tests/review.happy-path.test.yaml",
        "agents/tests/review.happy-path.cassette.yaml",
    ]
    clone = tmp_path / "clone"
    git("clone", "-q", str(bare), str(clone))
    test_file = clone / "agents" / "tests" / "review.happy-path.test.yaml"
    assert "\nloop: ../loops/review.yaml\n" in test_file.read_text()
    assert replay(test_file).passed


def test_the_editors_form_save_runs_the_tests_and_says_how_they_went(
    team: Any, client_for: Any, server: LLMServer
) -> None:
    loop, run = live_run(team, client_for, server)
    editor = client_for(team[1]["editor"])
    post(editor, f"/api/runs/{run['id']}/keep-as-test")
    server.stop()
    text = editor.get(f"/api/loops/{loop.pk}").json()["yaml"]

    saved = editor.post(
        f"/loops/{loop.pk}/edit/",
        {"yaml": text.replace("Summarise the reviews", "Summarise"), "base_version": "1"},
        follow=True,
    )

    assert "Tests: 0/1 passed on v2." in saved.content.decode()

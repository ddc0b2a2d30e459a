"""``loopkit run LOOP --remote`` against a live server, with an API token."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from loopkit import secrets
from loopkit.cli import main
from loopkit.remote import RemoteError, run_remote
from loopkit_web.accounts.models import ApiToken
from runs.models import Run, RunEvent

from .runs_support import make_loop

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def remote(make_team: Any, live_server: Any) -> dict[str, str]:
    acme, users = make_team("Acme", roles=["editor"])
    make_loop(acme, name="pr-review")
    # Each agent's text streams in 4 pieces over 400 ms (step_output events).
    make_loop(acme, name="streamed", latency_ms=400)
    _, raw = ApiToken.issue(user=users["editor"], team=acme, name="cli")
    return {"LOOPKIT_SERVER": live_server.url, "LOOPKIT_TOKEN": raw}


def test_it_starts_a_run_on_the_server_and_prints_it_as_a_local_run(remote: dict[str, str]) -> None:
    out = io.StringIO()
    status = run_remote("pr-review", inputs={}, dry_run=True, as_json=False, env=remote, out=out)
    assert status == "succeeded"
    run = Run.objects.get()
    text = out.getvalue()
    assert text.startswith(f"Run #{run.pk} started on {remote['LOOPKIT_SERVER']}/runs/{run.pk}/\n")
    assert "Running Loop: pr-review" in text
    assert "Round 1: [ok] PASS (score: 0.95)" in text
    assert "[ok] Loop 'pr-review' completed successfully" in text
    assert run.trigger_type == "manual" and run.dry_run


def test_it_prints_json_lines_with_json(remote: dict[str, str]) -> None:
    out = io.StringIO()
    run_remote("pr-review", inputs={}, dry_run=True, as_json=True, env=remote, out=out)

    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
    assert lines[-1]["type"] == "run_finished" and lines[-1]["status"] == "succeeded"


def test_it_names_an_unknown_loop(remote: dict[str, str]) -> None:
    with pytest.raises(RemoteError) as error:
        run_remote("nope", inputs={}, dry_run=True, as_json=False, env=remote, out=io.StringIO())
    assert str(error.value) == (
        f"{remote['LOOPKIT_SERVER']} answered 404: no loop named 'nope' in team Acme"
    )


def test_it_refuses_a_bad_token(remote: dict[str, str]) -> None:
    env = {**remote, "LOOPKIT_TOKEN": "lk_wrong"}
    with pytest.raises(RemoteError) as error:
        run_remote("pr-review", inputs={}, dry_run=True, as_json=False, env=env, out=io.StringIO())
    assert str(error.value).startswith(f"{remote['LOOPKIT_SERVER']} answered 401: ")
    assert "invalid or revoked API token" in str(error.value)
    assert not Run.objects.exists()


def test_it_says_which_variables_it_needs() -> None:
    with pytest.raises(RemoteError) as error:
        run_remote("pr-review", inputs={}, dry_run=True, as_json=False, env={}, out=io.StringIO())
    assert "LOOPKIT_SERVER" in str(error.value) and "LOOPKIT_TOKEN" in str(error.value)


SUMMARY = "    Summary | [dry run] Summary: no model was called (round 1).\n"


@pytest.fixture
def _no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    # Secrets resolved by other tests would hold streamed text back to the end of a call.
    monkeypatch.setattr(secrets, "REGISTRY", secrets.Registry())


@pytest.mark.usefixtures("_no_secrets")
def test_verbose_prints_the_agents_streamed_text_as_a_local_verbose_run(
    remote: dict[str, str],
) -> None:
    out = io.StringIO()
    status = run_remote(
        "streamed", inputs={}, dry_run=True, as_json=False, verbose=True, env=remote, out=out
    )

    assert status == "succeeded"
    text = out.getvalue()
    assert SUMMARY in text
    assert "  -> Agent: Summary...\n" + SUMMARY in text
    for maker in ("Bug Review", "Security Review"):
        assert f"    {maker} | [dry run] " in text
    assert "[ok] Loop 'streamed' completed successfully" in text


@pytest.mark.usefixtures("_no_secrets")
def test_without_verbose_the_streamed_text_is_not_printed(remote: dict[str, str]) -> None:
    out = io.StringIO()
    status = run_remote("streamed", inputs={}, dry_run=True, as_json=False, env=remote, out=out)

    assert status == "succeeded"
    assert RunEvent.objects.filter(type="step_output").exists()  # the server did stream
    text = out.getvalue()
    for step in ("Bug Review", "Security Review", "Summary"):
        assert f"   {step} | " not in text
    assert "| [dry run]" not in text and "[step_output]" not in text


@pytest.mark.usefixtures("_no_secrets")
def test_the_command_passes_verbose_to_the_remote_run(
    remote: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in remote.items():
        monkeypatch.setenv(name, value)

    code = main(["run", "streamed", "--remote", "--dry-run", "--verbose"])

    assert code == 0
    assert SUMMARY in capsys.readouterr().out


# --- inputs, payload and the options a server cannot honour ---------------------------


@pytest.fixture
def typed_remote(make_team: Any, live_server: Any) -> dict[str, str]:
    acme, users = make_team("Acme", roles=["editor"])
    make_loop(
        acme,
        name="typed",
        inputs={"repo": {"type": "string", "required": True}, "count": {"type": "integer"}},
    )
    make_loop(acme, name="on-pr", trigger={"type": "webhook", "event": "pull_request"})
    _, raw = ApiToken.issue(user=users["editor"], team=acme, name="cli")
    return {"LOOPKIT_SERVER": live_server.url, "LOOPKIT_TOKEN": raw}


@pytest.mark.usefixtures("_no_secrets")
def test_the_command_passes_inputs_and_a_payload_file_to_the_server(
    typed_remote: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name, value in typed_remote.items():
        monkeypatch.setenv(name, value)
    payload = tmp_path / "delivery.json"
    payload.write_text('{"action": "opened", "number": 7}')

    typed = main(["run", "typed", "--remote", "--dry-run", "-i", "repo=acme/api", "-i", "count=5"])
    on_pr = main(["run", "on-pr", "--remote", "--dry-run", "--payload", str(payload)])

    assert (typed, on_pr) == (0, 0)
    runs = {run.loop_name: run for run in Run.objects.all()}
    assert runs["typed"].inputs == {"repo": "acme/api", "count": 5}
    assert runs["on-pr"].trigger_payload == {"action": "opened", "number": 7}


@pytest.mark.usefixtures("_no_secrets")
def test_the_command_shows_the_servers_refusal_of_an_input(
    typed_remote: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in typed_remote.items():
        monkeypatch.setenv(name, value)

    code = main(["run", "typed", "--remote", "--dry-run", "-i", "count=abc"])

    assert code == 2
    assert capsys.readouterr().err == (
        f"loopkit run --remote: {typed_remote['LOOPKIT_SERVER']} answered 422: "
        "input 'count' must be an integer, not \"abc\"\n"
    )
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--resume", "12"],
            "--resume cannot be used with --remote: the server resumes its own runs when a "
            "worker stops; to run a finished run again, press Re-run on its page "
            "(or POST /api/runs/ID/rerun)",
        ),
        (
            ["--approve"],
            "--approve cannot be used with --remote: decide approvals on the run's page on "
            "the server",
        ),
        (
            ["--concurrency", "4"],
            "--concurrency cannot be used with --remote: the server's workers set how many "
            "agents run at once",
        ),
    ],
)
def test_the_command_refuses_an_option_the_server_cannot_honour(
    options: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "typed", "--remote", *options])

    assert code == 2
    assert capsys.readouterr().err == f"loopkit run --remote: {message}\n"


def test_the_command_refuses_a_payload_file_that_is_not_a_json_object(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    payload = tmp_path / "list.json"
    payload.write_text("[1, 2]")

    code = main(["run", "typed", "--remote", "--payload", str(payload)])

    assert code == 2
    assert capsys.readouterr().err == (
        f"loopkit run --remote: --payload {payload} must hold a JSON object, not list\n"
    )

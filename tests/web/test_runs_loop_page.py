"""The loop page: how the loop starts (webhook, cron, events) and its Run dialog."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from loopkit.webhooks import sample_payload
from runs.models import Run
from runs.starts import describe_cron, next_firings

from .runs_support import make_loop

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def editor(make_team: Any, client_for: Any) -> tuple[Any, Any]:
    acme, users = make_team("Acme", roles=["editor"])
    return acme, client_for(users["editor"])


def _page(client: Any, loop: Any) -> str:
    response = client.get(f"/loops/{loop.pk}/")
    assert response.status_code == 200
    return str(response.content.decode())


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def test_a_webhook_loop_shows_its_url_and_githubs_settings(
    editor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme, client = editor
    monkeypatch.delenv("PR_HOOK_SECRET", raising=False)
    loop = make_loop(
        acme,
        name="on-pr",
        trigger={
            "type": "webhook",
            "event": "pull_request",
            "actions": ["opened"],
            "secretEnv": "PR_HOOK_SECRET",
        },
    )

    text = _text(_page(client, loop))

    assert "Webhook URL: http://testserver/hooks/acme/on-pr/" in text
    assert "Payload URL: http://testserver/hooks/acme/on-pr/" in text
    assert "Content type: application/json" in text
    assert "Secret: the value of the environment variable PR_HOOK_SECRET on this server" in text
    assert (
        "Let me select individual events, then the pull_request event "
        "(other actions than opened are ignored)" in text
    )
    assert (
        "The server has no PR_HOOK_SECRET yet: deliveries are answered 503 until it is set." in text
    )
    monkeypatch.setenv("PR_HOOK_SECRET", "s3cret")
    assert "The server has PR_HOOK_SECRET set." in _text(_page(client, loop))


def test_a_cron_loop_shows_its_schedule_in_words_and_next_three_firings_in_its_zone(
    editor: Any,
) -> None:
    acme, client = editor
    loop = make_loop(
        acme,
        name="new-year",
        trigger={"type": "cron", "schedule": "0 12 1 1 *", "timezone": "Asia/Tokyo"},
    )
    now = datetime.now(UTC)
    year = now.year + 1 if (now.month, now.day, now.hour) >= (1, 1, 3) else now.year

    html = _page(client, loop)

    assert (
        "On a schedule: At 12:00, on day 1 of the month, only in January "
        "(0 12 1 1 *, time zone Asia/Tokyo)." in _text(html)
    )
    firings = re.search(r'data-testid="cron-next">(.*?)</ul>', html, re.S)
    assert firings is not None
    assert re.findall(r"<li>(.*?)</li>", firings.group(1)) == [
        f"{datetime(y, 1, 1).strftime('%a')} {y}-01-01 12:00 JST"
        for y in (year, year + 1, year + 2)
    ]


def test_a_schedule_without_a_time_zone_is_shown_in_the_teams(editor: Any) -> None:
    acme, client = editor
    acme.timezone = "America/New_York"
    acme.save(update_fields=["timezone"])
    loop = make_loop(acme, name="nightly", trigger={"type": "cron", "schedule": "0 0 1 7 *"})
    now = datetime.now(UTC)
    year = now.year + 1 if (now.month, now.day, now.hour) >= (7, 1, 4) else now.year

    html = _page(client, loop)

    assert (
        "On a schedule: At 00:00, on day 1 of the month, only in July "
        "(0 0 1 7 *, time zone America/New_York, the team's)." in _text(html)
    )
    firings = re.search(r'data-testid="cron-next">(.*?)</ul>', html, re.S)
    assert firings is not None
    assert re.findall(r"<li>(.*?)</li>", firings.group(1)) == [
        f"{datetime(y, 7, 1).strftime('%a')} {y}-07-01 00:00 EDT"
        for y in (year, year + 1, year + 2)
    ]


def test_the_next_firings_follow_the_schedules_time_zone_across_a_clock_change() -> None:
    now = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)

    firings = next_firings("30 9 * * *", "Europe/Paris", now)

    assert [f.isoformat() for f in firings] == [
        "2026-03-28T09:30:00+01:00",
        "2026-03-29T09:30:00+02:00",
        "2026-03-30T09:30:00+02:00",
    ]
    assert describe_cron("30 9 * * 1-5") == "At 09:30, Monday through Friday"


def test_event_triggers_name_the_loop_or_the_custom_event(editor: Any) -> None:
    acme, client = editor
    build = make_loop(acme, name="build")
    after = make_loop(
        acme, name="after-build", trigger={"type": "event", "loop": "build", "status": ["failed"]}
    )
    custom = make_loop(acme, name="on-deploy", trigger={"type": "event", "event": "deployed"})

    after_html = _page(client, after)

    assert f'<a href="/loops/{build.pk}/">build</a>' in after_html
    assert "When a run of build ends with status failed." in _text(after_html)
    assert (
        'On the custom event deployed: POST /api/events {"event": "deployed", '
        '"payload": {...}} (editor role).' in _text(_page(client, custom)).replace("&quot;", '"')
    )


# --- the Run dialog ---------------------------------------------------------------------


def test_the_dialog_has_a_field_per_input_of_its_type_with_its_default(editor: Any) -> None:
    acme, client = editor
    loop = make_loop(
        acme,
        inputs={
            "repo": {"type": "string", "required": True, "description": "owner/name"},
            "count": {"type": "integer", "default": 3},
            "ratio": {"type": "number", "default": 0.5},
            "strict": {"type": "boolean", "default": True},
        },
    )

    html = _page(client, loop)

    assert re.search(r'<input id="run-input-repo" type="text" name="input.repo" value=""', html)
    assert re.search(
        r'<input id="run-input-count" type="number" name="input.count" value="3"[^>]*step="1"',
        html,
    )
    assert re.search(
        r'<input id="run-input-ratio" type="number" name="input.ratio" value="0.5"[^>]*step="any"',
        html,
    )
    assert re.search(
        r'<input type="checkbox" name="input.strict" value="true" data-testid="input-strict" '
        r"checked>",
        html,
    )
    assert "(required for a live run)" in html


def test_a_webhook_loops_dialog_is_prefilled_with_githubs_sample_of_the_event(
    editor: Any,
) -> None:
    acme, client = editor
    loop = make_loop(acme, trigger={"type": "webhook", "event": "pull_request"})

    html = _page(client, loop)

    found = re.search(r'<textarea name="payload"[^>]*>(.*?)</textarea>', html, re.S)
    assert found is not None
    import html as html_lib

    assert json.loads(html_lib.unescape(found.group(1))) == sample_payload("pull_request")


def test_the_dialogs_form_starts_a_run_with_converted_inputs_a_payload_and_a_model(
    editor: Any,
) -> None:
    acme, client = editor
    loop = make_loop(
        acme,
        trigger={"type": "webhook", "event": "push"},
        inputs={"count": {"type": "integer"}, "strict": {"type": "boolean", "default": True}},
    )

    response = client.post(
        f"/runs/start/{loop.pk}/",
        {
            "input.count": "7",
            "input.strict": ["false"],  # the hidden field only: the box was unticked
            "payload": '{"ref": "refs/heads/main"}',
            "dry_run": "1",
            "model": "openai/gpt-4o-mini",
        },
    )

    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    assert run.inputs == {"count": 7, "strict": False}
    assert run.trigger_payload == {"ref": "refs/heads/main"}
    assert (run.model, run.dry_run, run.status) == ("openai/gpt-4o-mini", True, "succeeded")


def test_the_sample_payload_left_unchanged_lets_the_engine_use_its_own_sample(
    editor: Any,
) -> None:
    acme, client = editor
    loop = make_loop(acme, trigger={"type": "webhook", "event": "pull_request"})
    sample = json.dumps(sample_payload("pull_request"), indent=2)

    client.post(f"/runs/start/{loop.pk}/", {"payload": sample, "dry_run": "1"})

    assert Run.objects.get().trigger_payload == {}


def test_the_dialog_refuses_invalid_json_and_a_misfit_input_with_a_message(editor: Any) -> None:
    acme, client = editor
    loop = make_loop(
        acme, trigger={"type": "webhook", "event": "push"}, inputs={"count": {"type": "integer"}}
    )
    page = f"/loops/{loop.pk}/"

    bad_json = client.post(
        f"/runs/start/{loop.pk}/", {"payload": "{oops", "dry_run": "1", "next": page}, follow=True
    )
    bad_input = client.post(
        f"/runs/start/{loop.pk}/", {"input.count": "abc", "dry_run": "1", "next": page}, follow=True
    )

    assert (
        "payload is not valid JSON: Expecting property name enclosed in double quotes "
        "at line 1 column 2" in bad_json.content.decode()
    )
    assert "input &#x27;count&#x27; must be an integer, not &quot;abc&quot;" in (
        bad_input.content.decode()
    )
    assert not Run.objects.exists()

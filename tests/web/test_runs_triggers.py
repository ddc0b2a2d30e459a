"""The webhook, cron and event triggers (Huey in immediate mode: runs execute inline).

Real workers racing on one cron schedule are in test_runs_workers.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client, override_settings

from loopkit_web.audit.models import AuditEvent
from runs.models import CronFiring, Run, WebhookDelivery
from runs.tasks import fire_crons
from runs.triggers import signature_for

from .runs_support import make_loop

pytestmark = [
    pytest.mark.django_db(transaction=True),
]

SECRET_ENV = "LOOPKIT_TEST_RUNS_HOOK_SECRET"
SECRET = "It's a Secret to Everybody"


@pytest.fixture(autouse=True)
def _dry_runs_only(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.LOOPKIT_RUNS_DRY_RUN_ONLY = True
    monkeypatch.setenv(SECRET_ENV, SECRET)


@pytest.fixture
def team(make_team: Any) -> tuple[Any, dict[str, Any]]:
    return make_team("Acme", roles=["owner", "editor", "viewer"])


@pytest.fixture
def hook_loop(team: Any) -> Any:
    return make_loop(
        team[0],
        name="pr-review",
        trigger={
            "type": "webhook",
            "event": "pull_request",
            "actions": ["opened", "synchronize"],
            "secretEnv": SECRET_ENV,
        },
    )


def deliver(
    loop: Any,
    body: bytes,
    *,
    event: str = "pull_request",
    delivery: str = "d-1",
    signature: str | None = None,
    slug: str | None = None,
) -> Any:
    headers = {
        "HTTP_X_GITHUB_EVENT": event,
        "HTTP_X_GITHUB_DELIVERY": delivery,
        "HTTP_X_HUB_SIGNATURE_256": signature
        if signature is not None
        else signature_for(SECRET, body),
    }
    url = f"/hooks/{slug or loop.team.slug}/{loop.name}/"
    return Client().post(url, body, content_type="application/json", **headers)


PR_OPENED = json.dumps({"action": "opened", "number": 7, "pull_request": {"title": "Fix"}}).encode()


def test_a_signed_delivery_starts_a_run_with_the_payload_as_trigger_payload(hook_loop: Any) -> None:
    response = deliver(hook_loop, PR_OPENED)
    assert response.status_code == 202, response.content
    run = Run.objects.get(pk=response.json()["run_id"])
    assert run.trigger_type == "webhook"
    assert run.trigger_payload == {
        "action": "opened",
        "number": 7,
        "pull_request": {"title": "Fix"},
    }
    assert run.status == "succeeded"
    assert run.started_by is None
    assert run.started_by_label.startswith("webhook pull_request.opened")
    audit = AuditEvent.objects.get(action="run.triggered.webhook")
    assert audit.target_id == str(run.pk)
    assert audit.team == hook_loop.team


def test_a_bad_signature_is_refused_with_401_and_starts_nothing(hook_loop: Any) -> None:
    response = deliver(hook_loop, PR_OPENED, signature="sha256=" + "0" * 64)
    assert response.status_code == 401
    assert response.json() == {"message": "bad signature (X-Hub-Signature-256)"}
    assert Run.objects.count() == 0


def test_a_body_signed_with_another_secret_is_refused(hook_loop: Any) -> None:
    response = deliver(hook_loop, PR_OPENED, signature=signature_for("wrong", PR_OPENED))
    assert response.status_code == 401


def test_a_missing_signature_is_refused(hook_loop: Any) -> None:
    response = deliver(hook_loop, PR_OPENED, signature="")
    assert response.status_code == 401
    assert Run.objects.count() == 0


def test_a_replayed_delivery_starts_no_second_run(hook_loop: Any) -> None:
    first = deliver(hook_loop, PR_OPENED, delivery="abc-123")
    again = deliver(hook_loop, PR_OPENED, delivery="abc-123")
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json() == {
        "message": "duplicate delivery: already received",
        "duplicate": True,
        "run_id": first.json()["run_id"],
    }
    assert Run.objects.count() == 1
    assert WebhookDelivery.objects.count() == 1


def test_two_long_delivery_ids_that_share_a_prefix_are_two_deliveries(hook_loop: Any) -> None:
    prefix = "d" * 300
    first = deliver(hook_loop, PR_OPENED, delivery=prefix + "-1")
    second = deliver(hook_loop, PR_OPENED, delivery=prefix + "-2")
    again = deliver(hook_loop, PR_OPENED, delivery=prefix + "-2")

    assert (first.status_code, second.status_code, again.status_code) == (202, 202, 200)
    assert again.json()["run_id"] == second.json()["run_id"]
    assert sorted(WebhookDelivery.objects.values_list("delivery_id", flat=True)) == [
        prefix + "-1",
        prefix + "-2",
    ]


@override_settings(LOOPKIT_WEBHOOK_MAX_BYTES=1024)
def test_an_oversized_body_is_refused_with_413(hook_loop: Any) -> None:
    body = json.dumps({"action": "opened", "pad": "x" * 2000}).encode()
    response = deliver(hook_loop, body)
    assert response.status_code == 413
    assert response.json() == {"message": "the body is larger than 1024 bytes"}
    assert Run.objects.count() == 0


def test_an_unknown_loop_or_team_is_404(hook_loop: Any) -> None:
    assert deliver(hook_loop, PR_OPENED, slug="nobody").status_code == 404
    response = Client().post(
        f"/hooks/{hook_loop.team.slug}/no-such-loop/", PR_OPENED, content_type="application/json"
    )
    assert response.status_code == 404
    assert response.json() == {"message": "no loop with a webhook trigger at this address"}


def test_a_loop_without_a_webhook_trigger_is_404(team: Any) -> None:
    loop = make_loop(team[0], name="manual-only")
    assert deliver(loop, PR_OPENED).status_code == 404


def test_another_event_or_action_is_ignored(hook_loop: Any) -> None:
    other_event = deliver(hook_loop, PR_OPENED, event="issues", delivery="d-2")
    closed = json.dumps({"action": "closed"}).encode()
    other_action = deliver(hook_loop, closed, delivery="d-3")
    assert other_event.status_code == 200 and other_event.json()["ignored"] is True
    assert other_action.json() == {
        "message": "ignored: action 'closed' is not one of opened, synchronize",
        "ignored": True,
    }
    assert Run.objects.count() == 0


def test_a_ping_is_answered(hook_loop: Any) -> None:
    response = deliver(hook_loop, b"{}", event="ping")
    assert response.status_code == 200
    assert response.json() == {"message": "pong"}


def test_the_server_without_the_secret_says_which_variable_to_set(
    hook_loop: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_ENV)
    response = deliver(hook_loop, PR_OPENED)
    assert response.status_code == 503
    assert response.json() == {
        "message": f"the server has no secret: set the environment variable {SECRET_ENV}"
    }


# ── Cron ─────────────────────────────────────────────────────────────────


def test_cron_fires_once_per_due_time_in_the_loops_time_zone(team: Any) -> None:
    loop = make_loop(
        team[0],
        name="nightly",
        trigger={"type": "cron", "schedule": "30 9 * * *", "timezone": "Europe/Paris"},
    )
    loop.created_at = datetime(2026, 11, 1, tzinfo=UTC)
    loop.save(update_fields=["created_at"])
    # 09:30 in Paris is 08:30 UTC in November.
    at = datetime(2026, 11, 20, 8, 31, tzinfo=UTC)
    first = fire_crons(at)
    again = fire_crons(at + timedelta(seconds=20))
    assert len(first) == 1 and again == []
    firing = CronFiring.objects.get()
    assert firing.due_time == datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    run = Run.objects.get(pk=first[0])
    assert run.trigger_type == "cron"
    assert run.trigger_payload["due_time"] == "2026-11-20T08:30:00+00:00"
    assert fire_crons(at + timedelta(days=1)) != []  # the next day's due time fires again
    assert AuditEvent.objects.filter(action="run.triggered.cron").count() == 2


def test_a_schedule_without_a_time_zone_fires_in_the_teams(team: Any) -> None:
    acme = team[0]
    acme.timezone = "Asia/Tokyo"
    acme.save(update_fields=["timezone"])
    loop = make_loop(acme, name="morning", trigger={"type": "cron", "schedule": "0 9 * * *"})
    loop.created_at = datetime(2026, 11, 1, tzinfo=UTC)
    loop.save(update_fields=["created_at"])
    # 09:00 in Tokyo is 00:00 UTC; 09:00 UTC (the default zone) is not due at 00:01.
    started = fire_crons(datetime(2026, 11, 20, 0, 1, tzinfo=UTC))

    assert len(started) == 1
    assert CronFiring.objects.get().due_time == datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
    assert Run.objects.get().trigger_payload["timezone"] == "Asia/Tokyo"


def test_cron_does_not_fire_a_due_time_long_past(team: Any) -> None:
    loop = make_loop(team[0], name="weekly", trigger={"type": "cron", "schedule": "0 8 * * 1"})
    loop.created_at = datetime(2026, 1, 1, tzinfo=UTC)
    loop.save(update_fields=["created_at"])
    # Monday 2026-11-23 08:00 UTC was due; on Wednesday it is too late to fire it.
    assert fire_crons(datetime(2026, 11, 25, 12, 0, tzinfo=UTC)) == []


def cron_loop(team: Any, name: str, created: datetime, **trigger: Any) -> Any:
    loop = make_loop(team, name=name, trigger={"type": "cron", **trigger})
    loop.created_at = created
    loop.save(update_fields=["created_at"])
    return loop


def fired_due_times(run_ids: list[int]) -> list[str]:
    """The ``trigger.payload`` due times of the runs *run_ids*, in the order they started."""
    runs = Run.objects.in_bulk(run_ids)
    return [runs[pk].trigger_payload["due_time"] for pk in run_ids]


def test_due_times_missed_while_no_worker_ran_each_fire_once_oldest_first(team: Any) -> None:
    cron_loop(
        team[0],
        "quarterly",
        datetime(2026, 11, 20, 9, 40, tzinfo=UTC),
        schedule="*/15 * * * *",
        catchUpMinutes=60,
    )
    assert len(fire_crons(datetime(2026, 11, 20, 9, 45, 10, tzinfo=UTC))) == 1
    # Every worker is down from 09:46 to 10:31: 10:00, 10:15 and 10:30 were missed.
    back = datetime(2026, 11, 20, 10, 31, tzinfo=UTC)
    caught_up = fire_crons(back)
    assert fired_due_times(caught_up) == [
        "2026-11-20T10:00:00+00:00",
        "2026-11-20T10:15:00+00:00",
        "2026-11-20T10:30:00+00:00",
    ]
    assert caught_up == sorted(caught_up)
    assert fire_crons(back + timedelta(seconds=30)) == []
    assert fire_crons(back + timedelta(minutes=1)) == []
    assert CronFiring.objects.count() == Run.objects.count() == 4


def test_missed_due_times_older_than_the_catch_up_window_are_skipped(team: Any) -> None:
    cron_loop(
        team[0], "often", datetime(2026, 11, 20, 9, 59, 30, tzinfo=UTC), schedule="*/2 * * * *"
    )
    assert len(fire_crons(datetime(2026, 11, 20, 10, 0, 5, tzinfo=UTC))) == 1
    # Back at 10:09:30: 10:02 and 10:04 are older than the default 5 minutes.
    caught_up = fire_crons(datetime(2026, 11, 20, 10, 9, 30, tzinfo=UTC))
    assert fired_due_times(caught_up) == ["2026-11-20T10:06:00+00:00", "2026-11-20T10:08:00+00:00"]
    assert fire_crons(datetime(2026, 11, 20, 10, 9, 40, tzinfo=UTC)) == []


def test_catch_up_latest_fires_only_the_last_missed_due_time(team: Any) -> None:
    cron_loop(
        team[0],
        "hourly",
        datetime(2026, 11, 1, tzinfo=UTC),
        schedule="0 * * * *",
        catchUp="latest",
        catchUpMinutes=600,
    )
    caught_up = fire_crons(datetime(2026, 11, 20, 14, 20, tzinfo=UTC))
    assert fired_due_times(caught_up) == ["2026-11-20T14:00:00+00:00"]
    assert fire_crons(datetime(2026, 11, 20, 14, 21, tzinfo=UTC)) == []


def test_a_day_of_missed_minutes_fires_only_the_latest_up_to_the_limit(
    team: Any, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.LOOPKIT_CRON_CATCH_UP_LIMIT = 3
    cron_loop(
        team[0],
        "every-minute",
        datetime(2026, 11, 19, 10, 0, tzinfo=UTC),
        schedule="* * * * *",
        catchUpMinutes=1440,
    )
    assert len(fire_crons(datetime(2026, 11, 19, 10, 0, 5, tzinfo=UTC))) == 1
    back = datetime(2026, 11, 20, 10, 0, 5, tzinfo=UTC)
    with caplog.at_level("WARNING", logger="runs.triggers"):
        caught_up = fire_crons(back)
    assert fired_due_times(caught_up) == [
        "2026-11-20T09:58:00+00:00",
        "2026-11-20T09:59:00+00:00",
        "2026-11-20T10:00:00+00:00",
    ]
    assert "cron every-minute: 1440 due times missed since 2026-11-19T10:01:00+00:00" in caplog.text
    # The skipped minutes stay skipped: the next tick fires its own minute only.
    later = fire_crons(back + timedelta(minutes=1))
    assert fired_due_times(later) == ["2026-11-20T10:01:00+00:00"]


def test_catch_up_never_fires_a_due_time_from_before_the_loop_existed(team: Any) -> None:
    cron_loop(
        team[0],
        "new",
        datetime(2026, 11, 20, 10, 7, 30, tzinfo=UTC),
        schedule="* * * * *",
        catchUpMinutes=60,
    )
    caught_up = fire_crons(datetime(2026, 11, 20, 10, 9, 10, tzinfo=UTC))
    # 10:07 fires: a due time less than a minute before the loop was created still does.
    assert fired_due_times(caught_up) == [
        "2026-11-20T10:07:00+00:00",
        "2026-11-20T10:08:00+00:00",
        "2026-11-20T10:09:00+00:00",
    ]


def test_catch_up_across_the_autumn_change_fires_each_hour_once(team: Any) -> None:
    # Berlin, 2026-10-25: 03:00 CEST (01:00 UTC) becomes 02:00 CET; 02:00-03:00 happens twice.
    cron_loop(
        team[0],
        "berlin-hourly",
        datetime(2026, 10, 24, 23, 0, tzinfo=UTC),
        schedule="0 * * * *",
        timezone="Europe/Berlin",
        catchUpMinutes=180,
    )
    assert len(fire_crons(datetime(2026, 10, 24, 23, 0, 20, tzinfo=UTC))) == 1  # 01:00 CEST
    # Back at 02:05 CET, the second 02:05 of the night: both 02:00 were missed.
    caught_up = fire_crons(datetime(2026, 10, 25, 1, 5, tzinfo=UTC))
    assert fired_due_times(caught_up) == ["2026-10-25T00:00:00+00:00", "2026-10-25T01:00:00+00:00"]
    assert fire_crons(datetime(2026, 10, 25, 1, 6, tzinfo=UTC)) == []
    assert fired_due_times(fire_crons(datetime(2026, 10, 25, 2, 0, 20, tzinfo=UTC))) == [
        "2026-10-25T02:00:00+00:00"  # 03:00 CET
    ]
    assert {run.trigger_payload["timezone"] for run in Run.objects.all()} == {"Europe/Berlin"}


# ── Events ───────────────────────────────────────────────────────────────


def test_a_loops_completion_triggers_the_loops_listening_for_its_status(
    team: Any, client_for: Any
) -> None:
    acme, users = team
    upstream = make_loop(acme, name="build")
    on_success = make_loop(
        acme, name="deploy", trigger={"type": "event", "loop": "build", "status": ["succeeded"]}
    )
    make_loop(
        acme, name="page-oncall", trigger={"type": "event", "loop": "build", "status": ["failed"]}
    )
    response = client_for(users["editor"]).post(
        "/api/runs", {"loop_id": upstream.pk, "dry_run": True}, content_type="application/json"
    )
    first = response.json()["id"]
    chained = Run.objects.get(loop=on_success)
    assert chained.trigger_type == "event"
    assert chained.trigger_payload == {
        "loop": "build",
        "run_id": first,
        "status": "succeeded",
        "depth": 1,
    }
    assert chained.status == "succeeded"
    assert not Run.objects.filter(loop_name="page-oncall").exists()
    assert AuditEvent.objects.filter(action="run.triggered.event").count() == 1


@override_settings(LOOPKIT_EVENT_CHAIN_LIMIT=3)
def test_a_loop_triggering_itself_stops_at_the_chain_limit(team: Any, client_for: Any) -> None:
    acme, users = team
    loop = make_loop(acme, name="again", trigger={"type": "event", "loop": "again"})
    from runs.lifecycle import start_run

    start_run(loop, trigger_type="manual", dry_run=True, actor=users["editor"])
    assert Run.objects.filter(loop=loop).count() == 4  # the manual run and 3 chained ones


def test_a_custom_event_starts_the_loops_listening_for_it(team: Any, client_for: Any) -> None:
    acme, users = team
    listener = make_loop(acme, name="on-deploy", trigger={"type": "event", "event": "deployed"})
    response = client_for(users["editor"]).post(
        "/api/events",
        {"event": "deployed", "payload": {"env": "prod"}},
        content_type="application/json",
    )
    assert response.status_code == 202
    run = Run.objects.get(loop=listener)
    assert response.json() == {"event": "deployed", "runs": [run.pk]}
    assert run.trigger_payload == {"event": "deployed", "data": {"env": "prod"}, "depth": 1}
    assert run.started_by == users["editor"]


def test_a_viewer_cannot_raise_a_custom_event(team: Any, client_for: Any) -> None:
    acme, users = team
    make_loop(acme, name="on-deploy", trigger={"type": "event", "event": "deployed"})
    response = client_for(users["viewer"]).post(
        "/api/events", {"event": "deployed"}, content_type="application/json"
    )
    assert response.status_code == 403
    assert Run.objects.count() == 0

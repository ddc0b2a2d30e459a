"""Team notifications: the settings (admins, audited, the URL encrypted) and what is sent.

Runs execute on this process's run host, inline (Huey runs tasks inline in the
test settings), so the notification task has run when ``start_run`` returns.
The team's webhook is a real HTTP server on 127.0.0.1 that counts posts; email
goes through Django's SMTP backend to a real SMTP server on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from loopkit_web.audit.models import AuditEvent
from notifications import services
from notifications.models import Notification, TeamNotifications
from runs import lifecycle
from runs.lifecycle import start_run
from runs.models import ApprovalRequest, Run, RunEvent, Status
from tests.engine.notify_servers import SMTPServer, WebhookServer

from .runs_support import make_loop

pytestmark = pytest.mark.django_db(transaction=True)

SECRET_PATH = "/services/T0ACME/B0ALERTS/s3cr3t-webhook-token-0123"
PUBLIC = "https://loopkit.example.com"


@pytest.fixture
def team(make_team: Any) -> tuple[Any, dict[str, Any]]:
    return make_team("Acme", roles=["owner", "admin", "editor", "viewer"])


@pytest.fixture
def hooks() -> Iterator[WebhookServer]:
    with WebhookServer() as server:
        yield server


def configure(team: Any, url: str = "", recipients: list[str] | None = None, **flags: Any) -> Any:
    return services.update(
        None, team, {"webhook_url": url, "email_recipients": recipients or [], **flags}
    )


def api(client: Any, method: str, path: str, body: Any = None) -> Any:
    call = getattr(client, method)
    if body is None:
        return call(path)
    return call(path, json.dumps(body), content_type="application/json")


# ── Settings ─────────────────────────────────────────────────────────────


def test_an_admin_sets_the_webhook_and_it_is_stored_encrypted_and_audited(
    team: Any, client_for: Any, hooks: WebhookServer
) -> None:
    acme, users = team
    url = hooks.url(SECRET_PATH)
    path = f"/api/teams/{acme.pk}/notifications"

    response = api(
        client_for(users["admin"]),
        "patch",
        path,
        {"webhook_url": url, "email_recipients": ["oncall@example.com"], "on_approval": False},
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["webhook_set"] is True
    assert body["webhook_hint"] == f"http://127.0.0.1:{url.split(':')[2].split('/')[0]}/…0123"
    assert body["email_recipients"] == ["oncall@example.com"]
    assert (body["on_approval"], body["on_failure"]) == (False, True)
    row = TeamNotifications.objects.get(team=acme)
    assert row.webhook_url() == url
    assert "s3cr3t" not in row.webhook_url_encrypted
    event = AuditEvent.objects.get(action="team.notifications_updated")
    assert event.team_id == acme.pk and event.actor_id == users["admin"].pk
    assert event.changes["email_recipients"] == [None, ["oncall@example.com"]]
    assert "s3cr3t" not in json.dumps(event.changes)
    assert "s3cr3t" not in api(client_for(users["owner"]), "get", path).content.decode()


def test_editors_and_viewers_cannot_read_or_change_the_settings(team: Any, client_for: Any) -> None:
    acme, users = team
    path = f"/api/teams/{acme.pk}/notifications"
    for role in ("editor", "viewer"):
        client = client_for(users[role])
        assert api(client, "get", path).status_code == 403
        refused = api(client, "patch", path, {"email_recipients": ["x@example.com"]})
        assert refused.status_code == 403
        assert refused.json()["code"] == "forbidden"
    assert not TeamNotifications.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="team.notifications").exists()


def test_a_bad_url_or_address_is_refused_naming_the_field(team: Any, client_for: Any) -> None:
    acme, users = team
    client = client_for(users["admin"])
    path = f"/api/teams/{acme.pk}/notifications"

    bad_url = api(client, "patch", path, {"webhook_url": "hooks.slack.com/services/x"})
    bad_address = api(client, "patch", path, {"email_recipients": ["oncall"]})

    assert bad_url.status_code == 422
    assert bad_url.json()["code"] == "invalid"
    assert bad_url.json()["message"].startswith(
        "webhook_url: a webhook URL must start with https:// (or http://) and name a host"
    )
    assert bad_address.status_code == 422
    assert bad_address.json()["message"] == "email_recipients: 'oncall' is not an email address"
    assert not TeamNotifications.objects.exists()


def test_the_page_keeps_the_url_when_its_field_is_left_empty_and_removes_it_on_request(
    team: Any, client_for: Any, hooks: WebhookServer
) -> None:
    acme, users = team
    client = client_for(users["admin"])
    page = f"/teams/{acme.pk}/notifications/"
    url = hooks.url(SECRET_PATH)

    client.post(page, {"webhook_url": url, "email_recipients": "a@example.com\nb@example.com"})
    client.post(page, {"webhook_url": "", "email_recipients": "a@example.com", "on_failure": "on"})
    kept = TeamNotifications.objects.get(team=acme)
    shown = client.get(page).content.decode()
    client.post(page, {"clear_webhook": "on", "email_recipients": "", "on_failure": "on"})
    cleared = TeamNotifications.objects.get(team=acme)

    assert kept.webhook_url() == url
    assert kept.email_recipients == ["a@example.com"]
    assert (kept.on_approval, kept.on_failure) == (False, True)
    assert kept.webhook_url_hint in shown and "s3cr3t" not in shown
    assert (cleared.webhook_url_encrypted, cleared.webhook_url_hint) == ("", "")
    assert AuditEvent.objects.filter(action="team.notifications_updated").count() == 3


def test_a_test_message_reaches_the_webhook_and_a_refusal_is_told_without_the_url(
    team: Any, client_for: Any, hooks: WebhookServer
) -> None:
    acme, users = team
    client = client_for(users["admin"])
    configure(acme, hooks.url(SECRET_PATH))

    sent = api(client, "post", f"/api/teams/{acme.pk}/notifications/test", {})
    hooks.status = 404
    refused = api(client, "post", f"/api/teams/{acme.pk}/notifications/test", {})

    assert sent.json() == {"ok": True, "outcome": {"webhook": "sent"}}
    assert len(hooks.posts) == 2
    assert hooks.posts[0].path == SECRET_PATH
    assert hooks.posts[0].json["text"].startswith("*LoopKit test notification*")
    assert refused.json() == {
        "ok": False,
        "outcome": {"webhook": "the webhook at 127.0.0.1 answered HTTP 404"},
    }
    assert AuditEvent.objects.filter(action="team.notifications_tested").count() == 2


# ── What is sent ─────────────────────────────────────────────────────────


@override_settings(LOOPKIT_PUBLIC_URL=PUBLIC)
def test_a_run_waiting_for_approval_sends_one_message_with_a_link_to_the_run(
    team: Any, hooks: WebhookServer
) -> None:
    acme, users = team
    configure(acme, hooks.url(SECRET_PATH))
    run = start_run(
        make_loop(acme, approval=True), trigger_type="manual", dry_run=True, actor=users["editor"]
    )
    run.refresh_from_db()
    assert run.status == Status.WAITING

    assert len(hooks.posts) == 1
    text = hooks.posts[0].json["text"]
    assert text.startswith(f"*Waiting for approval: review #{run.pk}*\n\nShip it?")
    assert f"<{PUBLIC}/runs/{run.pk}/|Open the run to approve or reject>" in text
    assert "*Who may decide:* admin" in text
    approval = ApprovalRequest.objects.get(run=run)
    note = Notification.objects.get(run=run)
    assert (note.event, note.key, note.outcome) == (
        "approval",
        str(approval.pk),
        {"webhook": "sent"},
    )
    # Told once per gate: the task again (a retry, the run parked again) sends nothing.
    assert services.notify_run(run.pk, "approval") == []
    assert len(hooks.posts) == 1
    # Approved, the run succeeds: a success is not told.
    approval_url = f"/api/runs/{run.pk}/approvals/{approval.pk}/approve"
    from django.test import Client

    client = Client()
    client.force_login(users["admin"])
    assert client.post(approval_url, {}, content_type="application/json").status_code == 200
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED
    assert len(hooks.posts) == 1


def test_a_failed_run_sends_one_message_and_a_succeeded_run_none(
    team: Any, hooks: WebhookServer
) -> None:
    acme, users = team
    configure(acme, hooks.url(SECRET_PATH))

    ok = start_run(make_loop(acme), trigger_type="manual", dry_run=True, actor=users["editor"])
    failing = make_loop(acme, name="strict", scores=[0.1, 0.1, 0.1])
    failed = start_run(failing, trigger_type="manual", dry_run=True, actor=users["editor"])

    assert Run.objects.get(pk=ok.pk).status == Status.SUCCEEDED
    assert Run.objects.get(pk=failed.pk).status == Status.VERIFICATION_FAILED
    assert len(hooks.posts) == 1
    text = hooks.posts[0].json["text"]
    assert text.startswith(f"*Verification failed: strict #{failed.pk}*")
    assert "*Status:* verification_failed" in text
    assert f"/runs/{failed.pk}/|Open the run>" in text
    assert list(Notification.objects.values_list("run_id", "event")) == [(failed.pk, "failed")]


def test_a_run_failed_by_recovery_is_told_once_by_email_through_djangos_smtp_backend(
    team: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runs.tasks import HueyQueue

    class KeepQueued(HueyQueue):
        """Huey's queue, but started runs stay queued (recovery then takes them over)."""

        def execute(self, run_id: int, attempt: int | None = None, **when: Any) -> None:
            pass

    monkeypatch.setattr(lifecycle, "_queue", KeepQueued())
    acme, _ = team
    configure(acme, recipients=["oncall@example.com", "lead@example.com"])
    with SMTPServer() as smtp:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp.port
        settings.DEFAULT_FROM_EMAIL = "loopkit@acme.example"
        run = start_run(make_loop(acme), trigger_type="manual", dry_run=True)
        old = timezone.now() - timedelta(minutes=5)
        Run.objects.filter(pk=run.pk).update(status=Status.RUNNING, attempt=3, heartbeat_at=old)

        assert lifecycle.recover()["failed"] == [run.pk]
        assert lifecycle.recover()["failed"] == []

    (received,) = smtp.messages
    assert received.mail_from == "loopkit@acme.example"
    assert received.rcpt_tos == ["oncall@example.com", "lead@example.com"]
    mail = received.message
    assert mail["Subject"] == f"[LoopKit] Failed: review #{run.pk}"
    body = mail.get_content()
    assert "the worker running it stopped responding 3 times" in body
    assert f"/runs/{run.pk}/" in body
    assert Notification.objects.get(run=run).outcome == {"email": "sent"}


def test_switched_off_or_unconfigured_teams_are_not_told(team: Any, hooks: WebhookServer) -> None:
    acme, users = team
    failing = make_loop(acme, name="strict", scores=[0.1, 0.1, 0.1])

    start_run(failing, trigger_type="manual", dry_run=True, actor=users["editor"])
    configure(acme, hooks.url(SECRET_PATH), on_failure=False)
    start_run(failing, trigger_type="manual", dry_run=True, actor=users["editor"])

    assert hooks.posts == []
    assert not Notification.objects.exists()


def test_another_teams_settings_are_never_used(
    team: Any, make_team: Any, hooks: WebhookServer
) -> None:
    acme, users = team
    other, _ = make_team("Bravo", roles=["owner"])
    configure(other, hooks.url(SECRET_PATH))

    start_run(
        make_loop(acme, name="strict", scores=[0.1, 0.1, 0.1]),
        trigger_type="manual",
        dry_run=True,
        actor=users["editor"],
    )

    assert hooks.posts == []


def test_a_webhook_that_fails_is_logged_without_its_url_and_the_run_is_untouched(
    team: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # httpx's own level (another library may have raised it) must let its request line through.
    caplog.set_level(logging.DEBUG, logger="httpx")
    acme, users = team
    with WebhookServer(status=500, body=f"boom {SECRET_PATH}") as hooks:
        url = hooks.url(SECRET_PATH)
        configure(acme, url)
        run = start_run(
            make_loop(acme, name="strict", scores=[0.1, 0.1, 0.1]),
            trigger_type="manual",
            dry_run=True,
            actor=users["editor"],
        )

    run.refresh_from_db()
    assert run.status == Status.VERIFICATION_FAILED
    assert len(hooks.posts) == 1
    note = Notification.objects.get(run=run)
    assert note.outcome == {"webhook": "the webhook at 127.0.0.1 answered HTTP 500"}
    assert (
        f"the failed notification of run {run.pk} was not sent by webhook: "
        "the webhook at 127.0.0.1 answered HTTP 500" in caplog.text
    )
    # The URL's secret part is nowhere: logs (httpx's request line included), events, audit.
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)
    stored = json.dumps(
        [
            list(RunEvent.objects.filter(run=run).values_list("payload", flat=True)),
            list(AuditEvent.objects.values_list("changes", flat=True)),
            note.outcome,
        ]
    )
    for where, text in {"logs": caplog.text, "events, audit, outcome": stored}.items():
        assert "s3cr3t-webhook-token" not in text, f"the webhook URL leaked into the {where}"


def test_key_rotation_reencrypts_the_webhook_url_too(team: Any, settings: Any) -> None:
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    acme, _ = team
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.LOOPKIT_SECRETS_KEY = old
    configure(acme, f"https://hooks.example.com{SECRET_PATH}")
    settings.LOOPKIT_SECRETS_KEY = f"{new},{old}"

    call_command("rotate_provider_keys", stdout=open("/dev/null", "w"))  # noqa: SIM115
    settings.LOOPKIT_SECRETS_KEY = new

    row = TeamNotifications.objects.get(team=acme)
    assert row.webhook_url() == f"https://hooks.example.com{SECRET_PATH}"

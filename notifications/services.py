"""Team notifications: the settings (admins change them, audited) and the sending.

What is sent, and when (``runs.lifecycle`` enqueues ``runs.tasks.notify_run``
after the change is committed; the task calls ``notify_run`` here):

* ``approval``: a run suspended at an approval gate; one message per gate,
  with the question, the approvers and a link to the run's page;
* ``failed``: a run that ended failed, budget_exceeded or verification_failed
  (every terminal status but succeeded and cancelled); one message per run.

Each goes to the team's Slack-compatible webhook and/or its email recipients
(through Django's email backend: ``EMAIL_*`` settings). A ``Notification`` row
per (run, event, gate) is claimed before sending, so a retried task or a run
suspended again at the same gate tells the team at most once. A failure to
send is logged and kept on that row; it never touches the run.

The webhook URL is a secret: stored encrypted (``providers.crypto``), shown
by its host and last four characters, registered for redaction before each
use, and never quoted in a log line, an error or the audit log.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse

from loopkit import notify, secrets
from loopkit_web.audit.services import record, snapshot
from loopkit_web.errors import Invalid
from loopkit_web.teams.models import Team
from notifications.models import Event, Notification, TeamNotifications
from providers import crypto

logger = logging.getLogger(__name__)

#: What the audit log keeps of the settings (the URL only as its hint).
AUDITED = ("webhook_url_hint", "email_recipients", "on_approval", "on_failure")
MAX_RECIPIENTS = 20
MAX_URL = 2000
#: Seconds one webhook post may take (the task's thread waits for it).
WEBHOOK_TIMEOUT = 10.0
SUBJECT_PREFIX = "[LoopKit] "
#: The name a team's webhook URL is masked under (``[redacted:TEAM_WEBHOOK_URL]``).
SECRET_NAME = "TEAM_WEBHOOK_URL"
#: How much of a run's error a failure notification quotes.
MAX_ERROR = 1000


# ── Settings ─────────────────────────────────────────────────────────────


def settings_for(team: Team | int) -> TeamNotifications:
    """Return *team*'s settings (unsaved defaults when it has none yet)."""
    team_id = team if isinstance(team, int) else team.pk
    row = TeamNotifications.objects.filter(team_id=team_id).first()
    return row or TeamNotifications(team_id=team_id)


def clean_webhook_url(value: str) -> str:
    url = value.strip()
    if len(url) > MAX_URL:
        raise Invalid(f"webhook_url: at most {MAX_URL} characters")
    problem = notify.check_webhook_url(url)
    if problem:
        raise Invalid(
            f"webhook_url: {problem} (e.g. https://hooks.slack.com/services/T000/B000/XXXX)"
        )
    return url


def clean_recipients(value: Any) -> list[str]:
    """Return the addresses of a list (or of a text with one per line or comma-separated)."""
    items = value.replace(",", "\n").splitlines() if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        address = str(item).strip()
        if not address or address in out:
            continue
        try:
            validate_email(address)
        except ValidationError:
            raise Invalid(f"email_recipients: '{address}' is not an email address") from None
        out.append(address)
    if len(out) > MAX_RECIPIENTS:
        raise Invalid(f"email_recipients: at most {MAX_RECIPIENTS} addresses")
    return out


@transaction.atomic
def update(request: HttpRequest | Any, team: Team, data: Mapping[str, Any]) -> TeamNotifications:
    """Change the fields present in *data* (``webhook_url``: None keeps it, "" removes it)."""
    row = TeamNotifications.objects.select_for_update().filter(team=team).first()
    before = snapshot(row, AUDITED) if row is not None else None
    row = row or TeamNotifications(team=team)
    if data.get("webhook_url") is not None:
        url = str(data["webhook_url"]).strip()
        row.set_webhook_url(clean_webhook_url(url) if url else "")
    if data.get("email_recipients") is not None:
        row.email_recipients = clean_recipients(data["email_recipients"])
    for flag in ("on_approval", "on_failure"):
        if data.get(flag) is not None:
            setattr(row, flag, bool(data[flag]))
    row.save()
    record(
        request,
        "team.notifications_updated",
        row,
        before=before,
        after=snapshot(row, AUDITED),
        team=team,
    )
    return row


# ── Sending ──────────────────────────────────────────────────────────────


def public_url(path: str) -> str:
    """Return *path* on the address people open LoopKit at (``LOOPKIT_PUBLIC_URL``)."""
    base = str(getattr(settings, "LOOPKIT_PUBLIC_URL", "") or "").rstrip("/")
    if not base:
        base = f"http://localhost:{os.environ.get('LOOPKIT_PORT') or 8000}"
    return base + path


def send(row: TeamNotifications, message: notify.Message) -> dict[str, str]:
    """Send *message* to the team's webhook and email; return each channel's outcome.

    The outcome is "sent" or the error in words; a channel not configured is
    absent. Never raises for a failure to send.
    """
    outcome: dict[str, str] = {}
    if row.webhook_url_encrypted:
        outcome["webhook"] = _post(row, message)
    if row.email_recipients:
        outcome["email"] = _email(list(row.email_recipients), message)
    return outcome


def _post(row: TeamNotifications, message: notify.Message) -> str:
    try:
        url = row.webhook_url()
    except crypto.UnreadableKey:
        return (
            "the stored webhook URL cannot be decrypted with LOOPKIT_SECRETS_KEY "
            "(was it or SECRET_KEY changed?): enter it again"
        )
    secrets.REGISTRY.add(SECRET_NAME, url)
    try:
        # The answer's body is not quoted: the URL is a team admin's, the server's reach is ours.
        notify.post_webhook(
            url, notify.slack_payload(message), timeout=WEBHOOK_TIMEOUT, quote_body=False
        )
    except notify.NotifyError as exc:
        return secrets.redact(str(exc))
    return "sent"


def _email(recipients: list[str], message: notify.Message) -> str:
    password = str(getattr(settings, "EMAIL_HOST_PASSWORD", "") or "")
    if password:
        secrets.REGISTRY.add("EMAIL_HOST_PASSWORD", password)
    mail = EmailMessage(
        subject=message.subject(SUBJECT_PREFIX),
        body=message.plain(),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
    )
    try:
        mail.send(fail_silently=False)
    except Exception as exc:  # smtplib's errors, OSError, a misconfigured backend
        return secrets.redact(f"{type(exc).__name__}: {exc}") or type(exc).__name__
    return "sent"


def _log(run_id: int, event: str, outcome: Mapping[str, str]) -> None:
    for channel, result in outcome.items():
        if result != "sent":
            logger.warning(
                "the %s notification of run %s was not sent by %s: %s",
                event,
                run_id,
                channel,
                result,
            )


def failure_statuses() -> frozenset[str]:
    """The terminal statuses a team is told about: all but succeeded and cancelled."""
    from runs.models import TERMINAL, Status

    return frozenset(TERMINAL - {Status.SUCCEEDED, Status.CANCELLED})


def _common_fields(run: Any) -> dict[str, str]:
    fields = {"Loop": f"{run.loop_name} (version {run.version_number})"}
    fields["Started by"] = run.started_by_label or run.trigger_type
    if run.dry_run:
        fields["Dry run"] = "yes"
    return fields


def approval_message(run: Any, approval: Any) -> notify.Message:
    who = ", ".join(approval.approvers or []) or "editors and above"
    fields = {**_common_fields(run), "Step": approval.step, "Who may decide": who}
    if approval.expires_at is not None:
        fields["Decide by"] = approval.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    return notify.Message(
        title=f"Waiting for approval: {run.loop_name} #{run.pk}",
        text=approval.question or f"The run waits at '{approval.step}'.",
        fields=fields,
        link=public_url(reverse("runs:run_detail", args=[run.pk])),
        link_text="Open the run to approve or reject",
    )


def failure_message(run: Any) -> notify.Message:
    label = run.get_status_display()
    error = " ".join((run.error or "").split())
    if len(error) > MAX_ERROR:
        error = error[: MAX_ERROR - 1] + "…"
    fields = {**_common_fields(run), "Status": run.status, "Cost": run.cost_label}
    return notify.Message(
        title=f"{label}: {run.loop_name} #{run.pk}",
        text=error or f"The run ended {run.status}.",
        fields=fields,
        link=public_url(reverse("runs:run_detail", args=[run.pk])),
        link_text="Open the run",
    )


def notify_run(run_id: int, event: str) -> list[int]:
    """Tell run *run_id*'s team about *event* (``approval`` or ``failed``); return the ids
    of the notifications sent now (none: not configured, switched off, or already told)."""
    from runs.models import ApprovalRequest, ApprovalStatus, Run, Status

    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return []
    row = TeamNotifications.objects.filter(team_id=run.team_id).first()
    if row is None or not row.configured:
        return []
    items: list[tuple[str, notify.Message]] = []
    if event == Event.APPROVAL and row.on_approval and run.status == Status.WAITING:
        pending = ApprovalRequest.objects.filter(run=run, status=ApprovalStatus.PENDING)
        items = [(str(a.pk), approval_message(run, a)) for a in pending.order_by("pk")]
    elif event == Event.FAILED and row.on_failure and run.status in failure_statuses():
        items = [("", failure_message(run))]
    sent: list[int] = []
    for key, message in items:
        note, created = Notification.objects.get_or_create(
            run=run, event=event, key=key, defaults={"team_id": run.team_id}
        )
        if not created:
            continue  # told already (a retried task, a run suspended again at this gate)
        outcome = send(row, message)
        Notification.objects.filter(pk=note.pk).update(outcome=outcome)
        _log(run.pk, event, outcome)
        sent.append(note.pk)
    return sent


def send_test(request: HttpRequest | Any, team: Team) -> dict[str, str]:
    """Send a test message to *team*'s webhook and email now; return each channel's outcome."""
    row = settings_for(team)
    message = notify.Message(
        title="LoopKit test notification",
        text=f"Notifications of the team {team.name} reach this channel.",
        fields={"Sent by": str(getattr(getattr(request, "user", None), "username", "") or "")},
        link=public_url(reverse("teams:settings", args=[team.pk])),
        link_text="Team settings",
    )
    outcome = send(row, message) if row.pk is not None else {}
    record(request, "team.notifications_tested", team, after={"outcome": outcome})
    return outcome

"""Notifications: a message, and the two ways LoopKit sends one.

* A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat and the
  other chat services that take Slack's format): one POST of JSON with
  ``text`` (the whole message in Slack's markdown, what every such service
  shows) and, when the message fits Slack's block limits, ``blocks`` (a
  header, the text, up to ten fields) that Slack shows in its place.
* Email through an SMTP server (``smtplib``): STARTTLS (the default), TLS
  from the start (``ssl``) or none, with an optional login.

The ``slack`` and ``email`` connectors (``loopkit.connectors.notify``) and
the web app's team notifications both send through here.

Secrets: a webhook URL is a credential (whoever has it can post) and so is an
SMTP password. Neither appears in an error raised here (errors name the host,
never the URL's path or the password), and httpx's own request log line,
which quotes the URL, is masked through ``loopkit.secrets`` (callers register
the URL there first, as connectors do for every resolved secret).
"""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any
from urllib.parse import urlsplit

import httpx

from loopkit import secrets

#: Seconds one webhook post or one SMTP conversation may take unless configured.
DEFAULT_TIMEOUT = 30.0
#: The longest text a message may carry (Slack's limit for a message's ``text``).
MAX_TEXT = 40_000
#: Slack's block limits: beyond them the message is sent as ``text`` only.
MAX_HEADER = 150
MAX_SECTION = 3_000
MAX_FIELDS = 10
MAX_FIELD = 2_000
#: The longest email subject made from a title or the text's first line.
MAX_SUBJECT = 150
#: How much of a refusing webhook's answer an error quotes.
MAX_QUOTED = 300


class NotifyError(Exception):
    """A message could not be sent; the text says why and holds no secret."""


@dataclass(frozen=True)
class Message:
    """What to send: the text, an optional title, named fields and a link."""

    text: str
    title: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    #: A URL to open (the run's page), shown after the text as ``link_text``.
    link: str | None = None
    link_text: str = "Open"

    def subject(self, prefix: str = "") -> str:
        """Return an email subject: the title, else the text's first line, on one line."""
        source = self.title or next((ln for ln in self.text.splitlines() if ln.strip()), "")
        line = " ".join(source.split()) or "LoopKit notification"
        if len(line) > MAX_SUBJECT:
            line = line[: MAX_SUBJECT - 1] + "…"
        return f"{prefix}{line}"

    def plain(self) -> str:
        """Return the message as plain text (an email's body)."""
        parts = []
        if self.title:
            parts.append(self.title)
        parts.append(self.text)
        if self.fields:
            parts.append("\n".join(f"{key}: {value}" for key, value in self.fields.items()))
        if self.link:
            parts.append(f"{self.link_text}: {self.link}")
        return "\n\n".join(p for p in parts if p)

    def markdown(self) -> str:
        """Return the message in Slack's markdown (``mrkdwn``), special characters escaped."""
        parts = []
        if self.title:
            parts.append(f"*{escape(self.title)}*")
        parts.append(escape(self.text))
        if self.fields:
            parts.append(
                "\n".join(f"*{escape(key)}:* {escape(value)}" for key, value in self.fields.items())
            )
        if self.link:
            parts.append(_link(self.link, self.link_text))
        return "\n\n".join(p for p in parts if p)


def escape(text: str) -> str:
    """Escape the three characters Slack's markdown reserves (``&``, ``<``, ``>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str, label: str) -> str:
    return f"<{url.replace('|', '%7C').replace('>', '%3E')}|{escape(label)}>"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_payload(message: Message) -> dict[str, Any]:
    """Return the webhook's JSON body: ``text`` always, ``blocks`` when the message fits them."""
    payload: dict[str, Any] = {"text": _clip(message.markdown(), MAX_TEXT)}
    blocks: list[dict[str, Any]] = []
    if message.title:
        if len(message.title) > MAX_HEADER:
            return payload
        blocks.append({"type": "header", "text": {"type": "plain_text", "text": message.title}})
    text = escape(message.text)
    if message.link:
        text = f"{text}\n\n{_link(message.link, message.link_text)}"
    if len(text) > MAX_SECTION:
        return payload
    if text.strip():
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    if message.fields:
        shown = [f"*{escape(key)}*\n{escape(value)}" for key, value in message.fields.items()]
        if len(shown) > MAX_FIELDS or any(len(f) > MAX_FIELD for f in shown):
            return payload
        blocks.append({"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in shown]})
    payload["blocks"] = blocks
    return payload


# ── Webhook ──────────────────────────────────────────────────────────────


class _MaskSecrets(logging.Filter):
    """Mask registered secrets in httpx's log records (its request line quotes the URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: keep its bare template
            message = str(record.msg)
        record.msg = secrets.redact(message)
        record.args = None
        return True


def mask_http_logs() -> None:
    """Make httpx's log lines (``HTTP Request: POST <url> ...``) mask registered secrets."""
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _MaskSecrets) for f in logger.filters):
            logger.addFilter(_MaskSecrets())


def check_webhook_url(url: str) -> str | None:
    """Return why ``url`` cannot be a webhook URL (without quoting it), or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "a webhook URL must start with https:// (or http://) and name a host"
    return None


def post_webhook(
    url: str,
    payload: dict[str, Any],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
    quote_body: bool = True,
) -> int:
    """POST ``payload`` as JSON to a Slack-compatible webhook; return the HTTP status.

    Raise ``NotifyError`` (naming the host only) when it cannot be reached or
    answers with a status of 300 or more (redirects are not followed); the
    error quotes the start of the answer's body unless ``quote_body`` is False.
    """
    problem = check_webhook_url(url)
    if problem:
        raise NotifyError(problem)
    host = urlsplit(url).hostname
    mask_http_logs()
    try:
        with httpx.Client(timeout=timeout, transport=transport, follow_redirects=False) as client:
            response = client.post(url, json=payload)
    except httpx.TimeoutException:
        raise NotifyError(f"the webhook at {host} did not answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise NotifyError(f"could not reach the webhook at {host}: {_reason(exc)}") from None
    if response.status_code >= 300:
        body = secrets.redact(" ".join(response.text.split()))[:MAX_QUOTED] if quote_body else ""
        raise NotifyError(
            f"the webhook at {host} answered HTTP {response.status_code}"
            + (f": {body}" if body else "")
        )
    return response.status_code


def _reason(exc: BaseException) -> str:
    # httpx's messages may quote the URL; the underlying OS error does not.
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    return type(exc).__name__


# ── Email ────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Smtp:
    """Where and how to hand an email over: the SMTP server and its login."""

    host: str
    port: int = 587
    tls: str = "starttls"  # starttls | ssl | none
    user: str | None = None
    password: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    #: The TLS context (None: the system's trusted authorities, hostname checked).
    context: ssl.SSLContext | None = None

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def build_email(
    message: Message, sender: str, recipients: list[str], subject_prefix: str = ""
) -> EmailMessage:
    """Return ``message`` as a plain-text email from ``sender`` to ``recipients``."""
    mail = EmailMessage()
    mail["Subject"] = message.subject(subject_prefix)
    mail["From"] = sender
    mail["To"] = ", ".join(recipients)
    mail["Date"] = formatdate(localtime=False, usegmt=True)
    domain = sender.rpartition("@")[2].strip(" >") or None
    mail["Message-ID"] = make_msgid(domain=domain)
    mail.set_content(message.plain())
    return mail


def send_smtp(mail: EmailMessage, smtp: Smtp) -> list[str]:
    """Send ``mail`` through ``smtp`` (blocking); return the recipients it was accepted for.

    Raise ``NotifyError`` when the server cannot be reached, refuses the TLS
    upgrade, the login, the sender or every recipient.
    """
    context = smtp.context or ssl.create_default_context()
    client: smtplib.SMTP | None = None
    try:
        if smtp.tls == "ssl":
            client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout, context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
        client.ehlo()
        if smtp.tls == "starttls":
            if not client.has_extn("starttls"):
                raise NotifyError(
                    f"the SMTP server {smtp.where} does not offer STARTTLS "
                    "(set smtp.tls to 'ssl' for a TLS port such as 465, or 'none' for a "
                    "local relay)"
                )
            client.starttls(context=context)
            client.ehlo()
        if smtp.user:
            client.login(smtp.user, smtp.password or "")
        refused = client.send_message(mail)
    except NotifyError:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise NotifyError(
            f"the SMTP server {smtp.where} refused the login ({exc.smtp_code}): "
            f"{_said(exc.smtp_error)}"
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        who = ", ".join(f"{rcpt} ({code})" for rcpt, (code, _) in exc.recipients.items())
        raise NotifyError(f"the SMTP server {smtp.where} refused every recipient: {who}") from None
    except smtplib.SMTPSenderRefused as exc:
        raise NotifyError(
            f"the SMTP server {smtp.where} refused the sender {exc.sender} ({exc.smtp_code}): "
            f"{_said(exc.smtp_error)}"
        ) from None
    except smtplib.SMTPResponseException as exc:
        raise NotifyError(
            f"the SMTP server {smtp.where} answered {exc.smtp_code}: {_said(exc.smtp_error)}"
        ) from None
    except ssl.SSLError as exc:
        raise NotifyError(f"TLS with the SMTP server {smtp.where} failed: {exc.reason}") from None
    except (smtplib.SMTPException, OSError) as exc:
        reason = getattr(exc, "strerror", None) or secrets.redact(str(exc)) or type(exc).__name__
        if isinstance(exc, socket.timeout | TimeoutError):
            reason = f"no answer within {smtp.timeout:g} s"
        raise NotifyError(
            f"could not send through the SMTP server {smtp.where}: {reason}"
        ) from None
    finally:
        if client is not None:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()
    recipients = [a.strip() for a in str(mail["To"]).split(",") if a.strip()]
    return [r for r in recipients if r not in refused]


def _said(raw: bytes | str) -> str:
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    return secrets.redact(" ".join(text.split()))[:MAX_QUOTED]

"""The ``slack`` and ``email`` connectors against a real webhook receiver and SMTP server."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_server import LLMServer, Reply
from notify_servers import SMTPServer, WebhookServer

from loopkit import secrets, spec
from loopkit.connectors import ConnectorError, build
from loopkit.connectors.notify import EmailConnector, SlackConnector
from loopkit.connectors.provider import ConnectorTools
from loopkit.engine import RunOptions, run_loop
from loopkit.errors import SpecError
from loopkit.llm import LiteLLMProvider
from loopkit.sinks import JsonlSink, ListSink
from loopkit.yamlio import load_loop

SMTP_PASSWORD = "smtp-Pa55word-0123456789"


@pytest.fixture
def hooks() -> Iterator[WebhookServer]:
    with WebhookServer() as server:
        yield server


def slack(url: str, **extra: Any) -> SlackConnector:
    config = spec.SlackConnector.model_validate(
        {"type": "slack", "webhookEnv": "LK_TEST_SLACK_URL", **extra}
    )
    made = build("alerts", config, env={"LK_TEST_SLACK_URL": url})
    assert isinstance(made, SlackConnector)
    return made


def email(smtp: SMTPServer, tls: str = "none", login: bool = False, **extra: Any) -> Any:
    settings: dict[str, Any] = {"host": "127.0.0.1", "port": smtp.port, "tls": tls}
    env = {}
    if login:
        settings |= {"userEnv": "LK_TEST_SMTP_USER", "passwordEnv": "LK_TEST_SMTP_PASSWORD"}
        env = {"LK_TEST_SMTP_USER": "loopbot", "LK_TEST_SMTP_PASSWORD": SMTP_PASSWORD}
    config = spec.EmailConnector.model_validate(
        {
            "type": "email",
            "smtp": settings,
            "from": "loopkit@example.com",
            "to": ["oncall@example.com", "lead@example.com"],
            **extra,
        }
    )
    return EmailConnector("mail", config, env=env, ssl_context=smtp.client_context())


def send_tool(connector: Any) -> Any:
    (tool,) = connector.tools()
    return tool


# ── Slack-compatible webhook ─────────────────────────────────────────────


async def test_a_slack_connector_offers_one_send_tool(hooks: WebhookServer) -> None:
    conn = slack(hooks.url())
    await conn.start()

    tool = send_tool(conn)

    assert (tool.name, tool.dotted) == ("alerts__send", "alerts.send")
    assert tool.parameters["required"] == ["text"]
    assert set(tool.parameters["properties"]) == {"text", "title", "fields"}
    await conn.stop()


async def test_send_posts_one_json_message_with_text_and_blocks(
    hooks: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # httpx's own level (another library may have raised it) must let its request line through.
    caplog.set_level(logging.DEBUG, logger="httpx")
    url = hooks.url()
    conn = slack(url)
    await conn.start()

    result = await send_tool(conn).call(
        {"text": "3 checks failed <see run>", "title": "Nightly", "fields": {"status": "failed"}}
    )

    assert not result.is_error, result.content
    assert result.content == "sent to the chat webhook (HTTP 200)"
    assert len(hooks.posts) == 1
    post = hooks.posts[0]
    assert post.path == "/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX"
    assert post.headers["Content-Type"] == "application/json"
    assert post.json["text"] == ("*Nightly*\n\n3 checks failed &lt;see run&gt;\n\n*status:* failed")
    assert post.json["blocks"] == [
        {"type": "header", "text": {"type": "plain_text", "text": "Nightly"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "3 checks failed &lt;see run&gt;"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "*status*\nfailed"}]},
    ]
    # The URL is a credential: registered for redaction, and masked in httpx's log line.
    assert secrets.redact(url) == "[redacted:LK_TEST_SLACK_URL]"
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)
    assert url not in caplog.text
    await conn.stop()


async def test_a_message_beyond_slacks_block_limits_is_sent_as_text_only(
    hooks: WebhookServer,
) -> None:
    conn = slack(hooks.url())
    await conn.start()

    result = await send_tool(conn).call({"text": "x" * 5000})

    assert not result.is_error
    assert hooks.posts[0].json == {"text": "x" * 5000}


async def test_a_refusing_webhook_is_an_error_result_naming_the_status_not_the_url() -> None:
    with WebhookServer(status=404, body="no_service") as hooks:
        url = hooks.url()
        conn = slack(url)
        await conn.start()

        result = await send_tool(conn).call({"text": "hello"})

    assert result.is_error
    assert result.content == "not sent: the webhook at 127.0.0.1 answered HTTP 404: no_service"
    assert "/services/" not in result.content


async def test_an_unreachable_webhook_is_an_error_result(hooks: WebhookServer) -> None:
    url = hooks.url()
    hooks.stop()
    conn = slack(url)
    await conn.start()

    result = await send_tool(conn).call({"text": "hello"})

    assert result.is_error
    assert result.content.startswith("not sent: could not reach the webhook at 127.0.0.1: ")
    assert "/services/" not in result.content


async def test_bad_arguments_are_an_error_result_and_send_nothing(hooks: WebhookServer) -> None:
    conn = slack(hooks.url())
    await conn.start()

    result = await send_tool(conn).call({"text": "", "channel": "#general"})

    assert result.is_error
    assert result.content.startswith("invalid arguments (")
    assert hooks.posts == []


async def test_an_unset_webhook_variable_stops_the_start_naming_the_setting() -> None:
    config = spec.SlackConnector(type="slack", webhook_env="LK_TEST_UNSET_SLACK_URL")

    with pytest.raises(secrets.MissingSecret) as caught:
        await build("alerts", config, env={}).start()

    assert str(caught.value).startswith(
        "connector 'alerts' webhookEnv refers to ${LK_TEST_UNSET_SLACK_URL}, but the "
        "environment variable LK_TEST_UNSET_SLACK_URL is not set"
    )


async def test_a_webhook_variable_that_holds_no_url_stops_the_start_without_quoting_it() -> None:
    conn = slack("hooks.example.com/T0/B0/secret-part")

    with pytest.raises(ConnectorError) as caught:
        await conn.start()

    assert str(caught.value) == (
        "connector 'alerts': $LK_TEST_SLACK_URL: a webhook URL must start with https:// "
        "(or http://) and name a host"
    )


# ── Email (SMTP) ─────────────────────────────────────────────────────────


async def test_send_emails_the_recipients_through_a_plain_relay() -> None:
    with SMTPServer() as smtp:
        conn = email(smtp, subjectPrefix="[loopkit] ")
        await conn.start()

        result = await send_tool(conn).call(
            {"text": "The nightly run failed.", "title": "Nightly failed", "fields": {"run": "42"}}
        )

    assert not result.is_error, result.content
    assert result.content == "emailed 2 recipients"
    (received,) = smtp.messages
    assert received.mail_from == "loopkit@example.com"
    assert received.rcpt_tos == ["oncall@example.com", "lead@example.com"]
    mail = received.message
    assert mail["Subject"] == "[loopkit] Nightly failed"
    assert mail["To"] == "oncall@example.com, lead@example.com"
    assert (
        mail.get_content().replace("\r\n", "\n")
        == "Nightly failed\n\nThe nightly run failed.\n\nrun: 42\n"
    )
    assert "oncall@example.com" in send_tool(conn).description


async def test_starttls_then_login_and_the_password_is_registered_for_redaction() -> None:
    with SMTPServer(tls="starttls", users={"loopbot": SMTP_PASSWORD}) as smtp:
        conn = email(smtp, tls="starttls", login=True)
        await conn.start()

        result = await send_tool(conn).call({"text": "hello over TLS"})

    assert not result.is_error, result.content
    (received,) = smtp.messages
    assert (received.login, received.tls) == ("loopbot", True)
    verbs = [c.split()[0].upper() for c in smtp.commands]
    # The login (and the password in it) only travels once the connection is encrypted.
    assert verbs[:4] == ["EHLO", "STARTTLS", "EHLO", "AUTH"]
    assert received.message["Subject"] == "hello over TLS"
    assert secrets.redact(f"pw={SMTP_PASSWORD}") == "pw=[redacted:LK_TEST_SMTP_PASSWORD]"


async def test_tls_from_the_start_on_an_ssl_port() -> None:
    with SMTPServer(tls="ssl", users={"loopbot": SMTP_PASSWORD}) as smtp:
        conn = email(smtp, tls="ssl", login=True)
        await conn.start()

        result = await send_tool(conn).call({"text": "hello over SSL"})

    assert not result.is_error, result.content
    assert [(m.login, m.tls) for m in smtp.messages] == [("loopbot", True)]


async def test_a_server_without_starttls_is_refused_when_starttls_is_asked() -> None:
    with SMTPServer(tls="none") as smtp:
        conn = email(smtp, tls="starttls")
        await conn.start()

        result = await send_tool(conn).call({"text": "hello"})

    assert result.is_error
    assert result.content.startswith(
        f"not sent: the SMTP server 127.0.0.1:{smtp.port} does not offer STARTTLS"
    )
    assert smtp.messages == []


async def test_a_refused_login_is_an_error_result_without_the_password() -> None:
    with SMTPServer(tls="starttls", users={"loopbot": "another-password"}) as smtp:
        conn = email(smtp, tls="starttls", login=True)
        await conn.start()

        result = await send_tool(conn).call({"text": "hello"})

    assert result.is_error
    assert result.content == (
        f"not sent: the SMTP server 127.0.0.1:{smtp.port} refused the login (535): "
        "5.7.8 authentication credentials invalid"
    )
    assert smtp.messages == []


async def test_a_refused_recipient_is_named_and_the_others_still_get_it() -> None:
    with SMTPServer(refuse={"lead@example.com"}) as smtp:
        conn = email(smtp)
        await conn.start()

        result = await send_tool(conn).call({"text": "hello"})

    assert not result.is_error
    assert result.content == "emailed 1 recipient (refused by the server: lead@example.com)"
    assert smtp.messages[0].rcpt_tos == ["oncall@example.com"]


async def test_an_unreachable_smtp_server_is_an_error_result() -> None:
    with SMTPServer() as smtp:
        conn = email(smtp)
    await conn.start()  # after the server stopped: nothing listens on its port

    result = await send_tool(conn).call({"text": "hello"})

    assert result.is_error
    assert result.content.startswith(
        f"not sent: could not send through the SMTP server 127.0.0.1:{smtp.port}: "
    )


# ── The spec ─────────────────────────────────────────────────────────────


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as caught:
        load_loop(text)
    return [(p.path, p.message) for p in caught.value.problems]


def test_a_webhook_url_written_in_place_of_its_variable_is_refused_at_its_path() -> None:
    found = problems(
        "name: x\nconnectors:\n  alerts: {type: slack, webhookEnv: 'https://hooks.slack.com/T/B/x'}"
        "\npipeline: [{prompt: hi}]\n"
    )

    assert found == [
        (
            "connectors.alerts.webhookEnv",
            "'https://hooks.slack.com/T/B/x' is not an environment variable name (letters, "
            "digits and '_', not starting with a digit, e.g. SLACK_WEBHOOK_URL): name the "
            "variable, never write the secret itself",
        )
    ]


def test_email_settings_are_checked_with_their_paths() -> None:
    found = problems(
        "name: x\nconnectors:\n  mail:\n    type: email\n"
        "    smtp: {host: smtp.example.com, port: 0, tls: tls, userEnv: SMTP_USER}\n"
        "    from: loopkit@example.com\n    to: [oncall, '${ONCALL_EMAIL}']\n"
        "pipeline: [{prompt: hi}]\n"
    )

    assert found == [
        ("connectors.mail.smtp.port", "input should be greater than or equal to 1, got 0"),
        ("connectors.mail.smtp.tls", "input should be 'starttls', 'ssl' or 'none', got 'tls'"),
        (
            "connectors.mail.to[0]",
            "'oncall' is not an email address (name@example.com) or a ${VAR} reference",
        ),
    ]
    assert problems(
        "name: x\nconnectors:\n  mail: {type: email, smtp: {host: h, userEnv: U}, "
        "from: a@b.co, to: c@d.co}\npipeline: [{prompt: hi}]\n"
    ) == [("connectors.mail.smtp", "set both 'userEnv' and 'passwordEnv' (SMTP login), or neither")]


def test_an_allow_list_naming_another_tool_of_a_notification_connector_is_an_error() -> None:
    found = problems(
        "name: x\nconnectors:\n  alerts: {type: slack, webhookEnv: SLACK_URL}\n"
        "pipeline: [{prompt: hi, connectors: [alerts], tools: [alerts.post]}]\n"
    )

    assert found == [("pipeline[0].tools[0]", "connector 'alerts' has no tool 'post'")]


def test_the_smtp_port_follows_the_tls_mode() -> None:
    ports = {
        tls: spec.SmtpSettings.model_validate({"host": "h", "tls": tls}).effective_port
        for tls in ("starttls", "ssl", "none")
    }

    assert ports == {"starttls": 587, "ssl": 465, "none": 25}
    assert spec.SmtpSettings(host="h").effective_tls == "starttls"


# ── In a run ─────────────────────────────────────────────────────────────

LOOP = """\
name: notify-loop
model: openai/test
connectors:
  alerts:
    type: slack
    webhookEnv: LK_TEST_RUN_SLACK_URL
  mail:
    type: email
    smtp: {{host: 127.0.0.1, port: {port}, tls: none, userEnv: LK_TEST_RUN_SMTP_USER,
           passwordEnv: LK_TEST_RUN_SMTP_PASSWORD}}
    from: loopkit@example.com
    to: [oncall@example.com]
pipeline:
  - prompt: Tell the team the deploy is done.
    label: Tell
    connectors: [alerts, mail]
    tools: [alerts.send, mail.send]
"""


async def test_an_agent_step_sends_through_both_and_no_secret_reaches_events_or_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # httpx's own level (another library may have raised it) must let its request line through.
    caplog.set_level(logging.DEBUG, logger="httpx")
    with WebhookServer() as hooks, SMTPServer(users={"loopbot": SMTP_PASSWORD}) as smtp:
        url = hooks.url("/services/T111/B222/run-secret-path")
        monkeypatch.setenv("LK_TEST_RUN_SLACK_URL", url)
        monkeypatch.setenv("LK_TEST_RUN_SMTP_USER", "loopbot")
        monkeypatch.setenv("LK_TEST_RUN_SMTP_PASSWORD", SMTP_PASSWORD)
        loop = load_loop(LOOP.format(port=smtp.port))
        jsonl, listed = tmp_path / "events.jsonl", ListSink()
        with LLMServer() as llm, jsonl.open("w") as out:
            llm.tool_call("alerts__send", {"text": "Deploy done", "title": "Deploy"})
            llm.tool_call("mail__send", {"text": "Deploy done", "title": "Deploy"})
            llm.script(Reply("Told the team."))
            result = await run_loop(
                loop,
                LiteLLMProvider(api_base=llm.url),
                sinks=[listed, JsonlSink(out)],
                options=RunOptions(retry_base_delay=0.01),
                tool_provider=ConnectorTools(loop, root=tmp_path),
            )
            model_saw = json.dumps([r.body for r in llm.requests])

    assert result.status == "succeeded", result.error
    assert len(hooks.posts) == 1 and hooks.posts[0].json["text"] == "*Deploy*\n\nDeploy done"
    assert len(smtp.messages) == 1 and smtp.messages[0].login == "loopbot"
    calls = {e.name: e for e in listed.of_type("tool_called")}
    assert calls["alerts__send"].result == "sent to the chat webhook (HTTP 200)"
    assert calls["mail__send"].result == "emailed 1 recipient"
    assert not any(c.is_error for c in calls.values())
    for where, text in {
        "events": jsonl.read_text(),
        "logs": caplog.text,
        "requests to the model": model_saw,
    }.items():
        assert "run-secret-path" not in text, f"the webhook URL leaked into the {where}"
        assert SMTP_PASSWORD not in text, f"the SMTP password leaked into the {where}"


def test_a_dry_run_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from loopkit.cli import runtime_main

    with WebhookServer() as hooks, SMTPServer() as smtp:
        monkeypatch.setenv("LK_TEST_RUN_SLACK_URL", hooks.url())
        path = tmp_path / "notify-loop.yaml"
        path.write_text(LOOP.format(port=smtp.port))
        monkeypatch.chdir(tmp_path)
        # The SMTP login's variables are unset: a dry run starts no connector, so needs none.
        assert "LK_TEST_RUN_SMTP_PASSWORD" not in os.environ

        code = runtime_main(["--dry-run", "run", str(path)])

    assert code == 0, capsys.readouterr()
    assert hooks.posts == [] and smtp.messages == []

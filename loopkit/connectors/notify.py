"""Notification connectors: ``slack`` (a Slack-compatible webhook) and ``email`` (SMTP).

Each offers one tool, ``<name>__send``, with the arguments ``text`` (required),
``title`` and ``fields`` (a map of short name → value). The destination is
fixed by the connector, never chosen by the model: the webhook's channel, the
email's recipients. A step sends through it like through any other
connector (an ``onFail:`` step that tells the team, an agent that reports).

Secrets: the webhook URL (from the variable ``webhookEnv`` names) and the SMTP
password (``smtp.passwordEnv``) are resolved when the connector starts and
registered for redaction; a failure's message names the host, never them.
Sending is ``loopkit.notify``'s.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from loopkit import notify, secrets, spec
from loopkit.connectors.base import Connector, ConnectorError, ConnectorTool, tool_name
from loopkit.tools import ToolResult

#: The arguments of every notification connector's ``send`` tool.
SEND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "text": {
            "type": "string",
            "minLength": 1,
            "maxLength": notify.MAX_TEXT,
            "description": "The message (Slack markdown for Slack: *bold*, _italic_, `code`).",
        },
        "title": {
            "type": "string",
            "maxLength": 200,
            "description": "A short title: the message's header, or the email's subject.",
        },
        "fields": {
            "type": "object",
            "additionalProperties": {"type": "string", "maxLength": 2000},
            "maxProperties": 20,
            "description": 'Named values shown under the text, e.g. {"status": "failed"}.',
        },
    },
    "required": ["text"],
    "additionalProperties": False,
}


def _env_ref(name: str) -> str:
    return "${" + name + "}"


class SendTool(ConnectorTool):
    """The ``send`` tool of a notification connector."""

    def __init__(self, owner: NotifyConnector, description: str) -> None:
        self._owner = owner
        self.connector = owner.name
        self.tool = "send"
        self.name = tool_name(owner.name, "send")
        self.description = description
        self.parameters = SEND_SCHEMA

    async def call(self, arguments: dict[str, Any]) -> ToolResult:
        import jsonschema

        try:
            jsonschema.validate(arguments, SEND_SCHEMA)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "arguments"
            return ToolResult(f"invalid arguments ({where}): {exc.message}", is_error=True)
        message = notify.Message(
            text=arguments["text"],
            title=arguments.get("title") or None,
            fields=dict(arguments.get("fields") or {}),
        )
        return await self._owner.send(message)


class NotifyConnector(Connector):
    """A connector whose one tool sends a message somewhere fixed."""

    _tools: list[ConnectorTool]

    def __init__(self, name: str, env: dict[str, str] | None) -> None:
        self.name = name
        self._env = env
        self._tools = []

    def tools(self) -> list[ConnectorTool]:
        return list(self._tools)

    async def stop(self) -> None:
        self._tools = []

    async def send(self, message: notify.Message) -> ToolResult:
        """Send ``message``; every failure comes back as an error result."""
        if not self._tools:
            return ToolResult(f"the connector '{self.name}' is not started", is_error=True)
        try:
            return await self._send(message)
        except notify.NotifyError as exc:
            return ToolResult(f"not sent: {secrets.redact(str(exc))}", is_error=True)

    async def _send(self, message: notify.Message) -> ToolResult:
        raise NotImplementedError


class SlackConnector(NotifyConnector):
    """Posts to a Slack-compatible incoming webhook."""

    def __init__(
        self, name: str, config: spec.SlackConnector, *, env: dict[str, str] | None = None
    ) -> None:
        super().__init__(name, env)
        self.config = config
        self.timeout = float(config.timeout_seconds or notify.DEFAULT_TIMEOUT)
        self._url: str | None = None

    async def start(self) -> None:
        env_name = self.config.webhook_env
        url = secrets.resolve(
            _env_ref(env_name), f"connector '{self.name}' webhookEnv", self._env
        ).strip()
        problem = notify.check_webhook_url(url)
        if problem:
            raise ConnectorError(self.name, f"${env_name}: {problem}")
        secrets.REGISTRY.add(env_name, url)  # stripped of whitespace, masked too
        self._url = url
        about = f" ({self.config.description})" if self.config.description else ""
        self._tools = [
            SendTool(
                self,
                f"Send a message to the chat channel of '{self.name}'{about} "
                "(a Slack-compatible webhook). text is Slack markdown; title and fields "
                "are optional.",
            )
        ]

    async def stop(self) -> None:
        await super().stop()
        self._url = None

    async def _send(self, message: notify.Message) -> ToolResult:
        if self._url is None:
            return ToolResult(f"the connector '{self.name}' is not started", is_error=True)
        status = await asyncio.to_thread(
            notify.post_webhook, self._url, notify.slack_payload(message), timeout=self.timeout
        )
        return ToolResult(f"sent to the chat webhook (HTTP {status})", data={"status": status})


class EmailConnector(NotifyConnector):
    """Sends plain-text email through an SMTP server to the connector's recipients."""

    def __init__(
        self,
        name: str,
        config: spec.EmailConnector,
        *,
        env: dict[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(name, env)
        self.config = config
        self._ssl_context = ssl_context
        self._smtp: notify.Smtp | None = None
        self.sender = ""
        self.recipients: list[str] = []

    def _plain(self, text: str, where: str) -> str:
        """Resolve a setting that may hold ``${VAR}`` but is not a secret (not registered)."""
        return secrets.resolve(text, f"connector '{self.name}' {where}", self._env, registry=None)

    async def start(self) -> None:
        smtp = self.config.smtp
        host = self._plain(smtp.host, "smtp.host").strip()
        if not host:
            raise ConnectorError(self.name, "smtp.host is empty")
        user = password = None
        if smtp.user_env and smtp.password_env:
            user = self._plain(_env_ref(smtp.user_env), "smtp.userEnv")
            password = secrets.resolve(
                _env_ref(smtp.password_env), f"connector '{self.name}' smtp.passwordEnv", self._env
            )
        self.sender = self._plain(self.config.from_, "from").strip()
        self.recipients = [
            self._plain(to, f"to[{i}]").strip() for i, to in enumerate(self.config.to)
        ]
        for where, address in [("from", self.sender), *(("to", r) for r in self.recipients)]:
            if "@" not in address or any(ch in address for ch in "\r\n,"):
                raise ConnectorError(self.name, f"{where}: '{address}' is not one email address")
        self._smtp = notify.Smtp(
            host=host,
            port=smtp.effective_port,
            tls=smtp.effective_tls,
            user=user,
            password=password,
            timeout=float(smtp.timeout_seconds or notify.DEFAULT_TIMEOUT),
            context=self._ssl_context,
        )
        about = f" ({self.config.description})" if self.config.description else ""
        self._tools = [
            SendTool(
                self,
                f"Send an email through '{self.name}'{about} to {', '.join(self.recipients)}. "
                "text is the body (plain text); title is the subject; fields are listed "
                "under the text.",
            )
        ]

    async def stop(self) -> None:
        await super().stop()
        self._smtp = None

    async def _send(self, message: notify.Message) -> ToolResult:
        if self._smtp is None:
            return ToolResult(f"the connector '{self.name}' is not started", is_error=True)
        mail = notify.build_email(
            message, self.sender, self.recipients, self.config.subject_prefix or ""
        )
        accepted = await asyncio.to_thread(notify.send_smtp, mail, self._smtp)
        refused = [r for r in self.recipients if r not in accepted]
        text = f"emailed {len(accepted)} recipient{'s' if len(accepted) != 1 else ''}"
        if refused:
            text += f" (refused by the server: {', '.join(refused)})"
        return ToolResult(text, data={"recipients": len(accepted), "refused": refused})

"""Real local servers for notification tests: a webhook receiver and an SMTP server.

Both listen on 127.0.0.1 on a free port, in a thread, and record what they got::

    with WebhookServer() as hooks:          # hooks.url("/services/T0/B0/x")
        ...
        hooks.posts                         # [Post(path, headers, json), ...]

    with SMTPServer(tls="starttls", users={"bot": "pw"}) as smtp:
        ...                                 # smtp.port, smtp.client_context()
        smtp.messages                       # [Received(mail_from, rcpt_tos, data, login)]

The SMTP server speaks what ``smtplib`` needs: EHLO/HELO, STARTTLS (with a
self-signed certificate for 127.0.0.1 made here; ``client_context()`` trusts
it), TLS from the start (``tls="ssl"``), AUTH PLAIN and LOGIN, MAIL, RCPT
(refusing the addresses in ``refuse``), DATA, RSET, NOOP and QUIT.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import socket
import socketserver
import ssl
import tempfile
import threading
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO

# ── Webhook receiver ─────────────────────────────────────────────────────


@dataclass
class Post:
    path: str
    headers: dict[str, str]
    json: Any


class WebhookServer:
    """Counts the JSON posts it receives; answers ``status`` with ``body``."""

    def __init__(self, status: int = 200, body: str = "ok") -> None:
        self.status = status
        self.body = body
        self.posts: list[Post] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    def url(self, path: str = "/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX") -> str:
        assert self._httpd is not None, "start the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{path}"

    def start(self) -> WebhookServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    data = json.loads(raw)
                except ValueError:
                    data = raw.decode(errors="replace")
                with owner._lock:
                    owner.posts.append(Post(self.path, dict(self.headers), data))
                body = owner.body.encode()
                self.send_response(owner.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> WebhookServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ── SMTP server ──────────────────────────────────────────────────────────


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    login: str | None
    tls: bool

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """Write a key and a self-signed certificate for 127.0.0.1 and localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = directory / "key.pem", directory / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


class SMTPServer:
    """A small SMTP server in a thread; ``tls`` is ``none``, ``starttls`` or ``ssl``."""

    def __init__(
        self,
        *,
        tls: str = "none",
        users: dict[str, str] | None = None,
        refuse: set[str] | None = None,
    ) -> None:
        self.tls = tls
        self.users = dict(users or {})
        self.refuse = set(refuse or ())
        self.messages: list[Received] = []
        #: Every command line received (AUTH lines included: tests grep them).
        self.commands: list[str] = []
        self._lock = threading.Lock()
        self._dir = tempfile.TemporaryDirectory(prefix="loopkit-smtp-")
        self._key, self._cert = _self_signed(Path(self._dir.name))
        self._server: socketserver.ThreadingTCPServer | None = None
        self._port = 0

    @property
    def port(self) -> int:
        """The port it listens on (or listened on, once stopped)."""
        assert self._port, "start the server first"
        return self._port

    def client_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts this server's certificate (hostname checked)."""
        return ssl.create_default_context(cafile=str(self._cert))

    def _server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self._cert), str(self._key))
        return context

    def start(self) -> SMTPServer:
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                owner._session(self.request)

        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._port = int(server.server_address[1])
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._dir.cleanup()

    def __enter__(self) -> SMTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ── One client ───────────────────────────────────────────────────────

    def _session(self, sock: socket.socket) -> None:
        secure = False
        if self.tls == "ssl":
            sock = self._server_context().wrap_socket(sock, server_side=True)
            secure = True
        stream: BinaryIO = sock.makefile("rwb")

        def say(line: str) -> None:
            stream.write(line.encode() + b"\r\n")
            stream.flush()

        def read() -> str | None:
            raw = stream.readline(10_000)
            if not raw:
                return None
            return raw.decode(errors="replace").rstrip("\r\n")

        say("220 127.0.0.1 loopkit test SMTP")
        login: str | None = None
        mail_from: str | None = None
        rcpts: list[str] = []
        while (line := read()) is not None:
            with self._lock:
                self.commands.append(line)
            verb, _, rest = line.partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                features = ["127.0.0.1", "8BITMIME", "SMTPUTF8"]
                if self.tls == "starttls" and not secure:
                    features.append("STARTTLS")
                if self.users and (secure or self.tls == "none"):
                    features.append("AUTH PLAIN LOGIN")
                for feature in features[:-1]:
                    say(f"250-{feature}")
                say(f"250 {features[-1]}")
            elif verb == "HELO":
                say("250 127.0.0.1")
            elif verb == "STARTTLS" and self.tls == "starttls" and not secure:
                say("220 ready to start TLS")
                sock = self._server_context().wrap_socket(sock, server_side=True)
                stream = sock.makefile("rwb")
                secure = True
            elif verb == "AUTH":
                login = self._auth(rest, say, read)
                if login is None:
                    say("535 5.7.8 authentication credentials invalid")
                else:
                    say("235 2.7.0 authentication successful")
            elif verb == "MAIL":
                if self.users and login is None:
                    say("530 5.7.0 authentication required")
                    continue
                mail_from, rcpts = _address(rest), []
                say("250 OK")
            elif verb == "RCPT":
                address = _address(rest)
                if address in self.refuse:
                    say(f"550 5.1.1 <{address}>: no such user")
                else:
                    rcpts.append(address)
                    say("250 OK")
            elif verb == "DATA":
                if mail_from is None or not rcpts:
                    say("503 5.5.1 MAIL and RCPT first")
                    continue
                say("354 end with <CRLF>.<CRLF>")
                lines: list[bytes] = []
                while True:
                    raw = stream.readline(1_000_000)
                    if not raw or raw == b".\r\n":
                        break
                    lines.append(raw[1:] if raw.startswith(b"..") else raw)
                with self._lock:
                    self.messages.append(Received(mail_from, rcpts, b"".join(lines), login, secure))
                mail_from, rcpts = None, []
                say("250 OK queued")
            elif verb in ("RSET", "NOOP"):
                if verb == "RSET":
                    mail_from, rcpts = None, []
                say("250 OK")
            elif verb == "QUIT":
                say("221 bye")
                break
            else:
                say("502 5.5.2 command not implemented")
        try:
            stream.close()
            sock.close()
        except OSError:
            pass

    def _auth(self, rest: str, say: Any, read: Any) -> str | None:
        mechanism, _, initial = rest.partition(" ")
        mechanism = mechanism.upper()
        try:
            if mechanism == "PLAIN":
                if not initial:
                    say("334 ")
                    initial = read() or ""
                _, user, password = base64.b64decode(initial).decode().split("\0")
            elif mechanism == "LOGIN":
                if initial:
                    user = base64.b64decode(initial).decode()
                else:
                    say("334 VXNlcm5hbWU6")
                    user = base64.b64decode(read() or "").decode()
                say("334 UGFzc3dvcmQ6")
                password = base64.b64decode(read() or "").decode()
            else:
                return None
        except (ValueError, UnicodeDecodeError):
            return None
        return user if self.users.get(user) == password else None


def _address(rest: str) -> str:
    """Return the address of ``FROM:<a@b> SIZE=1`` or ``TO:<a@b>``."""
    _, _, value = rest.partition(":")
    value = value.strip().split(" ")[0]
    return value.strip("<>")

"""A real OpenAI-compatible chat completions server on 127.0.0.1, scripted per test.

Reuse it anywhere a test needs a model (LiteLLM's ``openai/<name>`` provider
with ``api_base=server.url``)::

    with LLMServer() as server:
        server.script(Reply("first answer"), Reply(status=429, headers={"Retry-After": "0.05"}))
        server.when("Security Review", Reply("only for prompts containing this"))
        server.when("checker", verdict(False, 0.4, ["missing tests"]), times=1)
        server.tool_call("search", {"q": "x"})          # the next reply asks for a tool
        ...
        server.requests      # every request: body, start/end times, reply status

Replies are chosen in this order: the first matching ``when`` rule (rules
with ``times`` are used up), then the ``script`` queue, then ``default``.
A ``responder(body) -> Reply`` function can replace all of that.
Each connection gets a thread, and the listen backlog is 1024, so hundreds of
clients may connect at once (bench/inflight.py holds 500 runs' calls open).
Usage defaults: prompt tokens = characters of the messages / 4, completion
tokens = characters of the reply / 4 (at least 1), both overridable, and the
completion is clamped to the request's ``max_tokens`` like real providers do.

A request with ``"stream": true`` is answered with server-sent events like
OpenAI's: ``chat.completion.chunk`` objects (``data: {...}``), the text in
``Reply.chunks`` (default: pieces of ``STREAM_PIECE`` characters) with
``chunk_delay`` seconds before each, tool calls in one chunk, a last chunk with
the finish reason, then (when ``stream_options.include_usage`` and
``Reply.stream_usage``) a usage chunk with no choices, and ``data: [DONE]``.
``Recorded.chunk_times`` keeps when each text chunk was sent.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_ids = itertools.count(1)


@dataclass
class Reply:
    """One scripted answer (or failure, with ``status`` >= 400)."""

    content: str = "ok"
    tool_calls: list[dict[str, Any]] | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    status: int = 200
    error: str = "scripted failure"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    finish_reason: str | None = None
    model: str | None = None
    chunks: list[str] | None = None
    chunk_delay: float = 0.0
    stream_usage: bool = True


def verdict(passed: bool, score: float, issues: list[str] | None = None, **usage: Any) -> Reply:
    """A checker's JSON verdict as a reply."""
    return Reply(json.dumps({"pass": passed, "score": score, "issues": issues or []}), **usage)


@dataclass
class Rule:
    needle: str | Callable[[dict[str, Any]], bool]
    reply: Reply
    times: int | None = None

    def matches(self, body: dict[str, Any]) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if callable(self.needle):
            return bool(self.needle(body))
        return self.needle in json.dumps(body["messages"])


@dataclass
class Recorded:
    """A request the server received."""

    body: dict[str, Any]
    started: float
    finished: float = 0.0
    status: int = 0
    chunk_times: list[float] = field(default_factory=list)
    #: The request's path (after the base URL's host) and HTTP headers (names lower-cased).
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n".join(str(m.get("content") or "") for m in self.body.get("messages", []))

    @property
    def is_checker(self) -> bool:
        return "adversarial verifier" in self.text.lower() or '"pass"' in self.text


class LLMServer:
    """Start with ``start()`` (or ``with``); ``url`` is the ``api_base`` to use."""

    def __init__(self, responder: Callable[[dict[str, Any]], Reply] | None = None) -> None:
        self.responder = responder
        self.rules: list[Rule] = []
        self.queue: list[Reply] = []
        self.default = Reply("ok")
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ── Scripting ────────────────────────────────────────────────────────

    def script(self, *replies: Reply) -> LLMServer:
        with self._lock:
            self.queue.extend(replies)
        return self

    def when(
        self, needle: str | Callable[[dict[str, Any]], bool], reply: Reply, times: int | None = None
    ) -> LLMServer:
        with self._lock:
            self.rules.append(Rule(needle, reply, times))
        return self

    def tool_call(self, name: str, arguments: dict[str, Any], **kwargs: Any) -> LLMServer:
        return self.script(Reply("", tool_calls=[{"name": name, "arguments": arguments}], **kwargs))

    def reset(self) -> None:
        with self._lock:
            self.rules.clear()
            self.queue.clear()
            self.requests.clear()
            self.default = Reply("ok")

    def _choose(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            if self.responder is not None:
                return self.responder(body)
            for rule in self.rules:
                if rule.matches(body):
                    if rule.times is not None:
                        rule.times -= 1
                    return rule.reply
            if self.queue:
                return self.queue.pop(0)
            return self.default

    # ── Reading ──────────────────────────────────────────────────────────

    def completed(self, status: int = 200) -> list[Recorded]:
        return [r for r in self.requests if r.status == status]

    def count(self, needle: str, status: int | None = 200) -> int:
        return sum(
            1 for r in self.requests if needle in r.text and (status is None or r.status == status)
        )

    # ── Serving ──────────────────────────────────────────────────────────

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> LLMServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": [{"id": "test", "object": "model"}]})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                record = Recorded(
                    body=body,
                    started=time.monotonic(),
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                )
                with server._lock:
                    server.requests.append(record)
                reply = server._choose(body)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.status >= 400:
                    payload = {
                        "error": {"message": reply.error, "type": "scripted", "code": reply.status}
                    }
                    record.status = reply.status
                    record.finished = time.monotonic()
                    self._send(reply.status, payload, reply.headers)
                    return
                record.status = 200
                if body.get("stream"):
                    self._stream(record, body, reply)
                    return
                record.finished = time.monotonic()
                self._send(200, completion(body, reply), reply.headers)

            def _stream(self, record: Recorded, body: dict[str, Any], reply: Reply) -> None:
                full = completion(body, reply)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Cache-Control", "no-cache")
                    self.send_header("Transfer-Encoding", "chunked")
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    for data in stream_chunks(body, reply, full):
                        if data.get("choices") and data["choices"][0]["delta"].get("content"):
                            if reply.chunk_delay:
                                time.sleep(reply.chunk_delay)
                            record.chunk_times.append(time.monotonic())
                        self._event(json.dumps(data))
                    self._event("[DONE]")
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                record.finished = time.monotonic()

            def _event(self, data: str) -> None:
                raw = f"data: {data}\n\n".encode()
                self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
                self.wfile.flush()

            def _send(
                self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> LLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    """A thread per connection; a listen backlog for hundreds of clients connecting at once
    (the standard library's 5 makes the rest retry their SYN a second or more later)."""

    daemon_threads = True
    request_queue_size = 1024


def completion(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    """Build an OpenAI chat.completion object for ``reply`` to ``body``."""
    chars = sum(len(str(m.get("content") or "")) for m in body.get("messages", []))
    prompt = reply.prompt_tokens if reply.prompt_tokens is not None else max(chars // 4, 1)
    wanted = (
        reply.completion_tokens
        if reply.completion_tokens is not None
        else max(len(reply.content) // 4, 1)
    )
    limit = body.get("max_tokens") or body.get("max_completion_tokens")
    finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
    content = reply.content
    if limit is not None and wanted > limit:
        wanted, finish = int(limit), "length"
        content = content[: max(int(limit) * 4, 1)]
    reasoning = min(reply.reasoning_tokens, wanted)
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reply.tool_calls:
        message["content"] = content or None
        message["tool_calls"] = [
            {
                "id": f"call_{next(_ids)}",
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments", {}))},
            }
            for c in reply.tool_calls
        ]
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": wanted,
        "total_tokens": prompt + wanted,
        "prompt_tokens_details": {"cached_tokens": reply.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }
    if reply.cache_creation_tokens:
        usage["cache_creation_input_tokens"] = reply.cache_creation_tokens
    return {
        "id": f"chatcmpl-{next(_ids)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.model or body.get("model", "test"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage,
    }


STREAM_PIECE = 8


def stream_chunks(body: dict[str, Any], reply: Reply, full: dict[str, Any]) -> list[dict[str, Any]]:
    """Split the completion ``full`` (built for ``reply``) into OpenAI stream chunks."""
    message = full["choices"][0]["message"]
    content = message.get("content") or ""
    if reply.chunks is not None and "".join(reply.chunks) == content:
        pieces = list(reply.chunks)
    else:  # default pieces (or the text was clamped to max_tokens)
        pieces = [content[i : i + STREAM_PIECE] for i in range(0, len(content), STREAM_PIECE)]
    base = {
        "id": full["id"],
        "object": "chat.completion.chunk",
        "created": full["created"],
        "model": full["model"],
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    out = [chunk({"role": "assistant", "content": ""})]
    out.extend(chunk({"content": piece}) for piece in pieces)
    if message.get("tool_calls"):
        out.append(
            chunk(
                {
                    "tool_calls": [
                        {"index": i, **call} for i, call in enumerate(message["tool_calls"])
                    ]
                }
            )
        )
    out.append(chunk({}, full["choices"][0]["finish_reason"]))
    if reply.stream_usage and (body.get("stream_options") or {}).get("include_usage"):
        out.append({**base, "choices": [], "usage": full["usage"]})
    return out


if __name__ == "__main__":  # a manual check: serve "ok" until Ctrl-C
    with LLMServer() as srv:
        print(srv.url, flush=True)
        threading.Event().wait()

"""A real OTLP/HTTP trace receiver on 127.0.0.1: what a collector (Jaeger, Tempo) would get.

It decodes each ``POST /v1/traces`` body (``ExportTraceServiceRequest``,
protobuf, gzip or not) with opentelemetry-proto and keeps every span as a
plain ``Span``; ``bodies`` keeps the raw bytes received (a secret must not be
in any of them)::

    with OTLPReceiver() as receiver:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.url
        ...
        receiver.spans          # every span received, in arrival order
        receiver.tree(trace_id) # "name" -> children, for assertions
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def value(any_value: AnyValue) -> Any:
    """Return an OTLP attribute value as Python data."""
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind) if kind else None


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, Any]
    status: int  # 0 unset, 1 ok, 2 error
    start: int
    end: int
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)
    scope: str = ""
    schema_url: str = ""

    @property
    def error(self) -> bool:
        return self.status == 2


class OTLPReceiver:
    """Receive OTLP/HTTP protobuf traces; see the module docstring."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> OTLPReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                receiver._receive(body, dict(self.headers))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def _receive(self, body: bytes, headers: dict[str, str]) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        spans: list[Span] = []
        for resource_spans in request.resource_spans:
            resource = {kv.key: value(kv.value) for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    spans.append(
                        Span(
                            name=s.name,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_id=s.parent_span_id.hex(),
                            kind=s.kind,
                            attributes={kv.key: value(kv.value) for kv in s.attributes},
                            status=s.status.code,
                            start=s.start_time_unix_nano,
                            end=s.end_time_unix_nano,
                            events=[
                                (e.name, {kv.key: value(kv.value) for kv in e.attributes})
                                for e in s.events
                            ],
                            resource=resource,
                            scope=scope_spans.scope.name,
                            schema_url=scope_spans.schema_url,
                        )
                    )
        with self._lock:
            self.bodies.append(body)
            self.headers.append(headers)
            self.spans.extend(spans)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ── Reading what came ───────────────────────────────────────────────

    def named(self, prefix: str) -> list[Span]:
        return [s for s in self.spans if s.name.startswith(prefix)]

    def children(self, parent: Span) -> list[Span]:
        return sorted(
            (
                s
                for s in self.spans
                if s.parent_id == parent.span_id and s.trace_id == parent.trace_id
            ),
            key=lambda s: (s.start, s.name),
        )

    def tree(self, root: Span, depth: int = 0) -> list[str]:
        """Return the span names under ``root`` (included), indented two spaces a level,
        children in start order."""
        lines = ["  " * depth + root.name]
        for child in self.children(root):
            lines += self.tree(child, depth + 1)
        return lines

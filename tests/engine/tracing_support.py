"""What the tracing tests of the CLI and of the web worker share: a loop with a tool, its API."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: The ticket API's bearer token: it must never reach a span.
TOOL_TOKEN = "tok-tickets-otel-4Kd8Wm1"


class Tickets(ThreadingHTTPServer):
    """A ticket API that echoes the Authorization header it got (a leak to contain)."""

    daemon_threads = True

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                body = json.dumps(
                    {
                        "id": self.path.rsplit("/", 1)[-1],
                        "title": "login fails",
                        "seen_auth": self.headers.get("Authorization"),
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def traced_loop(tickets_url: str) -> str:
    return f"""name: traced
connectors:
  tickets:
    type: http
    baseUrl: {tickets_url}
    headers:
      Authorization: Bearer ${{OTEL_TEST_TOOL_TOKEN}}
    operations:
      lookup:
        path: /tickets/{{id}}
        description: Look a ticket up
        parameters: {{type: object, properties: {{id: {{type: string}}}}}}
pipeline:
  - prompt: Summarise ticket T-7.
    label: Writer
    connectors: [tickets]
    params: {{temperature: 0.2}}
verify:
  maker: Writer
  checker: Adversarial Verifier
  maxRounds: 2
"""

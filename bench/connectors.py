"""Connector costs: MCP start and call latency (stdio, streamable HTTP), HTTP and SQL calls,
and the redaction every event goes through. Prints JSON.

    .venv/bin/python bench/connectors.py [--calls 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loopkit import secrets, spec  # noqa: E402
from loopkit.connectors import build  # noqa: E402
from loopkit.engine.events import ToolCalled  # noqa: E402

MCP_SERVER = str(ROOT / "tests/engine/mcp_server.py")


def ms(values: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(values) * 1000, 2),
        "min_ms": round(min(values) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2),
    }


async def call_many(tool: Any, arguments: dict[str, Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        result = await tool.call(arguments)
        out.append(time.perf_counter() - t0)
        if result.is_error:
            raise RuntimeError(result.content)
    return out


async def mcp_stdio(n: int) -> dict[str, Any]:
    starts, calls = [], []
    for _ in range(3):
        conn = build("m", spec.McpConnector(type="mcp", command=sys.executable, args=[MCP_SERVER]))
        t0 = time.perf_counter()
        await conn.start()
        starts.append(time.perf_counter() - t0)
        add = {t.tool: t for t in conn.tools()}["add"]
        calls += await call_many(add, {"a": 1, "b": 2}, n)
        t0 = time.perf_counter()
        await conn.stop()
        stop = time.perf_counter() - t0
    return {
        "start (launch + list tools)": ms(starts),
        "call": ms(calls),
        "stop_ms": round(stop * 1000, 1),
    }


async def mcp_http(n: int) -> dict[str, Any]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, MCP_SERVER, "--http", str(port)], stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.strip() == "READY":
                break
        threading.Thread(target=proc.stderr.read, daemon=True).start()  # never let the pipe fill
        conn = build(
            "m", spec.McpConnector(type="mcp", transport="http", url=f"http://127.0.0.1:{port}/mcp")
        )
        t0 = time.perf_counter()
        await conn.start()
        start = time.perf_counter() - t0
        add = {t.tool: t for t in conn.tools()}["add"]
        calls = await call_many(add, {"a": 1, "b": 2}, n)
        await conn.stop()
        return {"start (session + list tools)_ms": round(start * 1000, 1), "call": ms(calls)}
    finally:
        proc.terminate()
        proc.wait(10)


class Ok(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        data = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


async def http(n: int) -> dict[str, Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    try:
        config = spec.HttpConnector.model_validate(
            {
                "type": "http",
                "baseUrl": f"http://127.0.0.1:{server.server_address[1]}",
                "operations": {
                    "get": {"path": "/items/{id}", "parameters": {"q": {"type": "string"}}}
                },
            }
        )
        conn = build("h", config)
        await conn.start()
        tool = conn.tools()[0]
        calls = await call_many(tool, {"id": "7", "q": "x"}, n)
        await conn.stop()
        return {"call (schema check + request)": ms(calls)}
    finally:
        server.shutdown()
        server.server_close()


async def sql(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "b.db"
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            db.executemany("INSERT INTO t (v) VALUES (?)", [(f"v{i}",) for i in range(10_000)])
        conn = build("s", spec.SqlConnector(type="sql", url=f"sqlite:///{path}", row_limit=200))
        await conn.start()
        query = {t.tool: t for t in conn.tools()}["query"]
        point = await call_many(query, {"sql": "SELECT * FROM t WHERE id = 5000"}, n)
        limit = await call_many(query, {"sql": "SELECT * FROM t"}, n)
        await conn.stop()
    return {"sqlite point query": ms(point), "sqlite 10k-row table cut at 200 rows": ms(limit)}


def redaction(n: int) -> dict[str, Any]:
    registry = secrets.Registry()
    for i in range(10):
        registry.add(f"SECRET_{i}", f"secret-value-{i:04d}-abcdefgh")
    event = ToolCalled(
        key="k", label="Step", name="tool", arguments={"q": "x" * 200}, result="y" * 500
    )
    t0 = time.perf_counter()
    for _ in range(n * 100):
        secrets.redact_event(event, registry)
    per = (time.perf_counter() - t0) / (n * 100)
    return {"redact one tool_called event, 10 secrets registered_us": round(per * 1e6, 2)}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=50)
    n = parser.parse_args().calls
    figures = {
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "calls_per_measure": n,
        "mcp_stdio": await mcp_stdio(n),
        "mcp_http": await mcp_http(n),
        "http": await http(n),
        "sql": await sql(n),
        "redaction": redaction(n),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    asyncio.run(main())

"""A real MCP server for the connector tests, written with the mcp SDK's MCPServer (ex-FastMCP).

Run over stdio: ``python mcp_server.py``; over streamable HTTP:
``python mcp_server.py --http PORT`` (it prints ``READY`` on stderr once it listens).
"""

from __future__ import annotations

import os
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("loopkit-test")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def lookup_order(order_id: str) -> dict[str, str]:
    """Look up an order by its id."""
    if order_id != "A-1":
        raise ValueError(f"no order {order_id}")
    return {"id": order_id, "status": "shipped"}


@server.tool()
def pid() -> int:
    """Return the server's process id."""
    return os.getpid()


@server.tool()
def api_key() -> str:
    """Return the API key the server was given (a careless server leaking a secret)."""
    return f"key={os.environ.get('API_KEY', '')}"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        import anyio
        import uvicorn

        async def serve() -> None:
            config = uvicorn.Config(
                server.streamable_http_app(),
                host="127.0.0.1",
                port=int(sys.argv[2]),
                log_level="warning",
            )
            http = uvicorn.Server(config)

            async def announce() -> None:
                while not http.started:
                    await anyio.sleep(0.01)
                print("READY", file=sys.stderr, flush=True)

            async with anyio.create_task_group() as tg:
                tg.start_soon(announce)
                await http.serve()

        anyio.run(serve)
    else:
        server.run()

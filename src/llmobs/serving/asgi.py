"""Run a Starlette app on uvicorn inside the caller's event loop (exporter, node agent, demo fleet).

Lives in serving, below the runtime and the agent, so both can start servers without importing each other.
"""

from __future__ import annotations

import asyncio

import uvicorn
from starlette.applications import Starlette


async def serve_asgi(app: Starlette, host: str, port: int) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    """Start uvicorn inside the running loop and return once it listens (port 0 picks a free one)."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off",
                                           access_log=False))
    task = asyncio.create_task(_serve(server, host, port))
    while not server.started:
        if task.done():
            task.result()  # re-raise the bind error
            raise RuntimeError(f"server on {host}:{port} exited before listening")
        await asyncio.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return server, task, bound


async def _serve(server: uvicorn.Server, host: str, port: int) -> None:
    """`server.serve()`, with uvicorn's `sys.exit` on a failed bind turned into an OSError.

    Why: uvicorn exits the process when it cannot listen (a port in use, an address not this machine's).
    Inside a library user's event loop that SystemExit escapes the loop and ends their program, past any
    `except Exception`; as an OSError it reaches `serve_asgi`'s caller (Exporter.start) like any bind error."""
    try:
        await server.serve()
    except SystemExit as exc:
        raise OSError(f"cannot listen on {host}:{port} (the port is in use, or the address is not this "
                      f"machine's; uvicorn exited with {exc.code})") from None

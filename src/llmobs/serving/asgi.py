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
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # re-raise the bind error
            raise RuntimeError(f"server on {host}:{port} exited before listening")
        await asyncio.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return server, task, bound

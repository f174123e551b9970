"""A loopback HTTP server for scrape tests: the scraper under test talks to a real socket, exactly as it
talks to vLLM, instead of through an injected in-memory transport (the scraper has one HTTP path).

`GET /<name>/metrics` answers `pages[name](n)`, where n counts that name's requests from 1 (so counters
can grow between scrapes); an answer is a page's text or a :class:`Reply` (status, content type, delay).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

from llmobs.sources.targets import Target

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


@dataclass(frozen=True)
class Reply:
    body: str | bytes = ""
    status: int = 200
    content_type: str | None = TEXT
    delay: float = 0.0  # seconds before the answer (a hanging target: longer than the scrape timeout)


Page = Callable[[int], "str | Reply"]


class PageServer:
    """Serves `pages` on 127.0.0.1 with keep-alive; use as `async with PageServer(pages) as server`."""

    def __init__(self, pages: dict[str, Page]) -> None:
        self.pages = pages  # may be replaced or edited while serving
        self.requests: dict[str, int] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def __aenter__(self) -> PageServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close every connection and wait until its socket is closed. A transport closed with a page still
        in its write buffer stays open until the buffer drains, and Python 3.11's `Server.wait_closed` does
        not wait for connections: without the abort and the wait here, a test that ends mid-answer (a big
        page) left the accepted socket to the garbage collector after its event loop was closed (a
        ResourceWarning: unclosed socket/transport)."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # drop what is still buffered: the scraper is gone
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}/metrics"

    def target(self, name: str, labels: dict[str, str] | None = None) -> Target:
        return Target(self.url(name), name, labels or {})

    def targets(self, names: list[str] | None = None) -> list[Target]:
        return [self.target(n) for n in (self.pages if names is None else names)]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                name = path.strip("/").removesuffix("/metrics").strip("/")
                self.requests[name] = n = self.requests.get(name, 0) + 1
                page = self.pages.get(name)
                reply = Reply("not found", 404) if page is None else page(n)
                if isinstance(reply, str):
                    reply = Reply(reply)
                if reply.delay:
                    await asyncio.sleep(reply.delay)
                body = reply.body.encode() if isinstance(reply.body, str) else reply.body
                ctype = f"content-type: {reply.content_type}\r\n" if reply.content_type else ""
                writer.write(f"HTTP/1.1 {reply.status} {HTTPStatus(reply.status).phrase}\r\n{ctype}"
                             f"content-length: {len(body)}\r\n\r\n".encode() + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()  # the socket is closed before the test (and its loop) ends
            self._writers.discard(writer)
            self._tasks.discard(task)


class FixturePageServer:
    """The saved real vLLM 0.32.0 page on loopback from a thread, for code that is not on an event loop (a
    subprocess llmobs, a fresh venv): `with FixturePageServer() as url:` gives the page's /metrics URL."""

    def __init__(self) -> None:
        import http.server
        import threading

        from tests.conftest import FIXTURE_PAGE

        body = FIXTURE_PAGE.read_bytes()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", TEXT)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()  # its listening socket too (warnings are errors)

    def __enter__(self) -> str:
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.close()

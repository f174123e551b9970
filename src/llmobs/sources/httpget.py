"""A small HTTP/1.1 GET client for scraping: keep-alive pools per host, one asyncio Protocol per connection.

Why not httpx here: at 1,000 targets httpx/httpcore cost about 60 % of the exporter's CPU
(benchmarks/fleet.py profile): anyio stream wrappers, typed-attribute lookups, a failed ``import sniffio``
per request, and httpcore's pool bookkeeping. A scrape is one GET of a few tens of KB, so this client
does only that: write the request, collect the response in ``data_received`` (Content-Length, chunked or
read-until-close framing, gzip/deflate decoding) and wake the caller once. Everything else the scraper
needs is kept: per-target timeout, response-size cap enforced while reading (raw and decoded), keep-alive
reuse, one retry on a fresh connection when a reused one is closed under us, https with certificate
verification, credentials in the URL as basic auth. No redirects, no proxies: scrape targets are connected
directly (as Prometheus does by default); this is the scraper's only HTTP path.

The deadline is checked by a loop timer that runs after the I/O callbacks of the same loop iteration, so
a response already in the socket when the loop gets to it (e.g. after the loop was busy) is not counted as
a timeout: a timeout means the answer really was not there in time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import ssl
import time
import zlib
from collections.abc import Callable
from typing import cast
from urllib.parse import unquote, urlsplit

__all__ = ["ConnectError", "GetClient", "HttpResponse", "ProtocolError", "ResponseTimeout", "ResponseTooLarge"]

_MAX_HEAD = 64 * 1024  # status line + headers


class ConnectError(Exception):
    """Could not connect, or the connection broke before a complete response."""


class ProtocolError(ConnectError):
    """The server's answer is not HTTP/1.x we can read."""


class _ClosedBeforeResponse(ConnectError):
    """A connection closed before any byte of the response (the keep-alive race): safe to retry."""


class ResponseTooLarge(Exception):
    pass


class ResponseTimeout(Exception):
    pass


# `accept(status, headers)`: whether to read the body of a response with this head
Accept = Callable[[int, dict[str, str]], bool]


class HttpResponse:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes | None) -> None:
        self.status = status
        self.headers = headers  # lower-cased names; repeated headers joined with ", "
        self.body = body  # None when the caller's `accept` refused the head (the body was not read)

    @property
    def encoding(self) -> str:
        """The charset of the content type if Python knows it, else utf-8."""
        for param in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset":
                name = value.strip().strip('"')
                try:
                    import codecs

                    return codecs.lookup(name).name
                except LookupError:
                    break
        return "utf-8"


class _Conn(asyncio.Protocol):
    """One connection; reads one response at a time into a buffer and resolves `waiter` when complete."""

    def __init__(self, key: tuple[str, str, int]) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.used = 0
        self.idle_since = 0.0
        self._reset(None, 0, None)

    def _reset(self, waiter: asyncio.Future[HttpResponse] | None, max_bytes: int, accept: Accept | None) -> None:
        self.waiter = waiter
        self.max_bytes = max_bytes
        self.accept = accept
        self.buf = bytearray()
        self.scanned = 0
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body_start = -1
        self.length: int | None = None
        self.chunked = False
        self.chunk_pos = 0
        self.chunks: list[bytes] = []
        self.chunks_size = 0
        self.keep_alive = True
        self.received = False

    # ---------------------------------------------------------------- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # create_connection's are stream transports

    def data_received(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            self.keep_alive = False  # bytes nobody asked for: this connection is out of step
            self.close()
            return
        self.received = True
        self.buf += data
        try:
            self._progress()
        except Exception as e:  # any framing error fails this request, never the loop
            self.keep_alive = False
            self._finish(e if isinstance(e, ConnectError | ResponseTooLarge) else ProtocolError(str(e)))

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.body_start >= 0 and self.length is None and not self.chunked:
            try:  # read-until-close framing: this is the end
                self._complete(bytes(memoryview(self.buf)[self.body_start:]))
            except (ProtocolError, ResponseTooLarge) as e:
                self._finish(e)
            return
        if not self.received:
            self._finish(_ClosedBeforeResponse("connection closed before the response"))
        else:
            self._finish(ConnectError("connection closed in the middle of the response"))

    # ---------------------------------------------------------------- framing
    def _progress(self) -> None:
        buf = self.buf
        if self.body_start < 0:
            end = buf.find(b"\r\n\r\n", max(0, self.scanned - 3))
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    raise ProtocolError("response head too large")
                self.scanned = len(buf)
                return
            self._read_head(bytes(buf[:end]))
            self.body_start = end + 4
            if self.status < 200:  # 1xx interim response: drop it, read the real one
                del buf[: self.body_start]
                self.body_start, self.scanned = -1, 0
                self._progress()
                return
            if self.accept is not None and not self.accept(self.status, self.headers):
                self.keep_alive = False
                self._finish(HttpResponse(self.status, self.headers, None))
                self.close()
                return
            if self.status in (204, 304):
                self.length = 0
            if self.length is not None and self.length > self.max_bytes:
                raise ResponseTooLarge(f"content-length {self.length} > cap {self.max_bytes}")
        start = self.body_start
        if self.chunked:
            self._read_chunks()
        elif self.length is not None:
            if len(buf) - start >= self.length:
                if len(buf) - start > self.length:
                    self.keep_alive = False  # more than one response: pipelining we did not ask for
                self._complete(bytes(memoryview(buf)[start:start + self.length]))  # one copy
        elif len(buf) - start > self.max_bytes:
            raise ResponseTooLarge(f"body exceeds cap {self.max_bytes} bytes")

    def _read_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        self.status = int(parts[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                raise ProtocolError(f"bad header line: {line[:80]!r}")
            key = name.strip().lower().decode("latin-1")
            text = value.strip().decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        self.headers = headers
        connection = headers.get("connection", "").lower()
        if "close" in connection or (parts[0] == b"HTTP/1.0" and "keep-alive" not in connection):
            self.keep_alive = False
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self.chunked = True
        elif "content-length" in headers:
            raw = headers["content-length"].split(",")[0].strip()
            if not raw.isdigit():
                raise ProtocolError(f"bad content-length {raw!r}")
            self.length = int(raw)
        else:
            self.keep_alive = False  # the body ends when the server closes

    def _read_chunks(self) -> None:
        buf = self.buf
        pos = self.chunk_pos or self.body_start
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                if len(buf) - pos > 1024:
                    raise ProtocolError("bad chunk size line")
                break
            size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from None
            if size == 0:
                # last chunk, then optional trailers, then an empty line
                if buf.startswith(b"\r\n", eol + 2):
                    self._complete(b"".join(self.chunks))
                    return
                end = buf.find(b"\r\n\r\n", eol + 2)
                if end >= 0:
                    self._complete(b"".join(self.chunks))
                    return
                break
            if self.chunks_size + size > self.max_bytes:
                raise ResponseTooLarge(f"body exceeds cap {self.max_bytes} bytes")
            if len(buf) < eol + 2 + size + 2:
                break
            self.chunks.append(bytes(buf[eol + 2:eol + 2 + size]))
            self.chunks_size += size
            pos = eol + 2 + size + 2
        # drop what is consumed so the buffer holds at most one partial chunk
        if pos > self.body_start:
            del buf[self.body_start:pos]
        self.chunk_pos = self.body_start

    # ---------------------------------------------------------------- completion
    def _complete(self, raw: bytes) -> None:
        encoding = self.headers.get("content-encoding", "").strip().lower()
        body = _decode(raw, encoding, self.max_bytes) if encoding not in ("", "identity") else raw
        self._finish(HttpResponse(self.status, self.headers, body))

    def _finish(self, outcome: HttpResponse | Exception) -> None:
        """Resolve the waiter with the response, or fail it with the error."""
        waiter = self.waiter
        self.waiter = None
        self.buf = bytearray()
        self.chunks = []
        if waiter is not None and not waiter.done():
            if isinstance(outcome, Exception):
                waiter.set_exception(outcome)
            else:
                waiter.set_result(outcome)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def reusable(self) -> bool:
        return self.keep_alive and not self.closed and self.transport is not None and not self.transport.is_closing()


def _decode(raw: bytes, encoding: str, max_bytes: int) -> bytes:
    if encoding in ("gzip", "x-gzip"):
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        d = zlib.decompressobj(zlib.MAX_WBITS if raw[:1] == b"\x78" else -zlib.MAX_WBITS)
    else:
        raise ProtocolError(f"unsupported content-encoding {encoding!r}")
    try:
        out = d.decompress(raw, max_bytes + 1)
    except zlib.error as e:
        raise ProtocolError(f"bad {encoding} body: {e}") from None
    if len(out) > max_bytes:
        raise ResponseTooLarge(f"decoded body exceeds cap {max_bytes} bytes")
    return out


def _ssl_context() -> ssl.SSLContext:
    """Verify certificates like httpx does: $SSL_CERT_FILE / $SSL_CERT_DIR if set, else certifi, else system."""
    cafile, capath = os.environ.get("SSL_CERT_FILE") or None, os.environ.get("SSL_CERT_DIR") or None
    if cafile is None and capath is None:
        with contextlib.suppress(ImportError):
            import certifi

            cafile = certifi.where()
    return ssl.create_default_context(cafile=cafile, capath=capath)


class GetClient:
    """GETs URLs over pooled keep-alive connections (per scheme, host and port)."""

    def __init__(self, *, headers: dict[str, str], max_idle_per_host: int = 128, idle_seconds: float = 60.0) -> None:
        self._headers = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self._busy: set[_Conn] = set()
        self._max_idle = max_idle_per_host
        self._idle_seconds = idle_seconds
        self._ssl: ssl.SSLContext | None = None
        self._split: dict[tuple[str, str | None], tuple[tuple[str, str, int], bytes]] = {}

    def _prepare(self, url: str, authorization: str | None = None) -> tuple[tuple[str, str, int], bytes]:
        cached = self._split.get((url, authorization))
        if cached is not None:
            return cached
        try:  # a port of 99999 or "abc", an unclosed IPv6 bracket: this target is down, not the whole cycle
            parts = urlsplit(url)
            explicit_port = parts.port
        except ValueError as exc:
            raise ConnectError(f"invalid URL {url!r}: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ConnectError(f"unsupported URL {url!r}")
        port = explicit_port or (443 if scheme == "https" else 80)
        host = parts.hostname
        default = (scheme == "http" and port == 80) or (scheme == "https" and port == 443)
        host_header = (f"[{host}]" if ":" in host else host) + ("" if default else f":{port}")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        auth = ""
        if parts.username is not None:  # credentials in the URL: HTTP basic auth, as httpx sends them
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            auth = f"Authorization: Basic {base64.b64encode(pair).decode('ascii')}\r\n"
        if authorization:  # given by the target (basic auth or bearer token from a file): wins over the URL
            auth = f"Authorization: {authorization}\r\n"
        request = (f"GET {target} HTTP/1.1\r\nHost: {host_header}\r\n{auth}{self._headers}\r\n").encode("latin-1")
        prepared = ((scheme, host, port), request)
        if len(self._split) > 100_000:
            self._split.clear()
        self._split[(url, authorization)] = prepared
        return prepared

    async def get(self, url: str, *, timeout: float, max_bytes: int, accept: Accept | None = None,
                  authorization: str | None = None) -> HttpResponse:
        """GET `url`; the whole exchange must finish within `timeout` seconds (ResponseTimeout otherwise).

        `accept(status, headers)` may refuse a response from its head: the body is then not read and the
        response comes back with `body=None`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        key, request = self._prepare(url, authorization)
        conn = self._take_idle(key)
        if conn is not None:
            try:
                return await self._exchange(loop, conn, request, deadline, max_bytes, accept)
            except _ClosedBeforeResponse:
                pass  # the server closed the idle connection as we reused it: once more on a fresh one
        conn = await self._connect(loop, key, deadline)
        return await self._exchange(loop, conn, request, deadline, max_bytes, accept)

    def _take_idle(self, key: tuple[str, str, int]) -> _Conn | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.reusable():
                return conn
            conn.close()
        return None

    async def _connect(self, loop: asyncio.AbstractEventLoop, key: tuple[str, str, int], deadline: float) -> _Conn:
        scheme, host, port = key
        ssl_ctx = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = _ssl_context()
            ssl_ctx = self._ssl
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise ResponseTimeout("no time left to connect")
        try:
            async with asyncio.timeout(remaining):
                _, conn = await loop.create_connection(lambda: _Conn(key), host, port, ssl=ssl_ctx,
                                                       server_hostname=host if ssl_ctx else None)
        except TimeoutError:
            raise ResponseTimeout("connect timed out") from None
        except (OSError, ssl.SSLError) as e:
            raise ConnectError(f"{type(e).__name__}: {e}") from None
        return conn

    async def _exchange(self, loop: asyncio.AbstractEventLoop, conn: _Conn, request: bytes, deadline: float,
                        max_bytes: int, accept: Accept | None) -> HttpResponse:
        waiter: asyncio.Future[HttpResponse] = loop.create_future()
        conn._reset(waiter, max_bytes, accept)
        conn.used += 1
        self._busy.add(conn)
        timer = loop.call_at(deadline, _expire, waiter)
        try:
            assert conn.transport is not None
            conn.transport.write(request)
            response = await waiter
        except BaseException:
            conn.keep_alive = False
            raise
        finally:
            timer.cancel()
            self._busy.discard(conn)
            conn.waiter = None
            if not conn.reusable():
                conn.close()
        self._release(conn)
        return response

    def _release(self, conn: _Conn) -> None:
        if not conn.reusable():
            return
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) >= self._max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    def prune(self, keep: set[tuple[str, str, int]] | None = None) -> None:
        """Close idle connections that are broken, idle too long, or (with `keep`) to hosts no target uses."""
        now = time.monotonic()
        for key in list(self._idle):
            conns = self._idle[key]
            if keep is not None and key not in keep:
                live: list[_Conn] = []
            else:
                live = [c for c in conns if c.reusable() and now - c.idle_since < self._idle_seconds]
            for c in conns:
                if c not in live:
                    c.close()
            if live:
                self._idle[key] = live
            else:
                del self._idle[key]

    def key_of(self, url: str) -> tuple[str, str, int] | None:
        try:
            return self._prepare(url)[0]
        except ConnectError:
            return None

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for c in conns:
                c.close()
        self._idle.clear()
        for c in list(self._busy):
            c.close()
        self._busy.clear()
        await asyncio.sleep(0)


def _expire(waiter: asyncio.Future[HttpResponse]) -> None:
    if not waiter.done():
        waiter.set_exception(ResponseTimeout("deadline passed"))

"""Fetches and parses `/metrics` pages from many targets concurrently, classifying every failure.

Connections are pooled and kept alive per host (`GetClient`, a small HTTP/1.1 client: httpx cost most of
the CPU at 1,000 targets); a semaphore bounds how many scrapes run at once; each scrape has its own
timeout over the network exchange and a response-size cap enforced while reading, so a target that hangs
or answers a huge page costs at most the cap. Pages above `_THREAD_PARSE_BYTES` are parsed in a worker
thread so that one huge page cannot stall the event loop (and with it the other targets' exchanges). A failure never
raises out of `scrape()`: it comes back as a `ScrapeOutcome` with an error kind, which the exporter
counts (`llmobs_scrape_errors_total{kind}`).
"""

from __future__ import annotations

import asyncio
import math
import time
import urllib.request
import zlib
from dataclasses import dataclass

import httpx

from llmobs.sources import httpget
from llmobs.sources.scrape_auth import CredentialsError
from llmobs.sources.targets import Target
from llmobs.sources.textformat import ParsedPage, TextParser

ERROR_KINDS = ("timeout", "connect", "http_status", "content_type", "too_large", "empty", "parse", "error")
ACCEPT = "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1"
_TEXT_TYPES = ("text/plain", "application/openmetrics-text")
_CONNECTIONS_PER_POOL = 16
# Pages larger than this are parsed in a worker thread (a vLLM page is 30-60 KB; a 100k-line junk page takes
# a good fraction of a second to parse cold, during which the loop would serve no other target).
_THREAD_PARSE_BYTES = 256 * 1024


def _proxies_configured() -> bool:
    """httpx honours HTTP(S)_PROXY / ALL_PROXY; the fast client does not, so the scraper then uses httpx."""
    return bool(urllib.request.getproxies_environment())


@dataclass(slots=True)
class ScrapeOutcome:
    target: Target
    started: float
    duration: float
    page: ParsedPage | None
    error_kind: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.page is not None and not self.error_kind


class ScrapeError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Scraper:
    """Scrapes targets over pooled keep-alive connections; keeps a warm parser per target (see TextParser).

    Uses `httpget.GetClient` unless a `transport` is given (tests' `httpx.MockTransport`) or a proxy is
    configured in the environment, in which case it goes through httpx as before.
    """

    def __init__(
        self,
        *,
        timeout_seconds: float = 3.0,
        max_concurrency: int = 64,
        max_response_bytes: int = 4 * 1024 * 1024,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.timeout_seconds = timeout_seconds
        self.max_response_bytes = max_response_bytes
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._parsers: dict[str, TextParser] = {}
        # One big page parsed at a time: each holds tens of MB of transient objects while it is parsed, and
        # the parses share one GIL anyway, so running them side by side only raises the memory peak.
        self._big_parse = asyncio.Semaphore(1)
        self._fast: httpget.GetClient | None = None
        if transport is None and not _proxies_configured():
            self._fast = httpget.GetClient(headers={"Accept": ACCEPT, "Accept-Encoding": "gzip",
                                                    "User-Agent": "llmobs"}, max_idle_per_host=max_concurrency)
            self._clients: list[httpx.AsyncClient] = []
            return
        # Several small pools instead of one big one: httpcore assigns requests to connections by scanning
        # every queued request against every pooled connection on each request event, so one pool of 128
        # connections cost ~10 ms of CPU per scrape at 1,000 targets (benchmarks/fleet.py profile). A target
        # always maps to the same pool (crc32 of its URL), so keep-alive reuse is unchanged; the semaphore
        # still bounds the total in flight, and each pool may use all of it if targets hash unevenly.
        n_pools = max(1, math.ceil(max_concurrency / _CONNECTIONS_PER_POOL))
        keepalive = max(1, math.ceil(max_concurrency / n_pools))
        self._clients = [
            httpx.AsyncClient(
                transport=transport,
                timeout=httpx.Timeout(timeout_seconds),
                limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=keepalive),
                headers={"Accept": ACCEPT, "User-Agent": "llmobs"},
                follow_redirects=False,
            )
            for _ in range(n_pools)
        ]

    async def aclose(self) -> None:
        if self._fast is not None:
            await self._fast.aclose()
        for client in self._clients:
            await client.aclose()

    def forget(self, keep_urls: set[str]) -> None:
        """Drop parser caches of targets that are gone (bounded memory as targets churn)."""
        for url in list(self._parsers):
            if url not in keep_urls:
                del self._parsers[url]
        if self._fast is not None:
            self._fast.prune({k for k in map(self._fast.key_of, keep_urls) if k is not None})

    async def scrape(self, target: Target) -> ScrapeOutcome:
        async with self._semaphore:
            started = time.time()
            t0 = time.perf_counter()
            try:
                authorization = target.auth_header()
                if self._fast is not None:
                    text = await self._fetch_fast(target.url, authorization)
                else:
                    text = await asyncio.wait_for(self._fetch(target.url, authorization), self.timeout_seconds)
                parser = self._parser(target.url)
                if len(text) > _THREAD_PARSE_BYTES:
                    async with self._big_parse:
                        page = await asyncio.to_thread(parser.parse, text)
                else:
                    page = parser.parse(text)
                if not page.samples:
                    kind = "empty" if not text.strip() else "parse"
                    raise ScrapeError(kind, f"no samples in {len(text)} bytes" +
                                      (f" ({dict(page.skipped)} lines skipped)" if page.skipped else ""))
                return ScrapeOutcome(target, started, time.perf_counter() - t0, page)
            except ScrapeError as e:
                return ScrapeOutcome(target, started, time.perf_counter() - t0, None, e.kind, str(e))
            except CredentialsError as e:  # names the unreadable file, never a secret
                return ScrapeOutcome(target, started, time.perf_counter() - t0, None, "error", str(e))
            except (TimeoutError, httpx.TimeoutException, httpget.ResponseTimeout):
                return ScrapeOutcome(target, started, time.perf_counter() - t0, None, "timeout",
                                     f"no complete answer within {self.timeout_seconds:g}s")
            except (httpx.TransportError, httpget.ConnectError) as e:
                return ScrapeOutcome(target, started, time.perf_counter() - t0, None, "connect",
                                     f"{type(e).__name__}: {e}"[:300])
            except Exception as e:  # a bug or an exotic failure must not stop the other scrapes
                return ScrapeOutcome(target, started, time.perf_counter() - t0, None, "error",
                                     f"{type(e).__name__}: {e}"[:300])

    def _parser(self, url: str) -> TextParser:
        parser = self._parsers.get(url)
        if parser is None:
            parser = self._parsers[url] = TextParser()
        return parser

    async def _fetch_fast(self, url: str, authorization: str | None = None) -> str:
        assert self._fast is not None
        try:
            response = await self._fast.get(url, timeout=self.timeout_seconds, max_bytes=self.max_response_bytes,
                                            accept=_acceptable, authorization=authorization)
        except httpget.ResponseTooLarge as e:
            raise ScrapeError("too_large", str(e)) from None
        if response.status != 200:
            raise ScrapeError("http_status", f"HTTP {response.status}")
        content_type = _content_type(response.headers)
        if content_type and content_type not in _TEXT_TYPES:
            raise ScrapeError("content_type", f"unexpected content type {content_type!r}")
        body = response.body or b""
        if not body.strip():
            raise ScrapeError("empty", "empty body")
        return body.decode(response.encoding, errors="replace")

    async def _fetch(self, url: str, authorization: str | None = None) -> str:
        try:
            return await self._fetch_once(url, authorization)
        except httpx.RemoteProtocolError:
            # The server closed a keep-alive connection just as it was reused: uvicorn (so vLLM) closes idle
            # connections after 5 s, the default scrape interval, so this race is routine (seen in
            # benchmarks/soak.py). Retry once on a fresh connection, within the same timeout, as Go's
            # net/http (so Prometheus) does for idempotent requests.
            return await self._fetch_once(url, authorization)

    async def _fetch_once(self, url: str, authorization: str | None = None) -> str:
        client = self._clients[zlib.crc32(url.encode()) % len(self._clients)]
        headers = {"Authorization": authorization} if authorization else None
        async with client.stream("GET", url, headers=headers) as response:
            if response.status_code != 200:
                raise ScrapeError("http_status", f"HTTP {response.status_code}")
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type and content_type not in _TEXT_TYPES:
                raise ScrapeError("content_type", f"unexpected content type {content_type!r}")
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.max_response_bytes:
                raise ScrapeError("too_large", f"content-length {declared} > cap {self.max_response_bytes}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_response_bytes:
                    raise ScrapeError("too_large", f"body exceeds cap {self.max_response_bytes} bytes")
                chunks.append(chunk)
        body = b"".join(chunks)
        if not body.strip():
            raise ScrapeError("empty", "empty body")
        return body.decode(response.encoding or "utf-8", errors="replace")


def _content_type(headers: dict[str, str]) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def _acceptable(status: int, headers: dict[str, str]) -> bool:
    """Read the body only of a response the scraper can use (the others are classified from the head)."""
    if status != 200:
        return False
    content_type = _content_type(headers)
    return not content_type or content_type in _TEXT_TYPES

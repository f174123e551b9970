"""Fetches and parses `/metrics` pages from many targets concurrently, classifying every failure.

One pooled `httpx.AsyncClient` serves all targets (connection reuse); a semaphore bounds how many
scrapes run at once; each scrape has its own timeout and a response-size cap enforced while
streaming, so a target that hangs or answers a huge page costs at most the cap. A failure never
raises out of `scrape()`: it comes back as a `ScrapeOutcome` with an error kind, which the exporter
counts (`llmobs_scrape_errors_total{kind}`).
"""

from __future__ import annotations

import asyncio
import math
import time
import zlib
from dataclasses import dataclass

import httpx

from llmobs.sources.targets import Target
from llmobs.sources.textformat import ParsedPage, TextParser

ERROR_KINDS = ("timeout", "connect", "http_status", "content_type", "too_large", "empty", "parse", "error")
ACCEPT = "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1"
_TEXT_TYPES = ("text/plain", "application/openmetrics-text")
_CONNECTIONS_PER_POOL = 16


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
    """Scrapes targets with one connection pool; keeps a warm parser per target (see TextParser)."""

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
        for client in self._clients:
            await client.aclose()

    def forget(self, keep_urls: set[str]) -> None:
        """Drop parser caches of targets that are gone (bounded memory as targets churn)."""
        for url in list(self._parsers):
            if url not in keep_urls:
                del self._parsers[url]

    async def scrape(self, target: Target) -> ScrapeOutcome:
        async with self._semaphore:
            started = time.time()
            t0 = time.perf_counter()
            try:
                text = await asyncio.wait_for(self._fetch(target.url), self.timeout_seconds)
                page = self._parser(target.url).parse(text)
                if not page.samples:
                    kind = "empty" if not text.strip() else "parse"
                    raise ScrapeError(kind, f"no samples in {len(text)} bytes" +
                                      (f" ({dict(page.skipped)} lines skipped)" if page.skipped else ""))
                return ScrapeOutcome(target, started, time.perf_counter() - t0, page)
            except ScrapeError as e:
                return ScrapeOutcome(target, started, time.perf_counter() - t0, None, e.kind, str(e))
            except (TimeoutError, httpx.TimeoutException):
                return ScrapeOutcome(target, started, time.perf_counter() - t0, None, "timeout",
                                     f"no complete answer within {self.timeout_seconds:g}s")
            except httpx.TransportError as e:
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

    async def _fetch(self, url: str) -> str:
        try:
            return await self._fetch_once(url)
        except httpx.RemoteProtocolError:
            # The server closed a keep-alive connection just as it was reused: uvicorn (so vLLM) closes idle
            # connections after 5 s, the default scrape interval, so this race is routine (seen in
            # benchmarks/soak.py). Retry once on a fresh connection, within the same timeout, as Go's
            # net/http (so Prometheus) does for idempotent requests.
            return await self._fetch_once(url)

    async def _fetch_once(self, url: str) -> str:
        client = self._clients[zlib.crc32(url.encode()) % len(self._clients)]
        async with client.stream("GET", url) as response:
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

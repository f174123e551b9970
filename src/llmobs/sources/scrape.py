"""Fetches and parses `/metrics` pages from many targets concurrently, classifying every failure.

One HTTP path: `httpget.GetClient`, a small HTTP/1.1 GET client with connections pooled and kept alive per
host (httpx cost most of the exporter's CPU at 1,000 targets, see httpget). A semaphore bounds how many
scrapes run at once; each scrape has its own timeout over the network exchange and a response-size cap
enforced while reading, so a target that hangs or answers a huge page costs at most the cap. Targets are
connected directly: proxy variables (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`) are not honoured, as
Prometheus does not honour them unless told to (scrape targets are pods, reached inside the cluster).

The page's Content-Type decides how it is read: `application/openmetrics-text` as OpenMetrics (a page
without its closing `# EOF` is truncated and not used, timestamps are seconds, counters may not be
negative), anything else (`text/plain`, or none) as the Prometheus text format. Pages above
`_THREAD_PARSE_BYTES` are parsed in a worker thread so that one huge page cannot stall the event loop
(and with it the other targets' exchanges). A failure never raises out of `scrape()`: it comes back as a
`ScrapeOutcome` with an error kind, which the exporter counts (`llmobs_scrape_errors_total{kind}`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.request
from dataclasses import dataclass

from llmobs.sources import httpget
from llmobs.sources.scrape_auth import CredentialsError
from llmobs.sources.targets import Target
from llmobs.sources.textformat import ParsedPage, TextParser

log = logging.getLogger("llmobs.scrape")

ERROR_KINDS = ("timeout", "connect", "http_status", "content_type", "too_large", "empty", "parse", "model_limit",
               "error")
ACCEPT = "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1"
_OPENMETRICS = "application/openmetrics-text"
_TEXT_TYPES = ("text/plain", _OPENMETRICS)
# Pages larger than this are parsed in a worker thread (a vLLM page is 30-60 KB; a 100k-line junk page takes
# a good fraction of a second to parse cold, during which the loop would serve no other target).
_THREAD_PARSE_BYTES = 256 * 1024


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
    """Scrapes targets over pooled keep-alive connections; keeps a warm parser per target (see TextParser)."""

    def __init__(
        self,
        *,
        timeout_seconds: float = 3.0,
        max_concurrency: int = 64,
        max_response_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self.timeout_seconds = timeout_seconds
        self.max_response_bytes = max_response_bytes
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._parsers: dict[str, TextParser] = {}
        # One big page parsed at a time: each holds tens of MB of transient objects while it is parsed, and
        # the parses share one GIL anyway, so running them side by side only raises the memory peak.
        self._big_parse = asyncio.Semaphore(1)
        self._client = httpget.GetClient(headers={"Accept": ACCEPT, "Accept-Encoding": "gzip", "User-Agent": "llmobs"},
                                         max_idle_per_host=max_concurrency)
        proxies = urllib.request.getproxies_environment()
        if proxies:
            log.info("proxy settings %s are not used for scrapes: targets are connected directly", sorted(proxies))

    async def aclose(self) -> None:
        await self._client.aclose()

    def forget(self, keep_urls: set[str]) -> None:
        """Drop parser caches of targets that are gone (bounded memory as targets churn)."""
        for url in list(self._parsers):
            if url not in keep_urls:
                del self._parsers[url]
        self._client.prune({k for k in map(self._client.key_of, keep_urls) if k is not None})

    async def scrape(self, target: Target) -> ScrapeOutcome:
        async with self._semaphore:
            started = time.time()
            t0 = time.perf_counter()
            try:
                text, openmetrics = await self._fetch(target.url, target.auth_header())
                parser = self._parser(target.url)
                if len(text) > _THREAD_PARSE_BYTES:
                    async with self._big_parse:
                        page = await asyncio.to_thread(parser.parse, text, openmetrics)
                else:
                    page = parser.parse(text, openmetrics)
                if not page.samples:
                    kind = "empty" if not text.strip() else "parse"
                    raise ScrapeError(kind, f"no samples in {len(text)} bytes" +
                                      (f" ({dict(page.skipped)} lines skipped)" if page.skipped else ""))
                return ScrapeOutcome(target, started, time.perf_counter() - t0, page)
            except ScrapeError as e:
                return ScrapeOutcome(target, started, time.perf_counter() - t0, None, e.kind, str(e))
            except CredentialsError as e:  # names the unreadable file, never a secret
                return ScrapeOutcome(target, started, time.perf_counter() - t0, None, "error", str(e))
            except (TimeoutError, httpget.ResponseTimeout):
                return ScrapeOutcome(target, started, time.perf_counter() - t0, None, "timeout",
                                     f"no complete answer within {self.timeout_seconds:g}s")
            except httpget.ConnectError as e:
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

    async def _fetch(self, url: str, authorization: str | None = None) -> tuple[str, bool]:
        """The page's text, and whether it is OpenMetrics (by its Content-Type); ScrapeError if unusable."""
        try:
            response = await self._client.get(url, timeout=self.timeout_seconds, max_bytes=self.max_response_bytes,
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
        return body.decode(response.encoding, errors="replace"), content_type == _OPENMETRICS


def _content_type(headers: dict[str, str]) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def _acceptable(status: int, headers: dict[str, str]) -> bool:
    """Read the body only of a response the scraper can use (the others are classified from the head)."""
    if status != 200:
        return False
    content_type = _content_type(headers)
    return not content_type or content_type in _TEXT_TYPES

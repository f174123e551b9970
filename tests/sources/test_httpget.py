"""The scraper's own HTTP/1.1 client (llmobs.sources.httpget) against raw loopback servers: every framing a
/metrics answer can use, the size cap, broken answers, keep-alive reuse, and timeouts that mean the
answer really was late (not that the event loop was busy)."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Awaitable, Callable

import pytest

from llmobs.sources.scrape import Scraper
from llmobs.sources.targets import Target
from llmobs.sources.textformat import parse_text

PAGE = b'vllm:num_requests_running{model_name="m"} 1\nvllm:num_requests_waiting{model_name="m"} 2\n'
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/metrics"


def answering(*responses: bytes | list[bytes], keep_open: bool = True) -> tuple[Handler, list[int]]:
    """A handler that answers each request on a connection with the next response (a list: written in
    pieces with a pause between them), counting connections."""
    connections = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[0] += 1
        try:
            for response in responses:
                await reader.readuntil(b"\r\n\r\n")
                for piece in response if isinstance(response, list) else [response]:
                    writer.write(piece)
                    await writer.drain()
                    if isinstance(response, list):
                        await asyncio.sleep(0.01)
            if keep_open:
                await reader.read()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return handle, connections


def ok(body: bytes, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in ("content-type: text/plain; version=0.0.4", *headers))
    return f"HTTP/1.1 200 OK\r\n{head}content-length: {len(body)}\r\n\r\n".encode() + body


async def scrape_once(handler: Handler, **kwargs) -> tuple:  # type: ignore[no-untyped-def]
    server, url = await serve(handler)
    scraper = Scraper(timeout_seconds=kwargs.pop("timeout", 2.0), **kwargs)
    try:
        return await scraper.scrape(Target(url, "t")), scraper
    finally:
        await scraper.aclose()
        server.close()


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
async def test_proxy_variables_do_not_divert_scrapes(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    """One HTTP path: targets are connected directly whatever the environment says (as Prometheus does
    unless told otherwise); a proxy variable set for other tools must not send scrapes elsewhere."""
    monkeypatch.setenv(variable, "http://127.0.0.1:9")  # nothing listens there
    outcome, _ = await scrape_once(answering(ok(PAGE))[0])
    assert outcome.ok, outcome.error


async def test_content_length_pages_reuse_one_connection() -> None:
    handler, connections = answering(ok(PAGE), ok(PAGE), ok(PAGE))
    server, url = await serve(handler)
    scraper = Scraper(timeout_seconds=2.0)
    try:
        outcomes = [await scraper.scrape(Target(url, "t")) for _ in range(3)]
    finally:
        await scraper.aclose()
        server.close()
    assert [o.error_kind for o in outcomes] == ["", "", ""]
    assert all(len(o.page.samples) == 2 for o in outcomes if o.page)
    assert connections[0] == 1


async def test_chunked_page_split_anywhere_with_trailers() -> None:
    body = (b"%x\r\n" % 10) + PAGE[:10] + b"\r\n" + (b"%x;ext=1\r\n" % (len(PAGE) - 10)) + PAGE[10:] + b"\r\n"
    raw = (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n" + body
           + b"0\r\nx-trailer: 1\r\n\r\n")
    pieces = [raw[i:i + 7] for i in range(0, len(raw), 7)]
    outcome, _ = await scrape_once(answering(pieces)[0])
    assert outcome.ok, outcome.error
    assert [s.value for s in outcome.page.samples] == [1.0, 2.0]


async def test_gzip_page_and_read_until_close_page() -> None:
    outcome, _ = await scrape_once(answering(ok(gzip.compress(PAGE), "content-encoding: gzip"))[0])
    assert outcome.ok and len(outcome.page.samples) == 2
    http10 = b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\n" + PAGE
    outcome, _ = await scrape_once(answering(http10, keep_open=False)[0])
    assert outcome.ok and len(outcome.page.samples) == 2


@pytest.mark.parametrize("raw", [
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"
    + b"".join(b"1000\r\n" + b"x" * 4096 + b"\r\n" for _ in range(40)),
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n" + b"x" * 200_000,
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 999999999\r\n\r\nxx",
    ok(gzip.compress(b"x" * 1_000_000), "content-encoding: gzip"),
])
async def test_every_framing_is_capped(raw: bytes) -> None:
    outcome, _ = await scrape_once(answering(raw, keep_open=False)[0], max_response_bytes=100_000)
    assert outcome.error_kind == "too_large", outcome.error


@pytest.mark.parametrize(("raw", "kind"), [
    (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1000\r\n\r\n" + PAGE, "connect"),  # cut short
    (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "connect"),
    (b"HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\n\r\nno\n", "http_status"),
    (ok(b"<html></html>").replace(b"text/plain; version=0.0.4", b"text/html"), "content_type"),
    (ok(b"  \n"), "empty"),
    (ok(PAGE, "content-encoding: br"), "connect"),
])
async def test_broken_answers_are_classified(raw: bytes, kind: str) -> None:
    outcome, _ = await scrape_once(answering(raw, keep_open=False)[0])
    assert outcome.error_kind == kind, outcome.error


async def test_a_late_answer_is_a_timeout() -> None:
    outcome, _ = await scrape_once(answering([b"HTTP/1.1 200 OK\r\n", b""], keep_open=True)[0], timeout=0.3)
    assert outcome.error_kind == "timeout"


async def test_an_answer_that_arrived_while_the_loop_was_busy_is_not_a_timeout() -> None:
    """The deadline is checked after the loop has read what is in the socket: a healthy target's answer
    that came in while the loop was stuck (a big parse, a GC pause) is a success, not a false timeout
    (the soak's failure with the previous client)."""
    handler, _ = answering(ok(PAGE))
    server, url = await serve(handler)
    scraper = Scraper(timeout_seconds=0.3)
    try:
        task = asyncio.create_task(scraper.scrape(Target(url, "t")))
        await asyncio.sleep(0.05)  # connected, request written; the server answers at once
        time.sleep(0.6)  # the loop is busy past the deadline while the answer sits in the socket
        outcome = await task
    finally:
        await scraper.aclose()
        server.close()
    assert outcome.ok, outcome.error


async def test_a_huge_page_is_parsed_off_the_loop_and_healthy_targets_keep_their_timeouts() -> None:
    """A 100k-line page (~3.5 MB, parsed cold every time) next to healthy targets: its parse runs in a
    worker thread, so the loop keeps serving the others, none of which times out, and the huge page is
    not marked timed out either: the timeout covers the network exchange, not the parse."""
    huge = "".join(f'junk_{i}{{a="{i * 0.37}"}} {i}\n' for i in range(100_000)).encode()
    handler_huge, _ = answering(*[ok(huge)] * 3)
    handler_ok, _ = answering(*[ok(PAGE)] * 3)
    servers = [await serve(handler_huge)] + [await serve(handler_ok) for _ in range(4)]
    scraper = Scraper(timeout_seconds=1.5, max_response_bytes=8 * 1024 * 1024)
    t0 = time.perf_counter()
    parse_text(huge.decode())  # what one parse of that page costs on this machine, now
    one_parse = time.perf_counter() - t0
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    try:
        for _ in range(3):
            outcomes = await asyncio.gather(*(scraper.scrape(Target(url, str(i)))
                                              for i, (_, url) in enumerate(servers)))
            assert [o.error_kind for o in outcomes] == [""] * 5, [o.error for o in outcomes]
            assert len(outcomes[0].page.samples) == 100_000
    finally:
        tick.cancel()
        await scraper.aclose()
        for server, _ in servers:
            server.close()
    # The loop was never stuck for a whole parse (measured against the parse itself, so a loaded machine,
    # which slows both, does not make the test lie either way).
    assert max(gaps) < one_parse, (max(gaps), one_parse)


@pytest.mark.parametrize("trusted", [True, False])
async def test_https_target_is_verified(tmp_path, monkeypatch, trusted: bool) -> None:  # type: ignore[no-untyped-def]
    """https targets: the certificate is verified (CA from $SSL_CERT_FILE here, as httpx honours it); a
    server whose CA is not trusted is a `connect` failure, never read."""
    import ssl

    from tests.serving.scaler.test_scaler_tls import issue, make_ca, pem

    ca = make_ca("llmobs-test-ca")
    key, cert = pem(issue(ca, "localhost", server=True))
    (tmp_path / "server.key").write_bytes(key)
    (tmp_path / "server.crt").write_bytes(cert)
    (tmp_path / "ca.crt").write_bytes(pem(ca if trusted else make_ca("someone-else"))[1])
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.crt"))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    handler, _ = answering(ok(PAGE), ok(PAGE))
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=server_ctx)
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/metrics"
    scraper = Scraper(timeout_seconds=2.0)
    try:
        outcomes = [await scraper.scrape(Target(url, "tls")) for _ in range(2)]
    finally:
        await scraper.aclose()
        server.close()
    if trusted:
        assert [o.error_kind for o in outcomes] == ["", ""], [o.error for o in outcomes]
    else:
        assert [o.error_kind for o in outcomes] == ["connect", "connect"]


async def test_credentials_in_the_url_are_sent_as_basic_auth() -> None:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(ok(PAGE))
        await writer.drain()
        writer.close()

    server, url = await serve(handle)
    scraper = Scraper(timeout_seconds=2.0)
    try:
        outcome = await scraper.scrape(Target(url.replace("http://", "http://prom:s%40cret@"), "auth"))
    finally:
        await scraper.aclose()
        server.close()
    assert outcome.ok, outcome.error
    assert b"Authorization: Basic cHJvbTpzQGNyZXQ=\r\n" in seen[0]  # base64("prom:s@cret")
    assert seen[0].startswith(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:")

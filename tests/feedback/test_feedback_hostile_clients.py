"""The feedback API against hostile clients, over real sockets: slow headers, slow bodies, too many
connections, and bodies that are JSON only by a lenient reading (duplicate keys, huge numbers)."""

from __future__ import annotations

import asyncio
import time

import httpx
from prometheus_client import CollectorRegistry

from tests.feedback.feedback_helpers import CHAT, event, start, stop

SLOW = 100  # of each kind: enough to show the limits, small enough for a shared 2-core machine
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.5
MAX_CONNECTIONS = 250
MARGIN = 2.0  # event-loop latency on a busy machine


async def _slow_client(port: int, head: bytes, trickle: bytes) -> tuple[float, bytes]:
    """Send `head`, then one byte of `trickle` every 0.2 s until the server closes the connection.
    Returns the seconds the connection stayed open and what the server answered."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = b""
    try:
        writer.write(head)
        for i in range(200):
            try:
                data = await asyncio.wait_for(reader.read(4096), 0.2)
            except TimeoutError:
                writer.write(trickle[i % len(trickle):][:1])
                continue
            answer += data
            if not data:
                break
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
    return time.monotonic() - started, answer


async def _first_answer(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await asyncio.wait_for(reader.read(4096), 0.5)
    except (TimeoutError, ConnectionError):
        return b""
    finally:
        writer.close()


async def test_slow_clients_are_cut_off_and_connections_capped(make_config) -> None:
    config = make_config(host="127.0.0.1", port=0, header_timeout_seconds=HEADER_TIMEOUT,
                         body_timeout_seconds=BODY_TIMEOUT, max_connections=MAX_CONNECTIONS)
    task, base = await start(config, CollectorRegistry())
    port = int(base.rsplit(":", 1)[1])
    slow_header = b"POST /v1/feedback HTTP/1.1\r\nHost: feedback\r\n"
    slow_body = (b"POST /v1/feedback HTTP/1.1\r\nHost: feedback\r\nAuthorization: Bearer tok-chat\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{")
    try:
        headers = [asyncio.create_task(_slow_client(port, slow_header, b"X-Slow: 1\r\n")) for _ in range(SLOW)]
        bodies = [asyncio.create_task(_slow_client(port, slow_body, b" ")) for _ in range(SLOW)]
        await asyncio.sleep(0.3)
        async with httpx.AsyncClient(base_url=base) as client:  # a normal client is served meanwhile
            resp = await client.post("/v1/feedback", json=event("during-probe"), headers=CHAT)
            assert resp.status_code == 200 and resp.json() == {"accepted": 1, "duplicates": 0}
            extra = await asyncio.gather(*(_first_answer(port) for _ in range(MAX_CONNECTIONS - 2 * SLOW + 20)))
        refused = [a for a in extra if a.startswith(b"HTTP/1.1 503")]
        assert len(refused) >= 10, f"{len(refused)} of {len(extra)} connections over the cap refused"
        header_results = await asyncio.gather(*headers)
        body_results = await asyncio.gather(*bodies)
        async with httpx.AsyncClient(base_url=base) as client:  # and once they are gone, too
            resp = await client.post("/v1/feedback", json=event("after-probe"), headers=CHAT)
            assert resp.status_code == 200
    finally:
        await stop(task)
    longest_header = max(seconds for seconds, _ in header_results)
    longest_body = max(seconds for seconds, _ in body_results)
    assert longest_header < HEADER_TIMEOUT + MARGIN, longest_header
    assert longest_body < BODY_TIMEOUT + MARGIN, longest_body
    assert all(answer.startswith(b"HTTP/1.1 408") for _, answer in header_results + body_results)


async def _post_raw(base: str, body: bytes) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base) as client:
        return await client.post("/v1/feedback", content=body,
                                 headers={**CHAT, "Content-Type": "application/json"})


async def test_duplicate_keys_and_huge_numbers_are_refused_in_the_apis_words(make_config) -> None:
    task, base = await start(make_config(host="127.0.0.1", port=0), CollectorRegistry())
    try:
        duplicate = await _post_raw(base, b'{"request_id": "d1", "model": "llama-8b", "scale": "thumbs", '
                                          b'"rating": 1, "rating": -1}')
        nested = await _post_raw(base, b'{"events": [{"request_id": "d2", "request_id": "d3", "model": "m", '
                                       b'"scale": "thumbs", "rating": 1}]}')
        huge = await _post_raw(base, b'{"request_id": "h1", "model": "llama-8b", "scale": "thumbs", "rating": '
                                     + b"1" * 5000 + b"}")
        huge_float = await _post_raw(base, b'{"request_id": "h2", "model": "llama-8b", "scale": "stars", '
                                           b'"rating": 1e999}')
        fine = await _post_raw(base, b'{"request_id": "ok", "model": "llama-8b", "scale": "thumbs", "rating": 1}')
    finally:
        await stop(task)
    assert duplicate.status_code == 400
    assert duplicate.json() == {"error": "malformed_json", "field": "rating",
                                "detail": "duplicate key 'rating' in a JSON object"}
    assert nested.status_code == 400 and nested.json()["field"] == "request_id"
    for resp in (huge, huge_float):
        assert resp.status_code == 400
        assert resp.json()["error"] == "malformed_json"
        assert resp.json()["detail"].startswith("number too large")
        assert "4300" not in resp.text and "sys.set_int_max_str_digits" not in resp.text
    assert fine.status_code == 200

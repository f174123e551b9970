"""The exporter against targets that carry secrets or serve broken numbers, over real HTTP on loopback.

- A target needing basic auth, with the password in its URL or in a `password_file`, or a bearer token
  from a file: scraping works, and the secret shows nowhere llmobs answers or logs.
- A target whose request counter dips a little at every scrape: no absurd request rate, and the KEDA
  metrics API is not told one either.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from llmobs.config import config_from_mapping
from llmobs.runtime import serve_asgi, start_exporter
from llmobs.sources.scrape_auth import CredentialsError, ScrapeAuth, SecretFile
from llmobs.sources.targets import Target, default_target_name, redact_url
from tests.conftest import FIXTURE_PAGE

PASSWORD = "Pw-0f-the-vLLM-scrape-9731"
TOKEN = "tok-of-the-vLLM-scrape-4412"
FIXTURE = FIXTURE_PAGE


def _vllm_page(success: float) -> str:
    lines = []
    for line in FIXTURE.read_text().splitlines():
        if line.startswith("vllm:request_success_total{") and 'finished_reason="stop"' in line:
            line = line.rsplit(" ", 1)[0] + f" {success}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _target_app() -> Starlette:
    basic = "Basic " + base64.b64encode(f"scraper:{PASSWORD}".encode()).decode()
    scrapes = {"dipping": 0}

    async def basic_page(request: Request) -> Response:
        if request.headers.get("authorization") != basic:
            return PlainTextResponse("who are you?", status_code=401)
        return PlainTextResponse(_vllm_page(1000.0))

    async def bearer_page(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return PlainTextResponse("who are you?", status_code=401)
        return PlainTextResponse(_vllm_page(1000.0))

    async def dipping_page(request: Request) -> Response:
        scrapes["dipping"] += 1  # a broken exporter: the counter goes down by one at every scrape
        return PlainTextResponse(_vllm_page(478_988.0 - scrapes["dipping"]))

    return Starlette(routes=[Route("/basic/{replica}/metrics", basic_page), Route("/bearer/metrics", bearer_page),
                             Route("/dipping/metrics", dipping_page)])


def test_url_credentials_move_out_of_the_url() -> None:
    url = f"http://scraper:{PASSWORD}@10.0.0.7:8000/metrics"
    target = Target(url, default_target_name(url))
    assert (target.url, target.name) == ("http://10.0.0.7:8000/metrics", "10.0.0.7:8000")
    assert target.auth_header() == "Basic " + base64.b64encode(f"scraper:{PASSWORD}".encode()).decode()
    assert PASSWORD not in repr(target) and redact_url(url) == target.url


def test_unreadable_credentials_file_names_the_file_only(tmp_path: Path) -> None:
    auth = ScrapeAuth(username="scraper", password_file=SecretFile(tmp_path / "missing"))
    with pytest.raises(CredentialsError, match=r"cannot read credentials file .*missing: No such file"):
        auth.header()


@pytest.fixture
async def target_port():
    server, task, port = await serve_asgi(_target_app(), "127.0.0.1", 0)
    yield port
    server.should_exit = True
    await task


async def _wait_up(exporter, n: int) -> None:  # type: ignore[no-untyped-def]
    for _ in range(150):
        targets = exporter.holder.current.targets
        if len(targets) == n and all(t.up for t in targets) and len(exporter.holder.current.signals) == n:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"targets not all up: {[(t.endpoint, t.last_error) for t in exporter.holder.current.targets]}")


async def test_credentials_scrape_but_never_show(target_port: int, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    base = f"127.0.0.1:{target_port}"
    config = config_from_mapping({
        "targets": [
            {"url": f"http://scraper:{PASSWORD}@{base}/basic/url/metrics"},  # no name: the default must be clean
            {"url": f"http://{base}/basic/file/metrics", "name": "from-file",
             "basic_auth": {"username": "scraper", "password_file": str(password_file)}},
            {"url": f"http://{base}/bearer/metrics", "name": "bearer", "bearer_token_file": str(token_file)},
            {"url": f"http://scraper:wrong-{PASSWORD}@{base}/basic/wrong/metrics", "name": "wrong"},
        ],
        "scrape": {"interval_seconds": 0.2, "timeout_seconds": 2},
        "server": {"host": "127.0.0.1", "port": 0},
    })
    exporter = await start_exporter(config)
    try:
        for _ in range(150):
            up = {t.endpoint: t.up for t in exporter.holder.current.targets}
            if len(up) == 4 and sum(up.values()) == 3 and len(exporter.holder.current.signals) == 3:
                break
            await asyncio.sleep(0.1)
        assert up == {base: True, "from-file": True, "bearer": True, "wrong": False}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{exporter.port}") as client:
            answers = {path: (await client.get(path)).text for path in ("/metrics", "/", "/api/v1/signals")}
    finally:
        await exporter.stop()
    families = {f.name: f for f in text_string_to_metric_families(answers["/metrics"])}
    endpoints = {s.labels["endpoint"] for s in families["llmobs_target_up"].samples}
    assert endpoints == {base, "from-file", "bearer", "wrong"}
    assert "HTTP 401" in answers["/api/v1/signals"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "wrong" in logged  # the down target was logged, and without its password:
    for where, text in {**answers, "log": logged}.items():
        for secret in (PASSWORD, TOKEN, "scraper:"):
            assert secret not in text, f"{secret!r} shows in {where}"


async def test_rotated_password_file_is_picked_up(target_port: int, tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text("old-password")
    config = config_from_mapping({
        "targets": [{"url": f"http://127.0.0.1:{target_port}/basic/file/metrics", "name": "rotating",
                     "basic_auth": {"username": "scraper", "password_file": str(password_file)}}],
        "scrape": {"interval_seconds": 0.2, "timeout_seconds": 2},
        "server": {"host": "127.0.0.1", "port": 0},
    })
    exporter = await start_exporter(config)
    try:
        for _ in range(50):
            if exporter.holder.current.targets and exporter.holder.current.targets[0].last_error:
                break
            await asyncio.sleep(0.1)
        assert exporter.holder.current.targets[0].last_error == "HTTP 401"
        password_file.write_text(PASSWORD)  # the Secret is updated: no restart needed
        await _wait_up(exporter, 1)
    finally:
        await exporter.stop()


async def test_dipping_counter_gives_plausible_rate_and_scaler_value(target_port: int) -> None:
    config = config_from_mapping({
        "targets": [{"url": f"http://127.0.0.1:{target_port}/dipping/metrics", "name": "dipping"}],
        "scrape": {"interval_seconds": 0.1, "timeout_seconds": 2},
        "signals": {"window_seconds": 5},
        "server": {"host": "127.0.0.1", "port": 0},
        "scaler": {"enabled": True, "host": "127.0.0.1", "port": 0, "engine": "aio"},
    })
    exporter = await start_exporter(config)
    try:
        await _wait_up(exporter, 1)
        await asyncio.sleep(1.5)  # a dozen scrapes, each one lower than the last
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{exporter.port}") as client:
            keda = (await client.get("/api/v1/scaler/metrics",
                                     params={"model": "tiny", "signal": "request_rate", "target": "10"})).json()
            metrics = (await client.get("/metrics")).text
    finally:
        await exporter.stop()
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    rates = [s.value for s in families["llmobs_request_rate"].samples]
    assert rates and all(0 <= r < 1 for r in rates), rates
    assert 0 <= keda["value"] < 1, keda
    dropped = {s.labels["reason"]: s.value for s in families["llmobs_series_dropped"].samples
               if s.name.endswith("_total")}
    assert dropped.get("implausible", 0) >= 5, dropped

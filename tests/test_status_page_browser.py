"""What a person sees: the status page at / rendered by a real headless Chromium (Debian's package).

On the demo fleet, with one unreachable target whose endpoint label is hostile markup, Chromium must build
a page where every target is listed (the down one first, with its error), every chart and sparkline has
data points, the hostile label is text (no element made from it), the page's own script runs under its
Content Security Policy and swaps in a fresh fragment, and every request Chromium made (its net log) went to
127.0.0.1 — the page works in an air-gapped cluster. The screenshot must be a real, non-blank picture."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import struct
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from llmobs.config import LlmobsConfig, ScrapeConfig, ServerConfig, SignalsConfig
from llmobs.demo.fleet import create_fleet_app, default_fleet
from llmobs.runtime import Exporter, serve_asgi, start_exporter
from llmobs.serving.statuspage import FRAGMENT_PATH, SignalHistory
from llmobs.sources.targets import StaticTargetSource, Target

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]
HOSTILE = "\"><img src=x onerror=alert(1)><script>alert(1)</script>"
REPLICAS = ("llama-3.1-8b-instruct-0", "llama-3.1-8b-instruct-1", "qwen2.5-coder-7b-0")


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium not installed (make test installs Debian's chromium)")
    return path


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


@asynccontextmanager
async def demo_exporter(points: int) -> AsyncIterator[Exporter]:
    """The demo fleet plus a hostile unreachable target, scraped every 0.5 s until each endpoint has
    `points` history points."""
    fleet = default_fleet(speedup=10.0)
    fleet_server, fleet_task, fleet_port = await serve_asgi(create_fleet_app(fleet), "127.0.0.1", 0)
    targets = [*fleet.targets(f"http://127.0.0.1:{fleet_port}"), Target("http://127.0.0.1:9/metrics", HOSTILE)]
    cfg = LlmobsConfig(scrape=ScrapeConfig(interval_seconds=0.5, timeout_seconds=1),
                       signals=SignalsConfig(window_seconds=10), server=ServerConfig(host="127.0.0.1", port=0))
    history = SignalHistory(spacing_seconds=0.5)
    exporter = await start_exporter(cfg, StaticTargetSource(targets), status_history=history)
    try:
        for _ in range(200):
            series = [history.endpoint(s.attribution.model, s.attribution.endpoint)
                      for s in exporter.holder.current.signals]
            if len(series) == 3 and all(s is not None and len(s.times) >= points for s in series):
                break
            await asyncio.sleep(0.1)
        yield exporter
    finally:
        await exporter.stop()
        fleet_server.should_exit = True
        await fleet_task


async def run_chromium(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, [chromium(), *CHROMIUM_FLAGS, *args], capture_output=True,
                                   text=True, timeout=90)


def page_requests(netlog: Path) -> set[str]:
    """Every URL a page asked Chromium's network stack for, from its net log: requests whose initiator is a
    page origin (the browser's own housekeeping — update checks, clock sync — has none, and is not the page's
    doing)."""
    log = json.loads(netlog.read_text())
    urls = set()
    for event in log.get("events", []):
        params = event.get("params") or {}
        url, initiator = params.get("url"), params.get("initiator")
        if isinstance(url, str) and isinstance(initiator, str) and "://" in initiator:
            urls.add(url)
    return urls


async def test_status_page_renders_in_chromium(tmp_path: Path) -> None:
    chromium()
    async with demo_exporter(points=4) as exporter:
        url = f"http://127.0.0.1:{exporter.port}/"
        netlog = tmp_path / "net.json"
        # virtual time lets the page's 5 s timer fire: the script must fetch and swap in a fragment
        dom = await run_chromium(f"--user-data-dir={tmp_path / 'p1'}", f"--log-net-log={netlog}",
                                 "--virtual-time-budget=12000", "--dump-dom", url)
        shot = tmp_path / "status.png"
        await run_chromium(f"--user-data-dir={tmp_path / 'p2'}", f"--screenshot={shot}", "--window-size=1280,900",
                           url)
    html = dom.stdout
    assert "<h1>llmobs</h1>" in html, dom.stderr[-2000:]
    assert re.search(r"<body[^>]*data-updated=", html), "the page's script did not refresh the live section"
    for name in REPLICAS:
        assert html.count(name) >= 2, f"{name}: expected a target row and an endpoint row"
    targets = html[html.index("id=\"targets\""):html.index("<h2>Models")]
    first_row = targets[targets.index("<tr class="):]
    assert first_row.startswith("<tr class=\"down\">") and "connect" in first_row, "down target not first"
    # the hostile label is text: escaped in the DOM, and no element was made from it
    assert "&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img" not in html and "alert(1)</script>" not in html
    charts = re.findall(r"<svg class=\"(chart|spark)\"[^>]*data-points=\"(\d+)\"", html)
    assert len([c for c in charts if c[0] == "chart"]) == 2 * 2, "a demand and a replicas chart per model"
    assert len([c for c in charts if c[0] == "spark"]) == 4 * len(REPLICAS), "KV, queue, TTFT, TPOT per endpoint"
    assert all(int(n) >= 2 for _, n in charts), charts
    assert "no data" not in html
    asked = page_requests(netlog)
    assert any(u.endswith(FRAGMENT_PATH) for u in asked), f"the net log missed the page's own fetches: {asked}"
    assert {urlsplit(u).hostname for u in asked} == {"127.0.0.1"}, f"requests left the host: {asked}"
    data = shot.read_bytes()
    assert png_size(data) == (1280, 900)
    assert len(data) > 15_000, "screenshot looks blank"

"""What a person sees: the status page at / rendered by a real headless Chromium (Debian's package).

The DOM Chromium built must list every target with its health and a signal row per model × endpoint, and
the screenshot must be a real, non-blank picture of that page."""

from __future__ import annotations

import asyncio
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from llmobs.config import LlmobsConfig, ScrapeConfig, ServerConfig, SignalsConfig
from llmobs.demo.fleet import create_fleet_app, default_fleet
from llmobs.runtime import serve_asgi, start_exporter
from llmobs.sources.targets import StaticTargetSource, Target

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium not installed (make test installs Debian's chromium)")
    return path


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


async def test_status_page_renders_in_chromium(tmp_path: Path) -> None:
    browser = chromium()
    fleet = default_fleet(speedup=10.0)
    fleet_server, fleet_task, fleet_port = await serve_asgi(create_fleet_app(fleet), "127.0.0.1", 0)
    targets = [*fleet.targets(f"http://127.0.0.1:{fleet_port}"),
               Target("http://127.0.0.1:9/metrics", "unreachable-replica")]
    cfg = LlmobsConfig(scrape=ScrapeConfig(interval_seconds=0.5, timeout_seconds=1),
                       signals=SignalsConfig(window_seconds=10), server=ServerConfig(host="127.0.0.1", port=0))
    exporter = await start_exporter(cfg, StaticTargetSource(targets))
    try:
        for _ in range(100):
            if len(exporter.holder.current.signals) == 3:
                break
            await asyncio.sleep(0.1)
        url = f"http://127.0.0.1:{exporter.port}/"
        profile = tmp_path / "profile"
        dom = await asyncio.to_thread(subprocess.run, [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                                       "--dump-dom", url], capture_output=True, text=True,
                                      timeout=90)
        shot = tmp_path / "status.png"
        await asyncio.to_thread(subprocess.run, [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                                 f"--screenshot={shot}", "--window-size=1400,700", url],
                                capture_output=True, timeout=90)
    finally:
        await exporter.stop()
        fleet_server.should_exit = True
        await fleet_task
    html = dom.stdout
    assert "<h1>llmobs</h1>" in html, dom.stderr[-2000:]
    for name in ("llama-3.1-8b-instruct-0", "llama-3.1-8b-instruct-1", "qwen2.5-coder-7b-0"):
        assert html.count(name) >= 2, f"{name}: expected a target row and a signal row"
    assert "unreachable-replica" in html and "class=\"down\"" in html and "connect" in html
    data = shot.read_bytes()
    assert png_size(data) == (1400, 700)
    assert len(data) > 15_000, "screenshot looks blank"

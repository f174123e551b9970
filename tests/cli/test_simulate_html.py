"""`llmobs forecast simulate --html`: one self-contained file with every policy's charts side by side."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from llmobs.cli import app
from llmobs.cli_support import run_app
from tests.conftest import REPO


class Fetches(HTMLParser):
    """Every attribute that could make a browser fetch something, and the script tags."""

    def __init__(self) -> None:
        super().__init__()
        self.fetching: list[tuple[str, str]] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        self.fetching += [(tag, name) for name, _ in attrs if name in ("src", "href", "xlink:href", "srcset")]


def test_simulate_html_writes_every_policy_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "t<b>.csv"  # the trace's name reaches the page title: escaped
    with (REPO / "data" / "traces" / "AzureLLMInferenceTrace_conv.csv").open() as f:
        trace.write_text("".join(next(f) for _ in range(801)))
    out = tmp_path / "replay.html"
    assert run_app(app, ["forecast", "simulate", "--trace", str(trace), "--policy", "hybrid",
                         "--capacity-per-replica", "1", "--cold-start", "1m", "--forecaster", "moving_average_6",
                         "--html", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    policies = re.findall(r"data-policy='([a-z]+)'", page)
    assert policies == ["hybrid", "reactive", "predictive"], "the asked policy first, then the others"
    charts = re.findall(r"<svg class='chart'[^>]*data-points='(\d+)'", page)
    assert len(charts) == 2 * 3 and all(int(n) > 10 for n in charts), charts
    assert "t&lt;b&gt;.csv" in page and "<b>" not in page
    parsed = Fetches()
    parsed.feed(page)
    assert parsed.scripts == 0 and parsed.fetching == [], "nothing to run, nothing to fetch"
    policy = re.search(r"http-equiv='Content-Security-Policy' content=\"([^\"]*)\"", page)
    assert policy is not None and html.unescape(policy.group(1)).startswith("default-src 'none';")
    assert "underprovisioned_minutes" in capsys.readouterr().out, "the terminal summary is still printed"

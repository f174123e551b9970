"""The page's inline SVG helpers: data counted, gaps skipped, spikes kept, text escaped."""

from __future__ import annotations

import math
import re
from html.parser import HTMLParser

from llmobs.serving.statuspage.svg import Line, esc, line_chart, sparkline, thin

HOSTILE = ["<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "'><svg onload=alert(1)>"]


def test_thin_keeps_each_buckets_max_and_nan_only_for_empty_buckets() -> None:
    values = [0.0] * 10 + [5.0] + [0.0] * 9 + [math.nan] * 10
    thinned = thin(values, 3)
    assert thinned[:2] == [0.0, 5.0] and math.isnan(thinned[2])
    assert thin([1.0, 2.0], 10) == [1.0, 2.0]


def test_sparkline_counts_finite_points_and_says_no_data_when_there_is_none() -> None:
    svg = sparkline([1.0, math.nan, 3.0, 2.0], label="kv")
    assert "data-points='3'" in svg
    drawn = re.search(r"<polyline points='([^']*)'", svg)
    assert drawn is not None and len(drawn.group(1).split()) == 3
    assert "no data" in sparkline([math.nan, math.nan])
    assert "no data" in sparkline([])


def test_line_chart_draws_lines_band_and_markers_inside_the_span() -> None:
    times = [0.0, 60.0, 120.0]
    chart = line_chart(times, [Line("served", [1.0, 2.0, 3.0], "served")],
                       band=([1.0, 1.0, 1.0], [2.0, 4.0, 5.0]), markers=[60.0, 999.0], title="demand")
    assert "data-points='3'" in chart and "<polygon class='band'" in chart
    assert chart.count("class='marker'") == 1, "a marker outside the time span is not drawn"
    assert "−2 min" in chart
    assert "no data" in line_chart(times, [Line("x", [math.nan] * 3, "x")], title="t")


class Elements(HTMLParser):
    """The tags and attribute names a browser would build from some markup."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)


def test_hostile_text_is_escaped_everywhere_it_can_reach() -> None:
    for text in HOSTILE:
        out = f"<p>{esc(text)}</p>" + sparkline([1.0, 2.0], label=text) + line_chart(
            [0.0, 1.0], [Line(text, [1.0, 2.0], text)], title=text)
        parsed = Elements()
        parsed.feed(out)
        assert not parsed.tags & {"script", "img"}, parsed.tags
        assert parsed.tags <= {"p", "svg", "title", "polyline", "figure", "figcaption", "line", "text", "span"}
        assert not {a for a in parsed.attributes if a.startswith("on")}, parsed.attributes

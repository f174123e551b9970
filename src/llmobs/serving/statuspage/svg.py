"""Inline SVG charts: no charting library, no script, nothing fetched — the page works in an air-gapped cluster.

Each chart carries `data-points` (how many finite values it drew) so a test, or a person, can tell an empty
chart from a flat one. Every text that reaches the markup goes through `esc`; numbers are formatted here.
Series are thinned to at most `max_points` (the bucket's max, so a spike stays visible) before drawing: a
sparkline 120 px wide has no use for 360 points, and formatting them is most of a page's render cost.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass


def esc(text: object) -> str:
    """Text safe inside an element or a quoted attribute (label values are untrusted)."""
    return html.escape(str(text), quote=True)


def fmt(v: float | None, unit: str = "", scale: float = 1.0, digits: int = 2) -> str:
    """A number for people: '–' when unknown."""
    if v is None or not math.isfinite(v):
        return "–"
    return f"{v * scale:.{digits}f}{unit}"


def thin(values: Sequence[float], max_points: int) -> list[float]:
    """At most `max_points` values: each the max of its bucket (NaN only where the whole bucket is NaN), so a
    spike stays visible. The per-value work is C (slices, filter, max): this runs for every sparkline."""
    n = len(values)
    if n <= max_points:
        return list(values)
    out = []
    for b in range(max_points):
        out.append(max(filter(math.isfinite, values[b * n // max_points:(b + 1) * n // max_points]),
                       default=math.nan))
    return out


def _points(values: Sequence[float], x0: float, dx: float, y0: float, height: float, lo: float,
            span: float) -> list[str]:
    """'x,y' per finite value, in whole and tenth pixels (the charts' viewBoxes are drawn at that scale)."""
    k = height / span
    base = y0 + height + lo * k
    return [f"{x0 + i * dx:.0f},{base - v * k:.1f}" for i, v in enumerate(values) if v == v]


def sparkline(values: Sequence[float], *, width: int = 120, height: int = 24, max_points: int = 40,
              label: str = "") -> str:
    """A small line of `values` (oldest first) scaled to its own min..max; 'no data' when none is finite."""
    drawn = thin(values, max_points)
    finite = [v for v in drawn if v == v]
    if not finite:
        return "<span class='na'>no data</span>"
    lo, hi = min(finite), max(finite)
    span = hi - lo or 1.0
    dx = (width - 2) / max(len(drawn) - 1, 1)
    pts = _points(drawn, 1.0, dx, 1.0, height - 2, lo, span)
    last = finite[-1]
    return (f"<svg class='spark' viewBox='0 0 {width} {height}' width='{width}' height='{height}' role='img' "
            f"aria-label='{esc(label)}' data-points='{len(finite)}'><title>{esc(label)} last {last:.3g} "
            f"(min {lo:.3g}, max {hi:.3g})</title><polyline points='{' '.join(pts)}'/></svg>")


@dataclass(frozen=True, slots=True)
class Line:
    """One series of a chart: its legend name, values (aligned with the chart's times) and CSS class."""

    name: str
    values: Sequence[float]
    css: str


def line_chart(times: Sequence[float], lines: Sequence[Line], *, band: tuple[Sequence[float], Sequence[float]] | None
               = None, markers: Sequence[float] = (), width: int = 560, height: int = 150, max_points: int = 120,
               unit: str = "", title: str = "", span_labels: tuple[str, str] | None = None) -> str:
    """A time chart of `lines` over `times` (oldest first), an optional shaded band (lower, upper) and vertical
    markers at the given times (cold starts). Shared y axis from 0; 'no data' when nothing is finite. The x axis
    is labelled '−N min … now' unless `span_labels` gives its two ends (a replay's start and end)."""
    pad_l, pad_b, pad_t = 44, 16, 6
    w, h = width - pad_l - 4, height - pad_b - pad_t
    thinned = [thin(ln.values, max_points) for ln in lines]
    band_t = (thin(band[0], max_points), thin(band[1], max_points)) if band is not None else None
    finite = [v for vs in thinned for v in vs if v == v]
    if band_t is not None:
        finite += [v for v in band_t[1] if v == v]
    if not finite or len(times) < 1:
        return f"<div class='chart na' data-points='0'>{esc(title)}: no data yet</div>"
    hi = max(finite) or 1.0
    n = max(len(v) for v in thinned)
    dx = w / max(n - 1, 1)
    parts = [f"<svg class='chart' viewBox='0 0 {width} {height}' role='img' aria-label='{esc(title)}' "
             f"data-points='{sum(1 for vs in thinned for v in vs if v == v)}' preserveAspectRatio='none'>",
             f"<title>{esc(title)}</title>",
             f"<line class='axis' x1='{pad_l}' y1='{pad_t + h}' x2='{pad_l + w}' y2='{pad_t + h}'/>",
             f"<text class='tick' x='{pad_l - 4}' y='{pad_t + 8}'>{hi:.3g}{esc(unit)}</text>",
             f"<text class='tick' x='{pad_l - 4}' y='{pad_t + h}'>0</text>"]
    t0, t1 = times[0], times[-1]
    minutes = (t1 - t0) / 60
    first, last = span_labels if span_labels is not None else (f"−{minutes:.0f} min", "now")
    parts.append(f"<text class='tick start' x='{pad_l}' y='{height - 2}'>{esc(first)}</text>"
                 f"<text class='tick' x='{pad_l + w}' y='{height - 2}'>{esc(last)}</text>")
    if band_t is not None:
        lower, upper = band_t
        up = _points(upper, pad_l, dx, pad_t, h, 0.0, hi)
        down = _points(lower, pad_l, dx, pad_t, h, 0.0, hi)
        if up and down:
            parts.append(f"<polygon class='band' points='{' '.join(up + down[::-1])}'/>")
    span_t = (t1 - t0) or 1.0
    for m in markers:
        if t0 <= m <= t1:
            x = pad_l + (m - t0) / span_t * w
            parts.append(f"<line class='marker' x1='{x:.1f}' y1='{pad_t}' x2='{x:.1f}' y2='{pad_t + h}'>"
                         f"<title>cold start</title></line>")
    for ln, vs in zip(lines, thinned, strict=True):
        pts = _points(vs, pad_l, dx, pad_t, h, 0.0, hi)
        if pts:
            parts.append(f"<polyline class='{esc(ln.css)}' points='{' '.join(pts)}'/>")
    parts.append("</svg>")
    legend = "".join(f"<span class='key {esc(ln.css)}'>{esc(ln.name)}</span>" for ln in lines)
    if band is not None:
        legend += "<span class='key band'>forecast band</span>"
    if markers:
        legend += "<span class='key marker'>cold start</span>"
    return f"<figure>{''.join(parts)}<figcaption>{esc(title)} {legend}</figcaption></figure>"

"""The page's view-model and markup: each source shown when present, 'not available' when not, labels escaped."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from llmobs.serving.statuspage.history import SignalHistory
from llmobs.serving.statuspage.render import render_fragment, render_page
from llmobs.serving.statuspage.view import (
    FeedbackView,
    GpuView,
    StatusSources,
    TriggerAnswer,
    build_view,
    rises,
    slo_over,
)
from tests.factories import make_signals, make_state, make_target_health

HOSTILE = "<script>alert(1)</script>\"><img src=x onerror=alert(1)>"


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def fleet(t: float, served: float, endpoints: int = 2) -> object:
    signals = [make_signals(HOSTILE, f"{HOSTILE}-{i}", node=HOSTILE, gpu_model=HOSTILE, request_rate=served,
                            totals={"ttft_slo_requests": 100.0 * t, "ttft_slo_good": 95.0 * t})
               for i in range(endpoints)]
    down = make_target_health(HOSTILE, up=False, last_error=HOSTILE, last_error_kind="connect")
    return make_state(*signals, targets=(make_target_health("zz-up"), down), time=t)


def history_of(*states: object) -> SignalHistory:
    history = SignalHistory(capacity=10, spacing_seconds=1.0)
    for s in states:
        history.record(s)  # type: ignore[arg-type]
    return history


def test_without_sources_every_optional_panel_says_not_available() -> None:
    states = [fleet(float(t), 1.0) for t in range(1, 4)]
    view = build_view(states[-1], history_of(*states), StatusSources(), now=4.0)  # type: ignore[arg-type]
    html = render_fragment(view)
    for what in ("forecast: ", "feedback: ", "KEDA triggers: ", "door demand: ", "Ready replicas (HPA): "):
        assert f"{what}<span class='na'>not available</span>" in html, what
    row = html[html.index("<td class='bottleneck'>"):]
    assert row.startswith("<td class='bottleneck'><span class='na'>not available</span>")


def test_sources_fill_their_panels() -> None:
    states = [fleet(float(t), 1.0, endpoints=1 if t < 3 else 2) for t in range(1, 5)]
    sources = StatusSources(
        triggers=lambda: [TriggerAnswer(HOSTILE, "queue_depth", 10.0, 12.5, True, 3.0)],
        feedback=lambda: {HOSTILE: FeedbackView(10, 3, (4, 2), (6, 1))},
        bottleneck_of=lambda s: "kv_cache",
        gpu_of=lambda a: GpuView(utilization=0.5, memory_used_ratio=0.25, power_watts=300.0))
    view = build_view(states[-1], history_of(*states), sources, now=5.0)  # type: ignore[arg-type]
    model = view.models[0]
    assert model.cold_start_times == [3.0], "a replica appeared at t=3"
    assert model.slo_attainment == pytest.approx(0.95) and model.burn_rate == pytest.approx(5.0)
    html = render_fragment(view)
    assert "12.500" in html and "<td>yes</td>" in html and "2 s ago" in html
    assert "30.0 % negative of 10" in html and "over SLO 50.0 %" in html and "under 16.7 %" in html
    assert "<td class='bottleneck'>kv_cache</td>" in html and "300 W" in html


def test_down_targets_come_first_and_every_label_is_text() -> None:
    states = [fleet(float(t), 1.0) for t in range(1, 4)]
    view = build_view(states[-1], history_of(*states), StatusSources(), now=4.0)  # type: ignore[arg-type]
    assert [t.up for t in view.targets] == [False, True]
    page = render_page(view)
    parsed = Tags()
    parsed.feed(page)
    assert parsed.tags.count("script") == 1, "only the page's own script"
    assert "img" not in parsed.tags
    assert sum(HOSTILE in t for t in parsed.text) >= 5, "model, endpoint, node, GPU and target shown as text"


def test_slo_and_cold_starts_need_enough_history() -> None:
    assert slo_over(None, 0.99) == (None, None)
    one = history_of(fleet(1.0, 1.0))
    assert slo_over(one.model(HOSTILE), 0.99) == (None, None)
    assert rises([0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 2.0, float("nan")]) == [2.0]

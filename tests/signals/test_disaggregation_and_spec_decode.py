"""Speculative decoding, KV-block residency and prefill/decode disaggregation: the families a CPU vLLM page
lacks (no speculative config, no --kv-cache-metrics, no KV connector).

No recorded page carries them, so the pages here are the 0.32 fixture plus series written only from the
names and labels in vLLM's source (vllm/v1/spec_decode/metrics.py, vllm/v1/metrics/loggers.py, the NIXL
connector's NixlPromMetrics); values are chosen so the expected figures can be worked out by hand.
"""

from __future__ import annotations

import math
import re

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from llmobs.serving.collector import FleetCollector
from llmobs.signals.derive import ModelEndpointTracker
from llmobs.signals.types import Attribution, ModelEndpointSignals
from llmobs.sources.normalize import normalize
from llmobs.sources.textformat import parse_text
from llmobs.state import FleetState, StateHolder

LABELS = 'engine="0",model_name="tiny"'


def _spec_decode(drafts: float, draft_tokens: float, accepted: float, per_pos: tuple[float, ...]) -> str:
    lines = [f"vllm:spec_decode_num_drafts_total{{{LABELS}}} {drafts}",
             f"vllm:spec_decode_num_draft_tokens_total{{{LABELS}}} {draft_tokens}",
             f"vllm:spec_decode_num_accepted_tokens_total{{{LABELS}}} {accepted}"]
    lines += [f'vllm:spec_decode_num_accepted_tokens_per_pos_total{{{LABELS},position="{i}"}} {n}'
              for i, n in enumerate(per_pos)]
    return "\n".join(lines) + "\n"


def _histogram(name: str, bounds: tuple[str, ...], cumulative: tuple[float, ...], total: float) -> str:
    lines = [f'{name}_bucket{{{LABELS},le="{b}"}} {c}' for b, c in zip(bounds, cumulative, strict=True)]
    lines += [f"{name}_count{{{LABELS}}} {cumulative[-1]}", f"{name}_sum{{{LABELS}}} {total}"]
    return "\n".join(lines) + "\n"


def _by_source(page: str, local: float, external: float) -> str:
    for source, value in (("local_compute", local), ("external_kv_transfer", external)):
        series = f'vllm:prompt_tokens_by_source_total{{{LABELS},source="{source}"}}'
        page, n = re.subn(rf"^{re.escape(series)} \S+$", f"{series} {value}", page, flags=re.M)
        assert n == 1
    return page


def _track(pages: list[str], role: str = "mixed") -> tuple[ModelEndpointTracker, ModelEndpointSignals]:
    tracker = ModelEndpointTracker(Attribution("tiny", "e"), 60, role=role)
    for t, page in enumerate(pages):
        tracker.observe(normalize(parse_text(page).samples, 10.0 * t).models["tiny"], 10.0 * t)
    signals = tracker.signals()
    assert signals is not None
    return tracker, signals


def _exposition(s: ModelEndpointSignals) -> str:
    holder = StateHolder()
    holder.publish(FleetState(time=10.0, signals=(s,), targets=()))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(holder))
    return generate_latest(registry).decode()


def test_spec_decode_acceptance_over_the_window(fixture_page: str) -> None:
    # 10 s apart: 40 drafts of 3 tokens (120 proposed), 60 accepted: 30 at position 0, 20 at 1, 10 at 2
    _, s = _track([fixture_page + _spec_decode(100, 300, 150, (80, 50, 20)),
                   fixture_page + _spec_decode(140, 420, 210, (110, 70, 30))])
    assert s.spec_decode_acceptance_ratio == pytest.approx(60 / 120)
    assert s.spec_decode_mean_acceptance_length == pytest.approx(1 + 60 / 40)
    assert s.spec_decode_acceptance_by_position == pytest.approx({"0": 30 / 40, "1": 20 / 40, "2": 10 / 40})
    exposed = _exposition(s)
    assert re.search(r'^llmobs_spec_decode_acceptance_by_position\{.*position="1".*\} 0\.5$', exposed, re.M)


def test_spec_decode_with_no_draft_in_the_window_is_nan_and_a_broken_page_is_capped(fixture_page: str) -> None:
    same = fixture_page + _spec_decode(100, 300, 150, (80, 50, 20))
    _, s = _track([same, same])
    assert math.isnan(s.spec_decode_acceptance_ratio or 0.0) and math.isnan(s.spec_decode_mean_acceptance_length or 0)
    # more accepted than proposed: not a share above 1
    _, s = _track([same, fixture_page + _spec_decode(110, 310, 190, (95, 50, 20))])
    assert s.spec_decode_acceptance_ratio == 1.0 and s.spec_decode_acceptance_by_position["0"] == 1.0


def test_without_speculative_decoding_there_is_no_series(fixture_page: str) -> None:
    _, s = _track([fixture_page, fixture_page])
    assert s.spec_decode_acceptance_ratio is None and s.spec_decode_acceptance_by_position == {}
    assert s.kv_block_lifetime is None and s.kv_transfer_time is None
    exposed = _exposition(s)
    for name in ("llmobs_spec_decode_acceptance_ratio", "llmobs_kv_block_lifetime_seconds",
                 "llmobs_kv_transfer_time_seconds", "llmobs_kv_transfer_bytes_rate",
                 "llmobs_disaggregation_role_conflicts_total"):
        assert not re.search(rf"^{name}{{", exposed, re.M), name


def test_kv_block_lifetime_and_idle_quantiles(fixture_page: str) -> None:
    bounds = ("1.0", "10.0", "+Inf")
    first = (_histogram("vllm:kv_block_lifetime_seconds", bounds, (0, 0, 0), 0)
             + _histogram("vllm:kv_block_idle_before_evict_seconds", bounds, (0, 0, 0), 0))
    # 10 blocks freed: all within 10 s, 4 within 1 s; 2 evicted after 0.5 s idle on average
    last = (_histogram("vllm:kv_block_lifetime_seconds", bounds, (4, 10, 10), 30.0)
            + _histogram("vllm:kv_block_idle_before_evict_seconds", bounds, (2, 2, 2), 1.0))
    _, s = _track([fixture_page + first, fixture_page + last])
    assert s.kv_block_lifetime is not None and s.kv_block_lifetime.count == 10.0
    assert s.kv_block_lifetime.mean == pytest.approx(3.0)
    assert s.kv_block_lifetime.quantiles[0.5] == pytest.approx(1 + 9 * (5 - 4) / 6)  # PromQL interpolation
    assert s.kv_block_idle_before_evict is not None and s.kv_block_idle_before_evict.mean == pytest.approx(0.5)
    assert re.search(r'^llmobs_kv_block_lifetime_seconds\{.*quantile="0.5"\}', _exposition(s), re.M)


def _nixl(transfers: float, seconds: float, transferred: float, failed: float) -> str:
    return (_histogram("vllm:nixl_xfer_time_seconds", ("0.01", "0.1", "+Inf"), (transfers, transfers, transfers),
                       seconds)
            + _histogram("vllm:nixl_bytes_transferred", ("1048576.0", "+Inf"), (0, transfers), transferred)
            + f"vllm:nixl_num_failed_transfers_total{{{LABELS}}} {failed}\n")


def test_a_decode_node_receiving_kv_carries_its_role(fixture_page: str) -> None:
    pages = [_by_source(fixture_page, 64, 0) + _nixl(0, 0, 0, 0),
             _by_source(fixture_page, 66, 640) + _nixl(20, 0.1, 2e9, 1)]
    tracker, s = _track(pages, role="decode")
    assert s.disaggregation_role == "decode" and s.totals["disaggregation_role_conflicts"] == 0.0
    assert s.kv_transfer_bytes_rate == pytest.approx(2e8) and s.kv_transfer_failed_rate == pytest.approx(0.1)
    assert s.kv_transfer_time is not None and s.kv_transfer_time.mean == pytest.approx(0.005)
    assert not tracker.take_role_conflict_started()
    exposed = _exposition(s)
    assert re.search(r'^llmobs_kv_transfer_bytes_rate\{.*role="decode"\} 2e\+08$', exposed, re.M)
    assert re.search(r'^llmobs_kv_transfer_time_seconds\{.*quantile="0.5",role="decode"\}', exposed, re.M)
    # the role is a label of the disaggregation series only
    assert not re.search(r'^llmobs_(requests_running|ttft_seconds|prefill_time_seconds)\{.*role=', exposed, re.M)


@pytest.mark.parametrize(("role", "local", "external"), [
    ("prefill", 66, 640),   # a prefill node that received prompt KV from elsewhere
    ("decode", 640, 0),     # a decode node that did all its prefill itself
    ("prefil", 640, 0),     # not a role at all (a typo in a pod label)
])
def test_a_role_the_page_contradicts_is_counted_and_not_reported(fixture_page: str, role: str, local: float,
                                                                 external: float) -> None:
    pages = [_by_source(fixture_page, 64, 0) + _nixl(0, 0, 0, 0),
             _by_source(fixture_page, local, external) + _nixl(0, 0, 0, 0)]
    tracker, s = _track(pages, role=role)
    assert s.disaggregation_role == "unknown"
    assert s.totals["disaggregation_role_conflicts"] == 1.0
    assert tracker.take_role_conflict_started() and not tracker.take_role_conflict_started()  # logged once
    assert re.search(r'^llmobs_kv_transfer_bytes_rate\{.*role="unknown"\}', _exposition(s), re.M)


def test_a_contradiction_ends_when_the_page_agrees_again(fixture_page: str) -> None:
    pages = [_by_source(fixture_page, 64, 0), _by_source(fixture_page, 640, 0),   # decode doing prefill
             _by_source(fixture_page, 640, 0),                                     # idle: no verdict
             _by_source(fixture_page, 641, 6400)]                                  # receiving KV again
    _, s = _track(pages, role="decode")
    assert s.disaggregation_role == "decode" and s.totals["disaggregation_role_conflicts"] == 1.0


def test_a_mixed_endpoint_has_no_role_series(fixture_page: str) -> None:
    _, s = _track([_by_source(fixture_page, 64, 0), _by_source(fixture_page, 640, 64)])
    assert s.disaggregation_role == "mixed" and "disaggregation_role_conflicts" not in s.totals

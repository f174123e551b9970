"""The metric catalogue (llmobs.metrics_catalogue) is the one declaration of every exported series.

Checked here: every family each collector emits (rendered from representative state) is a catalogue row
with the same type, help and labels, and no row is orphaned; the rows' other names agree with the code
that serves them (signal fields, the scaler's signals); and every metric name and label the shipped alert
rules, dashboards and forecast history queries use exists in the catalogue.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from operator import attrgetter
from pathlib import Path
from types import SimpleNamespace

import promql_parser
import pynvml
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from dashboards.queries import all_dashboard_queries, all_variable_queries
from llmobs.agent.attribution import EndpointInfo, ProcessOnGpu
from llmobs.agent.chain import AutoscalerChainCollector
from llmobs.agent.collectors import CostCollector, EndpointInfoCollector, GpuCollector, WatchStatsCollector
from llmobs.agent.cost import CostConfig, EndpointUsage
from llmobs.feedback import FeedbackCollector, FeedbackConfig, FeedbackStats
from llmobs.feedback.stats import Observation
from llmobs.forecast.demand import DEFAULT_PROMQL
from llmobs.forecast.service import ForecastCollector, ModelForecast
from llmobs.metrics_catalogue import CATALOGUE, GPU_LABELS, metric
from llmobs.serving.collector import FleetCollector
from llmobs.serving.deletion_cost import DeletionCostCollector, DeletionCostConfig, DeletionCostWriter, PatchRefused
from llmobs.serving.scaler.catalogue import SIGNALS
from llmobs.serving.scaler.metadata import metric_name, parse_metadata
from llmobs.serving.scaler.stats import ScalerCollector, ScalerStats
from llmobs.serving.scaler.triggers import TriggerRegistry
from llmobs.signals.coldstart import ColdStartRecorder, cold_starts
from llmobs.signals.types import Attribution, ModelEndpointSignals, Saturation
from llmobs.sources.gpu import NvmlReader, load_catalogue
from llmobs.sources.gpu.fake import FakeGpu, FakeNvml
from llmobs.sources.kubernetes.watch import WatchStats
from llmobs.state import StateHolder
from tests.conftest import REPO
from tests.factories import (
    distribution,
    make_door_health,
    make_door_signals,
    make_signals,
    make_state,
    make_target_health,
    scraped_target,
    signals_from_page,
)

ROOT = REPO

# Labels Prometheus itself (or its Kubernetes service discovery) puts on every scraped series, which PromQL may
# match or group by although no llmobs collector writes them.
TARGET_LABELS_ADDED_BY_PROMETHEUS = frozenset({"job", "instance", "namespace", "pod", "container", "service"})


def _serving_signals(fixture_page: str) -> ModelEndpointSignals:
    signals = signals_from_page(fixture_page, attribution=Attribution("tiny", "e", "node-a", "H100"))
    # What the CPU vLLM page lacks (a V0 engine's swap queue, waiting reasons, LoRA, speculative decoding, KV
    # residency metrics, a KV connector, a disaggregation role, the scheduler limits the saturation needs), so
    # every family has a sample.
    window = signals.windows["prefill_time"]
    return dataclasses.replace(
        signals, requests_swapped=1.0, requests_waiting_by_reason={"capacity": 1.0}, lora_adapters_max=4,
        spec_decode_acceptance_ratio=0.7, spec_decode_mean_acceptance_length=2.4,
        spec_decode_acceptance_by_position={"0": 0.8, "1": 0.6}, kv_transfer_bytes_rate=1e9,
        kv_transfer_failed_rate=0.0, disaggregation_role="decode",
        windows={**signals.windows, "kv_block_lifetime": window, "kv_block_idle_before_evict": window,
                 "kv_transfer_time": window},
        totals={**signals.totals, "disaggregation_role_conflicts": 0.0},
        saturation=Saturation({"kv": 0.9, "prefill": 0.2, "batch": 0.5}, "kv", 1200.0, ("example_reason",)))


def _fleet(fixture_page: str) -> FleetCollector:
    health = make_target_health(last_scrape_time=5.0, scrape_duration_seconds=0.1, errors_by_kind={"timeout": 1},
                                labels={"node": "node-a", "gpu_model": "H100"}, skipped_lines={"malformed": 1},
                                missing_series=("ttft",), last_success_time=5.0, counter_resets=1,
                                series_dropped={"series_limit": 3})
    recorder = ColdStartRecorder()
    spans, _ = cold_starts("m", "e", first_scrape=100.0, watching_since=0.0, process_start=40.0)
    recorder.record("m", spans, ["clock_skew"])
    holder = StateHolder()
    doors = (make_door_signals("tiny", "router", pending=1.0, latency=distribution(0.1, 0.2, 0.3, 0.15)),)
    holder.publish(make_state(_serving_signals(fixture_page), targets=(health,), time=5.0, doors=doors,
                              door_health=(make_door_health("router", problems={"timeout": 1}),),
                              cold_starts=recorder.summaries()))
    return FleetCollector(holder)


def _gpu() -> GpuCollector:
    fake = FakeNvml([FakeGpu("GPU-a", nvlinks=1, ecc_uncorrected=1,
                             throttle_mask=pynvml.nvmlClocksEventReasonHwThermalSlowdown),
                     FakeGpu("GPU-b", errors={"nvmlDeviceGetTemperature": pynvml.NVML_ERROR_NOT_SUPPORTED})])
    fake.gpus[0].events.append(79)
    reader = NvmlReader(lambda: fake)
    reader.collect()
    reading = reader.collect()
    process = ProcessOnGpu(reading.devices[0], 42, 2.0**30, "ns", "pod-0", "0123456789ab", "m")
    return GpuCollector("node-a", reader.catalogue, lambda: (reading, (process,)))


def _feedback(tmp_path: Path) -> FeedbackCollector:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(yaml.safe_dump({"chat": "tok"}))
    config = FeedbackConfig.model_validate({"enabled": True, "tokens_file": tokens, "allowed_apps": ["chat"],
                                            "db_path": tmp_path / "feedback.db"})
    stats = FeedbackStats(config)
    stats.record([Observation("m", "chat", "negative", 1500.0, 0.0), Observation("m", "chat", "positive", None, 0.0)])
    return FeedbackCollector(stats, lambda model: 10.0, clock=lambda: 1.0)


def _forecast() -> ForecastCollector:
    fc = ModelForecast("m", "llmobs_gbm", 4.0, 5.0, 0.9, 120.0, 0.1, 0.2, 3, "", 0.0, 2.0, "learned",
                       guard_reason="gap", fallback_counts={"gap": 1})
    service = SimpleNamespace(snapshot=lambda: {"m": fc}, last_refresh_seconds=0.01, last_refit_seconds=0.2,
                              last_refresh_time=0.0)
    return ForecastCollector(service)  # type: ignore[arg-type]


def _scaler() -> ScalerCollector:
    stats = ScalerStats()
    stats.count("GetMetrics", "OK")
    cache = SimpleNamespace(snapshot=SimpleNamespace(ready=True, models={"m": None}, built_at=1.0))
    triggers = TriggerRegistry((60.0,), lambda: {"m"})
    return ScalerCollector(stats, cache, triggers)  # type: ignore[arg-type]


def _deletion_cost() -> DeletionCostCollector:
    def patch(namespace: str, pod: str, cost: int) -> None:
        if pod == "pod-1":
            raise PatchRefused("forbidden", "HTTP 403")

    state = make_state(make_signals("m", "ns/pod-0", requests_running=1.0), make_signals("m", "ns/pod-1"),
                       targets=(scraped_target("ns/pod-0", 1.0, namespace="ns", pod="pod-0"),
                                scraped_target("ns/pod-1", 1.0, namespace="ns", pod="pod-1")))
    writer = DeletionCostWriter(lambda: state, patch, DeletionCostConfig(enabled=True))
    writer.run_once()
    return DeletionCostCollector(writer)


def _chain() -> AutoscalerChainCollector:
    from llmobs.sources.kubernetes.autoscalers import model_chains, pod_counts
    from tests.k8s.apiserver import hpa, pod, scaled_object

    chains = model_chains([scaled_object("m", fallback="True", failures=1), scaled_object("x", models=("typo",))],
                          [hpa("keda-hpa-m", desired=2, current=1, last_scale="2026-01-05T10:10:00Z")])
    pods = [pod("m-0", labels={"llmobs.io/model": "m"}), pod("m-1", labels={"llmobs.io/model": "m"}, ready=False)]
    watch = SimpleNamespace(chains=lambda: chains, keda_missing=False)
    discovery = SimpleNamespace(autoscalers=watch, pod_counts=lambda: pod_counts(pods, "llmobs.io/model"))
    return AutoscalerChainCollector(discovery, lambda: {"m"})  # type: ignore[arg-type]


def every_collector(fixture_page: str, tmp_path: Path) -> list[Collector]:
    """One of each collector llmobs registers, each with state that fills its families."""
    info = EndpointInfo("m", "e", "ns", "pod-0", "node-a", "H100", "GPU-a")
    usage = EndpointUsage("m", "e", "H100", 1, 100.0)
    return [
        _fleet(fixture_page), _gpu(), EndpointInfoCollector(lambda: [info]),
        CostCollector(CostConfig(gpu_hourly_usd={"H100": 2.0}), lambda: [usage]),
        WatchStatsCollector(lambda: {"pods": WatchStats(1, 1, 1, 1, 1, 1)}),
        _feedback(tmp_path), _forecast(), _scaler(), _deletion_cost(), _chain(),
    ]


def exposed(collectors: Iterable[Collector]) -> dict[str, tuple[str, str, set[frozenset[str]]]]:
    """family name → (type, help, label-name sets of its samples), read back from the exposition text."""
    registry = CollectorRegistry(auto_describe=False)
    for c in collectors:
        registry.register(c)
    out = {}
    for fam in text_string_to_metric_families(generate_latest(registry).decode()):
        # a histogram's bucket samples carry `le` besides the row's labels
        out[fam.name] = (fam.type, fam.documentation, {frozenset(s.labels) - {"le"} for s in fam.samples})
    return out


def test_every_emitted_family_is_its_catalogue_row_and_no_row_is_orphaned(fixture_page: str, tmp_path: Path) -> None:
    families = exposed(every_collector(fixture_page, tmp_path))
    for name, (kind, help_text, label_sets) in families.items():
        spec = metric(name)
        assert (kind, help_text) == (spec.type, spec.help), name
        assert label_sets, f"{name}: the representative state left it empty, so its labels go unchecked"
        assert label_sets == {frozenset(spec.labels)}, name
    assert {s.family_name for s in CATALOGUE} == set(families), "catalogue rows no collector emits"


def test_the_catalogue_is_data_at_the_bottom_of_the_import_graph() -> None:
    """Any layer (sources, signals, serving, agent, feedback, forecast) may read it, so it imports none of them,
    nor an exposition library."""
    import ast

    from llmobs import metrics_catalogue

    tree = ast.parse(Path(metrics_catalogue.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"__future__", "dataclasses", "typing"}, imported


def test_rows_are_well_formed() -> None:
    names = [s.name for s in CATALOGUE]
    assert len(names) == len(set(names))
    for s in CATALOGUE:
        assert s.name.startswith("llmobs_") and s.help and s.unit, s.name
        assert (s.type == "counter") == s.name.endswith("_total"), s.name
        assert len(set(s.labels)) == len(s.labels), s.name
    with pytest.raises(KeyError):
        metric("llmobs_no_such_series")
    with pytest.raises(KeyError):
        metric("llmobs_requests_waiting_count")  # only a histogram's rows have _count series
    assert metric("llmobs_replica_cold_start_seconds_bucket").name == "llmobs_replica_cold_start_seconds"


def test_signal_fields_and_scaler_signals_name_the_same_quantity(fixture_page: str) -> None:
    """A row's `signal_field` is a ModelEndpointSignals field and its `keda_signal` a scaler signal reading the
    same value, so `llmobs_requests_waiting` and KEDA's `queue_depth` cannot drift apart."""
    signals = _serving_signals(fixture_page)
    fields = set(ModelEndpointSignals.__dataclass_fields__) | {
        name for name, value in vars(ModelEndpointSignals).items() if isinstance(value, property)}
    for s in CATALOGUE:
        if s.signal_field and s.type == "gauge":
            assert s.signal_field.split(".")[0] in fields, s.name
        if s.keda_signal is None:
            continue
        assert s.keda_signal in SIGNALS, s.name
        query = parse_metadata({"model": "llama", "signal": s.keda_signal})
        # the scaler appends a hash where the query is not the plain one (forecast_request_rate: its horizon)
        assert s.keda_metric is not None and metric_name(query).startswith(s.keda_metric.replace("<model>", "llama"))
        signal = SIGNALS[s.keda_signal]
        if signal.read is not None:
            assert signal.source == "endpoint" and s.signal_field, s.name
            assert signal.read(signals) == attrgetter(s.signal_field)(signals), s.name
    served = {s.keda_signal for s in CATALOGUE if s.keda_signal}
    assert served == set(SIGNALS), f"scaler signals without a catalogue row: {set(SIGNALS) - served}"


def test_nvml_field_rows_match_the_catalogue_labels() -> None:
    fields = load_catalogue()
    for name in {f.metric for f in fields.fields}:
        assert metric(name).labels == (*GPU_LABELS, *fields.label_names(name)), name


# --- what the shipped alerts and dashboards query -----------------------------------------------------------

def committed_rules() -> list[tuple[str, str]]:
    """(record or alert name, expr) of every rule in the committed alerts/*.yaml."""
    return [(r.get("record") or r["alert"], r["expr"]) for path in sorted((ROOT / "alerts").glob("*.yaml"))
            for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]


RULES = {name: expr for name, expr in committed_rules() if ":" in name}


def queries() -> list[tuple[str, str]]:
    out = [*committed_rules(), *all_dashboard_queries()]
    out += [(f"forecast history query {k}", q.format(model="m")) for k, q in DEFAULT_PROMQL.items()]
    for where, query in all_variable_queries():
        m = re.fullmatch(r"label_values\((.+), (\w+)\)", query)
        assert m, f"{where}: {query}"
        out.append((where, f"count by ({m.group(2)}) ({m.group(1)})"))  # the label it lists must exist
    return out


def _selectors(node: object) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []
    promql_parser.walk(node, lambda n: found.append(n) if isinstance(n, promql_parser.VectorSelector) else None)
    return found


def histogram_part(name: str) -> tuple[str, str]:
    """(`llmobs_x_seconds`, `bucket`) for a histogram's `_bucket`/`_count`/`_sum` series; (name, "") otherwise."""
    for part in ("bucket", "count", "sum"):
        base = name.removesuffix(f"_{part}")
        if base != name:
            try:
                if metric(base).type == "histogram":
                    return base, part
            except KeyError:
                pass
    return name, ""


def labels_of(name: str) -> set[str]:
    """What a selected series may carry: a catalogue row's labels, or everything its rule's inputs carry."""
    if name == "up":
        return set()
    if ":" in name:
        return available(promql_parser.parse(RULES[name]))
    base, part = histogram_part(name)
    return set(metric(base).labels) | ({"le"} if part == "bucket" else set())


def available(node: object) -> set[str]:
    """Labels any series under `node` may carry (a union: enough to catch a label no input has)."""
    return set(TARGET_LABELS_ADDED_BY_PROMETHEUS).union(*(labels_of(v.name) for v in _selectors(node) if v.name))


def unknown_names_and_labels(expr: str) -> list[str]:
    problems: list[str] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            name = node.name
            if ":" in name and name not in RULES:
                problems.append(f"recording rule {name} is not defined")
                return
            if ":" not in name and name != "up":
                try:
                    metric(histogram_part(name)[0])
                except KeyError:
                    problems.append(f"{name} is not in the catalogue")
                    return
            allowed = labels_of(name) | TARGET_LABELS_ADDED_BY_PROMETHEUS | {"__name__"}
            problems.extend(f"{name}{{{m.name}}}: no such label" for m in node.matchers.matchers
                            if m.name not in allowed)
        grouping: list[str] = []
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            grouping = list(node.modifier.labels)
        if isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            matching = node.modifier.matching
            grouping = [*(matching.labels if matching is not None else ()), *(node.modifier.group_labels or ())]
        if grouping:
            have = available(node)
            problems.extend(f"`{label}` is on no series of {str(node)[:80]}"
                            for label in grouping if label not in have)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return problems


def test_alerts_and_dashboards_query_only_catalogue_names_and_labels() -> None:
    checked = queries()
    assert len(checked) > 80
    problems = [f"{where}: {p}" for where, expr in checked for p in unknown_names_and_labels(expr)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("expr, problem", [
    ("sum(rate(llmobs_requests_totl[5m]))", "llmobs_requests_totl is not in the catalogue"),
    ('llmobs_ttft_seconds{quantil="0.9"}', "{quantil}: no such label"),
    ("sum by (gpu_uuid) (llmobs_request_rate)", "`gpu_uuid` is on no series"),
    ("llmobs_request_rate * on (model, gpu) group_left llmobs_endpoint_info", "`gpu` is on no series"),
    ("model:nothing:rate5m", "recording rule model:nothing:rate5m is not defined"),
])
def test_the_query_check_finds_unknown_names_and_labels(expr: str, problem: str) -> None:
    assert any(problem in p for p in unknown_names_and_labels(expr)), unknown_names_and_labels(expr)
    assert not unknown_names_and_labels('sum by (model, job) (rate(llmobs_requests_total{reason="stop"}[5m]))')


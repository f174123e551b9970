"""Grafana dashboards: generated == committed, stable uids, datasource variable, queries parse offline."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import promql_parser
import pytest

from alerts.rules import all_recording_rule_exprs
from dashboards.build import DASHBOARDS, render, render_layouts
from dashboards.queries import (
    EXPECTED_EMPTY,
    all_dashboard_queries,
    all_variable_queries,
    dashboard_files,
    expected_empty_reason,
    substitute,
)
from llmobs.metrics_catalogue import CATALOGUE
from tests.conftest import REPO
from tests.promql_names import selected_metrics

ROOT = REPO
DASH_DIR = ROOT / "dashboards"
UIDS = {"llmobs-fleet", "llmobs-model", "llmobs-gpu", "llmobs-autoscaling", "llmobs-feedback"}


def load(name: str) -> dict:
    return json.loads((DASH_DIR / name).read_text())


def panels(d: dict) -> list[dict]:
    out = []
    for p in d["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def test_committed_dashboards_match_generator():
    rendered = render()
    assert sorted(rendered) == sorted(p.name for p in dashboard_files())
    for name, text in rendered.items():
        assert (DASH_DIR / name).read_text() == text, f"{name} is stale: run scripts/generate_dashboards.py"


def test_committed_layout_pictures_match_generator():
    for name, svg in render_layouts().items():
        assert (DASH_DIR / name).read_text() == svg, f"dashboards/{name} is stale: run scripts/generate_dashboards.py"
        for title in (p["title"] for p in panels(load(name.removeprefix("layouts/").replace(".svg", ".json")))):
            assert title.split()[0] in svg


def test_generator_check_mode_agrees():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "generate_dashboards.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_uids_are_stable_and_panel_ids_unique():
    assert {load(n)["uid"] for n in DASHBOARDS} == UIDS
    for name in DASHBOARDS:
        ids = [p["id"] for p in panels(load(name))]
        assert len(ids) == len(set(ids)), name


def test_datasource_is_a_variable_and_model_endpoint_node_are_variables():
    for name in DASHBOARDS:
        d = load(name)
        variables = {v["name"]: v for v in d["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        for var in ("model", "endpoint", "node"):
            assert variables[var]["type"] == "query", (name, var)
            assert variables[var]["datasource"]["uid"] == "${datasource}"
            assert variables[var]["includeAll"] and variables[var]["allValue"] == ".*"
        for p in panels(d):
            if p["type"] == "row":
                continue
            assert p["datasource"]["uid"] == "${datasource}", (name, p["title"])
            for t in p["targets"]:
                assert t["datasource"]["uid"] == "${datasource}", (name, p["title"])


def test_panels_fit_the_grid_without_overlap():
    for name in DASHBOARDS:
        cells: set[tuple[int, int]] = set()
        for p in panels(load(name)):
            g = p["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24, (name, p["title"])
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, (name, p["title"])
                    cells.add((x, y))


@pytest.mark.parametrize("subs", [{}, {"model": "meta-llama/Llama-3.1-8B", "endpoint": "10.0.0.1:8000",
                                       "node": "gpu-node-1", "__rate_interval": "2m"}])
def test_every_panel_query_parses_offline(subs):
    queries = all_dashboard_queries(subs)
    assert len(queries) > 50
    for where, expr in queries:
        assert "$" not in expr, f"{where}: unsubstituted variable in {expr}"
        try:
            promql_parser.parse(expr)
        except ValueError as exc:
            pytest.fail(f"{where}: {exc}\n{expr}")


def test_every_recording_rule_parses_offline():
    for where, expr in all_recording_rule_exprs():
        try:
            promql_parser.parse(expr)
        except ValueError as exc:
            pytest.fail(f"{where}: {exc}\n{expr}")


def test_variable_queries_select_valid_series():
    for where, query in all_variable_queries():
        m = re.fullmatch(r"label_values\((.+), (\w+)\)", query)
        assert m, f"{where}: {query}"
        promql_parser.parse(m.group(1))


def test_panels_query_only_documented_metrics_or_existing_recording_rules():
    documented = set(re.findall(r"`(llmobs_[a-z0-9_]+)", (ROOT / "docs" / "metrics.md").read_text()))
    records = {name for name, _ in all_recording_rule_exprs()}
    known = documented | records | {"up"}
    known |= {f"{s.name}_{part}" for s in CATALOGUE if s.type == "histogram" and s.name in documented
              for part in ("bucket", "sum", "count")}  # a histogram's series, documented under its name
    for where, expr in all_dashboard_queries():
        unknown = selected_metrics(expr) - known
        assert not unknown, f"{where} queries {unknown}: neither in docs/metrics.md nor a recording rule"


def _metrics_of(uid: str) -> set[str]:
    return set().union(*(selected_metrics(e) for w, e in all_dashboard_queries() if w.startswith(uid + " /")))


def test_dashboards_cover_what_the_issue_asks_for():
    model = _metrics_of("llmobs-model")
    for metric in ("llmobs_ttft_seconds", "llmobs_itl_seconds", "llmobs_e2e_latency_seconds",
                   "llmobs_prompt_length_tokens", "llmobs_generation_length_tokens",
                   "llmobs_kv_cache_utilization_ratio", "llmobs_requests_waiting",
                   "llmobs_prompt_tokens_rate", "llmobs_generation_tokens_rate",
                   "llmobs_prefix_cache_hit_ratio"):
        assert metric in model, metric
    model_exprs = [e for w, e in all_dashboard_queries() if w.startswith("llmobs-model /")]
    assert any("max by (node)" in e for e in model_exprs), "no latency by node"
    gpu = _metrics_of("llmobs-gpu")
    assert "llmobs_endpoint_info" in gpu and "llmobs_gpu_memory_used_bytes" in gpu
    scaling = _metrics_of("llmobs-autoscaling")
    assert {"llmobs_forecast_request_rate", "llmobs_desired_replicas", "model:llmobs_replicas_up:count",
            "method_code:llmobs_scaler_requests:rate5m"} <= scaling
    assert "model:llmobs_feedback_negative:ratio" in _metrics_of("llmobs-feedback")


def test_substitute_handles_all_grafana_forms_and_rejects_unknown_variables():
    assert substitute('x{a=~"$model"}[$__rate_interval]') == 'x{a=~".*"}[1m]'
    assert substitute('x{a=~"${model}",b="${node:regex}"}', {"model": "m"}) == 'x{a=~"m",b=".*"}'
    with pytest.raises(KeyError):
        substitute("x{a=\"$nope\"}")


def test_expected_empty_list_names_only_families_the_panels_use():
    # Every entry must still match some shipped query; delete entries once their family is exported.
    exprs = [e for _, e in all_dashboard_queries()] + [e for _, e in all_recording_rule_exprs()]
    for needle in EXPECTED_EMPTY:
        assert any(needle in e for e in exprs), needle
    assert expected_empty_reason("llmobs_requests_running") is None


def test_every_latency_slo_has_panels_beside_ttft():
    """Each SLO the rules alert on (TTFT, TPOT, E2E) is on the fleet and model dashboards, read from the same
    recording rules as its burn-rate alert, and the model dashboard shows the snapped thresholds counted at."""
    model, fleet = _metrics_of("llmobs-model"), _metrics_of("llmobs-fleet")
    for slo in ("ttft", "tpot", "e2e"):
        assert f"model:llmobs_{slo}_slo_errors:ratio_rate1h" in fleet, slo
        for window in ("5m", "1h", "6h"):
            assert f"model:llmobs_{slo}_slo_errors:ratio_rate{window}" in model, (slo, window)
        assert f"llmobs_{slo}_slo_threshold_seconds" in model, slo

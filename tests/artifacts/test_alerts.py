"""Prometheus rules: generated == committed, promtool-clean, unit-tested per alert, runbook per alert."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys

import promql_parser
import pytest
import yaml

from alerts.config import DEFAULT, runbook_anchor
from alerts.rules import (
    ALERTS_FILE,
    RECORDING_FILE,
    alert_groups,
    alert_names,
    all_alert_exprs,
    all_recording_rule_exprs,
    recording_groups,
    render,
)
from llmobs.metrics_catalogue import CATALOGUE
from tests.conftest import REPO
from tests.promql_names import selected_metrics

ROOT = REPO
ALERTS_DIR = ROOT / "alerts"
RULE_FILES = [ALERTS_DIR / RECORDING_FILE, ALERTS_DIR / ALERTS_FILE]
UNIT_TESTS = sorted((ALERTS_DIR / "tests").glob("*.yaml"))
RUNBOOKS = ROOT / "docs" / "runbooks.md"
METRICS_DOC = ROOT / "docs" / "metrics.md"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is not installed (make prometheus installs Debian's)")
        pytest.skip("promtool is not installed (make prometheus)")
    return path


# --- generation -----------------------------------------------------------------------------------


def test_committed_rule_files_match_generator():
    for name, text in render().items():
        committed = (ALERTS_DIR / name).read_text()
        assert committed == text, f"alerts/{name} is stale: run scripts/generate_rules.py"


def test_generator_check_mode_agrees():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "generate_rules.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_config_is_the_source_of_thresholds_and_labels():
    c = dataclasses.replace(DEFAULT, kv_cache_saturated_ratio=0.95, group_labels=("cluster",),
                            ttft_slo_target=0.999, exporter_selector='job="obs"',
                            runbook_url_pattern="https://runbooks.example/{anchor}")
    text = render(c)
    alerts, recording = text[ALERTS_FILE], text[RECORDING_FILE]
    assert "model:llmobs_kv_cache_utilization_max_ratio:max > 0.95" in alerts
    assert "> 0.0144" in alerts  # 14.4 × (1 − 0.999)
    assert 'up{job="obs"}' in alerts
    assert "https://runbooks.example/llmobskvcachesaturated" in alerts
    assert "by (cluster, model)" in recording
    assert "by (model)" not in recording.replace("by (cluster, model)", "")


# --- shape ----------------------------------------------------------------------------------------

REQUIRED_ALERTS = {
    "LlmobsKVCacheSaturated", "LlmobsQueueBuilding", "LlmobsTTFTErrorBudgetBurn", "LlmobsTPOTErrorBudgetBurn",
    "LlmobsE2EErrorBudgetBurn", "LlmobsITLDegraded",
    "LlmobsE2ELatencyHigh", "LlmobsPreemptionStorm", "LlmobsHighErrorRatio", "LlmobsTargetDown",
    "LlmobsVLLMSeriesMissing", "LlmobsExporterDown", "LlmobsScrapeCycleSlow", "LlmobsGPUXidCritical",
    "LlmobsGPUXidErrors", "LlmobsGPUUncorrectableECC", "LlmobsGPUThrottling", "LlmobsGPUMemoryNearFull",
    "LlmobsNegativeFeedbackSpike", "LlmobsScalerStale", "LlmobsForecastErrorHigh",
    # the scaling chain
    "LlmobsAutoscalerInert", "LlmobsScaleUpNotReady", "LlmobsQueueNotDraining", "LlmobsScalerFallbackActive",
}


def test_every_alert_the_issue_asks_for_exists():
    assert set(alert_names()) == REQUIRED_ALERTS


@pytest.mark.parametrize("slo, alert", [("ttft", "LlmobsTTFTErrorBudgetBurn"), ("tpot", "LlmobsTPOTErrorBudgetBurn"),
                                        ("e2e", "LlmobsE2EErrorBudgetBurn")])
def test_burn_rate_windows_are_the_multiwindow_multiburn_set(slo: str, alert: str):
    burns = [r for g in alert_groups() for r in g.rules if r.alert == alert]
    got = {(r.labels["long"], r.labels["short"], r.labels["severity"], r.for_) for r in burns}
    assert got == {("1h", "5m", "critical", "2m"), ("6h", "30m", "critical", "15m"), ("3d", "6h", "warning", "3h")}
    exprs = {r.labels["long"]: r.expr for r in burns}
    assert "> 0.144" in exprs["1h"] and "> 0.06" in exprs["6h"] and "> 0.01" in exprs["3d"]
    for long, short in (("1h", "5m"), ("6h", "30m"), ("3d", "6h")):
        assert f"model:llmobs_{slo}_slo_errors:ratio_rate{long} >" in exprs[long]
        assert f"model:llmobs_{slo}_slo_errors:ratio_rate{short} >" in exprs[long]


def test_each_slo_has_its_own_target_and_threshold():
    c = dataclasses.replace(DEFAULT, tpot_slo_target=0.995, tpot_slo_threshold_seconds=0.05,
                            e2e_slo_threshold_seconds=60.0)
    burns = {(r.alert, r.labels["long"]): r for g in alert_groups(c) for r in g.rules if "long" in r.labels}
    assert "> 0.072" in burns["LlmobsTPOTErrorBudgetBurn", "1h"].expr  # 14.4 × (1 − 0.995)
    assert "0.05s per output token" in burns["LlmobsTPOTErrorBudgetBurn", "1h"].annotations["description"]
    assert "> 0.144" in burns["LlmobsTTFTErrorBudgetBurn", "1h"].expr  # untouched
    assert "complete within 60s" in burns["LlmobsE2EErrorBudgetBurn", "3d"].annotations["description"]


def test_every_alert_has_severity_annotations_and_runbook_from_the_one_pattern():
    prefix = DEFAULT.runbook_url_pattern.split("{anchor}")[0]
    for g in alert_groups():
        for r in g.rules:
            assert r.labels.get("severity") in {"critical", "warning", "info"}, r.alert
            assert r.annotations.get("summary") and r.annotations.get("description"), r.alert
            url = r.annotations["runbook_url"]
            assert url == prefix + runbook_anchor(r.alert), r.alert


def test_recording_rule_names_follow_level_metric_operation():
    pattern = re.compile(r"^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$")
    for name, _ in all_recording_rule_exprs():
        assert pattern.match(name), name


def documented_metrics() -> set[str]:
    return set(re.findall(r"`(llmobs_[a-z0-9_]+)", METRICS_DOC.read_text()))


def test_rules_query_only_documented_metrics_or_recording_rules():
    documented = documented_metrics()
    histogram_series = {f"{spec.name}_{part}" for spec in CATALOGUE if spec.type == "histogram"
                        and spec.name in documented for part in ("bucket", "count", "sum")}
    known = documented | histogram_series | {name for name, _ in all_recording_rule_exprs()} | {"up"}
    for where, expr in all_recording_rule_exprs() + all_alert_exprs():
        unknown = selected_metrics(expr) - known
        assert not unknown, f"{where} queries {unknown}, not in docs/metrics.md"


def test_every_expression_parses_offline():
    for where, expr in all_recording_rule_exprs() + all_alert_exprs():
        try:
            promql_parser.parse(expr)
        except ValueError as exc:
            pytest.fail(f"{where}: {exc}\n{expr}")


# --- promtool ---------------------------------------------------------------------------------------


def test_promtool_check_rules_is_clean():
    proc = subprocess.run([promtool(), "check", "rules", *map(str, RULE_FILES)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING" not in proc.stdout + proc.stderr


def test_promtool_unit_tests_pass():
    assert UNIT_TESTS, "no promtool unit tests under alerts/tests"
    proc = subprocess.run([promtool(), "test", "rules", *map(str, UNIT_TESTS)],
                          capture_output=True, text=True, timeout=60, cwd=ALERTS_DIR)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _unit_test_docs() -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in UNIT_TESTS]


def test_every_alert_has_a_firing_and_a_silent_unit_test():
    firing: set[str] = set()
    silent: set[str] = set()
    for doc in _unit_test_docs():
        for group in doc["tests"]:
            for case in group.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    names = set(alert_names())
    assert names - firing == set(), "alerts never tested firing"
    assert names - silent == set(), "alerts never tested silent/resolved"


def _seconds(duration: str) -> int:
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    parts = re.findall(r"(\d+)([dhms])", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * units[u] for n, u in parts)


def test_every_alert_is_tested_to_resolve_after_firing():
    resolves: set[str] = set()
    for doc in _unit_test_docs():
        for group in doc["tests"]:
            cases = group.get("alert_rule_test", [])
            for fired in (c for c in cases if c.get("exp_alerts")):
                if any(c["alertname"] == fired["alertname"] and not c.get("exp_alerts")
                       and _seconds(c["eval_time"]) > _seconds(fired["eval_time"]) for c in cases):
                    resolves.add(fired["alertname"])
    assert set(alert_names()) - resolves == set(), "alerts never tested to resolve after firing"


def test_unit_tests_load_both_rule_files_and_order_every_group():
    # promtool 2.42 evaluates groups missing from group_eval_order in random order, which makes
    # alerts that read recording rules flaky by one step: every file must list every group.
    groups = [g.name for g in recording_groups()] + [g.name for g in alert_groups()]
    for path, doc in zip(UNIT_TESTS, _unit_test_docs(), strict=True):
        assert doc["rule_files"] == [f"../{RECORDING_FILE}", f"../{ALERTS_FILE}"], path.name
        assert doc.get("group_eval_order") == groups, path.name


# --- runbooks ---------------------------------------------------------------------------------------


def _runbook_sections() -> dict[str, str]:
    text = RUNBOOKS.read_text()
    parts = re.split(r"^## +(\S+) *$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_every_alert_has_a_runbook_section_with_meaning_confirm_and_action():
    sections = _runbook_sections()
    for name in alert_names():
        assert name in sections, f"docs/runbooks.md has no '## {name}' section"
        body = sections[name]
        for heading in ("### Meaning", "### Confirm", "### Action"):
            assert heading in body, f"runbook {name} lacks {heading}"
        assert "```promql" in body, f"runbook {name} gives no PromQL to confirm with"
    assert set(sections) - set(alert_names()) == set(), "runbook sections for alerts that do not exist"


def test_runbook_promql_parses():
    for name, body in _runbook_sections().items():
        for block in re.findall(r"```promql\n(.*?)```", body, flags=re.S):
            for query in [q for q in block.strip().split("\n\n") if q.strip()]:
                q = "\n".join(line for line in query.splitlines() if not line.lstrip().startswith("#"))
                try:
                    promql_parser.parse(q)
                except ValueError as exc:
                    pytest.fail(f"runbook {name}: {exc}\n{q}")

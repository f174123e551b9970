"""Every PromQL expression llmobs ships, for offline syntax checks and the live end-to-end test.

    from dashboards.queries import all_dashboard_queries, all_recording_rule_exprs, EXPECTED_EMPTY
    for where, expr in all_dashboard_queries():          # variables substituted
        ...

Queries are read from the committed ``dashboards/*.json`` (what users import), so the drift test in
tests/artifacts/test_dashboards.py is what ties them to the generator.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from alerts.rules import all_alert_exprs, all_recording_rule_exprs

__all__ = [
    "DEFAULT_SUBSTITUTIONS",
    "EXPECTED_EMPTY",
    "all_alert_exprs",
    "all_dashboard_queries",
    "all_recording_rule_exprs",
    "all_variable_queries",
    "dashboard_files",
    "expected_empty_reason",
    "substitute",
]

DASHBOARD_DIR = Path(__file__).resolve().parent

# What a Grafana user sees with every variable on "All" (allValue ".*") and Grafana's own macros.
DEFAULT_SUBSTITUTIONS: dict[str, str] = {
    "model": ".*",
    "endpoint": ".*",
    "node": ".*",
    "datasource": "prometheus",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
}

# Metric families that `llmobs demo` does not export, with the reason: against the demo alone, a query
# reading one of them returns no series. tests/e2e/test_e2e_prometheus_dashboards.py feeds them from a
# labelled synthetic page instead, and fails as soon as the demo exporter exports one of them (then its
# entry goes). Keys are substrings of the query text.
EXPECTED_EMPTY: dict[str, str] = {
    "llmobs_gpu_": "the node agent (`llmobs agent`) exports the GPU (NVML) series; the demo fleet has no GPUs",
    "gpu:llmobs_gpu_": "recording rule over the node agent's GPU (NVML) series, which the demo has not",
    "llmobs_spec_decode_": "speculative decoding: the demo's replicas run no draft model",
    "llmobs_kv_transfer_": "prefill/decode disaggregation (KV connector, NIXL): the demo's replicas are `mixed`",
    "llmobs_disaggregation_role_conflicts_total": "counted only for targets given a prefill or decode role; the "
                                                  "demo's replicas are `mixed`",
    "llmobs_hpa_": "the scaling chain is read from Kubernetes HPAs (kubernetes.watch_autoscalers); the demo has none",
    "llmobs_scaledobject_": "the scaling chain is read from KEDA ScaledObjects; the demo has none",
    "llmobs_replicas": "pods per model come from Kubernetes discovery; the demo's replicas are not pods",
}


def expected_empty_reason(expr: str) -> str | None:
    for needle, reason in EXPECTED_EMPTY.items():
        if needle in expr:
            return reason
    return None


_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def substitute(expr: str, substitutions: Mapping[str, str] | None = None) -> str:
    """Replace Grafana `$var` / `${var}` / `${var:fmt}` references; unknown variables raise KeyError."""
    subs = {**DEFAULT_SUBSTITUTIONS, **(substitutions or {})}

    def repl(m: re.Match[str]) -> str:
        return subs[m.group(1) or m.group(2)]

    return _VAR.sub(repl, expr)


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARD_DIR.glob("*.json"))


def _panels(panels: list[dict]) -> Iterator[dict]:
    for p in panels:
        yield p
        yield from _panels(p.get("panels", []))


def all_dashboard_queries(substitutions: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """(where, expr) for every panel target of every committed dashboard, variables substituted.

    `where` is "<dashboard uid> / <panel title> / <refId>".
    """
    out: list[tuple[str, str]] = []
    for path in dashboard_files():
        d = json.loads(path.read_text())
        for p in _panels(d.get("panels", [])):
            for t in p.get("targets", []):
                if "expr" in t:
                    out.append((f"{d['uid']} / {p['title']} / {t['refId']}", substitute(t["expr"], substitutions)))
    return out


def all_variable_queries(substitutions: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """(where, query) for every `label_values(...)` template variable (Grafana syntax, not PromQL)."""
    out: list[tuple[str, str]] = []
    for path in dashboard_files():
        d = json.loads(path.read_text())
        for v in d.get("templating", {}).get("list", []):
            if v.get("type") == "query":
                out.append((f"{d['uid']} / ${v['name']}", substitute(v["query"], substitutions)))
    return out

"""End to end on real parts: Debian's Prometheus scrapes `llmobs demo` with llmobs's rules loaded, and
every dashboard panel query, recording rule and template variable returns series.

The demo runs the forecaster, the KEDA scaler (polled by a simulated KEDA) and the feedback API (fed by
simulated users), so those panels read real series. It does not export the GPU families (``EXPECTED_EMPTY`` in
``dashboards/queries.py`` lists them with the reason). So that the panels and rules reading them are
still run for real — joins against the demo's own models and endpoints included — a second scrape
target serves a *synthetic* page with those families under their documented names and labels (see
``gpu_families_page``). A separate test fails as soon as the demo exporter itself exports one of the
listed families: then its entry, and its part of the synthetic page, must go.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from alerts.config import DEFAULT
from alerts.rules import render
from dashboards.queries import (
    EXPECTED_EMPTY,
    all_dashboard_queries,
    all_recording_rule_exprs,
    all_variable_queries,
    expected_empty_reason,
)
from tests.conftest import REPO
from tests.promserver import PrometheusServer

ROOT = REPO
pytestmark = [pytest.mark.prometheus, pytest.mark.timeout(120)]

DEADLINE_S = 40.0  # from Prometheus ready to every query answering


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not installed (make prometheus installs Debian's)")
        pytest.skip(f"{name} is not installed (make prometheus)")
    return path


class _Proc:
    """A child process whose output is drained into memory (so its pipe never fills)."""

    def __init__(self, argv: list[str], **kw) -> None:
        self.lines: list[str] = []
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
        self._t = threading.Thread(target=self._drain, daemon=True)
        self._t.start()

    def _drain(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.lines.append(line)

    def output(self) -> str:
        return "".join(self.lines[-60:])

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self._t.join(5)
        if self.p.stdout is not None:
            self.p.stdout.close()


def _demo_endpoints(page: str) -> list[dict[str, str]]:
    """(model, endpoint, node, gpu_model, gpu_uuid) of every replica, from the demo exporter's endpoint info."""
    for fam in text_string_to_metric_families(page):
        if fam.name == "llmobs_endpoint_info":
            return [dict(s.labels) for s in fam.samples]
    return []


def gpu_families_page(endpoints: list[dict[str, str]], now: float) -> str:
    """SYNTHETIC series for the node agent's GPU families (docs/metrics.md), one GPU per demo
    replica, and for the serving families of features the demo does not run (dashboards.queries.EXPECTED_EMPTY),
    so that the panels reading them can be run. Values are made up; names and labels are not."""
    lines: list[str] = []
    for e in endpoints:
        gpu = (f'node="{e["node"]}",gpu_uuid="{e["gpu_uuid"]}",gpu_model="{e["gpu_model"]}"')
        lines += [
            f"llmobs_gpu_memory_used_bytes{{{gpu}}} 7.2e10",
            f"llmobs_gpu_memory_total_bytes{{{gpu}}} 8.0e10",
            f'llmobs_gpu_throttle_reasons{{{gpu},reason="hw_thermal"}} 0',
            f'llmobs_gpu_throttle_reasons{{{gpu},reason="sw_power_cap"}} 1',
            f'llmobs_gpu_xid_errors_total{{{gpu},xid="13"}} 0',
            f'llmobs_gpu_ecc_errors_total{{{gpu},type="corrected"}} 0',
            f'llmobs_gpu_ecc_errors_total{{{gpu},type="uncorrected"}} 0',
            f"llmobs_gpu_energy_joules_total{{{gpu}}} {300 * now:.3f}",  # a board drawing 300 W
        ]
        # ... and for the serving families of features the demo's replicas do not run (speculative decoding,
        # prefill/decode disaggregation): the same labels as the exporter writes them
        serving = f'model="{e["model"]}",endpoint="{e["endpoint"]}",node="{e["node"]}",gpu_model="{e["gpu_model"]}"'
        lines += [
            f"llmobs_spec_decode_acceptance_ratio{{{serving}}} 0.7",
            f'llmobs_spec_decode_acceptance_by_position{{{serving},position="0"}} 0.8',
            f'llmobs_kv_transfer_time_seconds{{{serving},role="decode",quantile="0.5"}} 0.02',
            f'llmobs_kv_transfer_time_seconds{{{serving},role="decode",quantile="0.99"}} 0.08',
            f'llmobs_kv_transfer_failed_rate{{{serving},role="decode"}} 0',
            f"llmobs_disaggregation_role_conflicts_total{{{serving}}} 0",
        ]
    # ... and for the scaling chain (HPAs, ScaledObjects and pods from Kubernetes), one chain per demo model
    for model in sorted({e["model"] for e in endpoints}):
        so = f'model="{model}",scaledobject="{model}"'
        hpa = f'{so},hpa="keda-hpa-{model}"'
        lines += [
            f"llmobs_hpa_desired_replicas{{{hpa}}} 2",
            f"llmobs_hpa_current_replicas{{{hpa}}} 2",
            f"llmobs_hpa_last_scale_timestamp_seconds{{{hpa}}} {now - 600:.0f}",
            f'llmobs_hpa_condition{{{hpa},condition="ScalingActive",status="True"}} 1',
            f'llmobs_scaledobject_condition{{{so},condition="Ready",status="True"}} 1',
            f"llmobs_scaledobject_failing_triggers{{{so}}} 0",
            f"llmobs_scaledobject_unknown_model{{{so}}} 0",
            f'llmobs_replicas{{model="{model}"}} 2',
            f'llmobs_replicas_ready{{model="{model}"}} 2',
        ]
    return "\n".join(lines) + "\n"


class _GpuFamilies:
    """Loopback HTTP server answering /metrics with ``gpu_families_page``."""

    def __init__(self, endpoints: list[dict[str, str]]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = gpu_families_page(endpoints, time.time()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._t = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._t.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._t.join(5)


@dataclass
class Stack:
    prometheus: str
    exporter: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    _binary("prometheus")
    tmp = tmp_path_factory.mktemp("e2e-prom")

    demo = _Proc([sys.executable, "-m", "llmobs.cli", "demo", "--port", "0", "--scaler-port", "0",
                  "--feedback-port", "0", "--interval", "1",
                  "--window", "10", "--speedup", "10", "--no-tui"], cwd=ROOT)
    prom = gpu_page = None
    try:
        exporter_port = None
        t0 = time.monotonic()
        while exporter_port is None and time.monotonic() - t0 < 30:
            m = re.search(r"exporter: http://127\.0\.0\.1:(\d+)/metrics", "".join(demo.lines))
            if m:
                exporter_port = int(m.group(1))
            elif demo.p.poll() is not None:
                pytest.fail(f"llmobs demo exited:\n{demo.output()}")
            time.sleep(0.2)
        assert exporter_port, f"llmobs demo did not print its exporter port:\n{demo.output()}"
        exporter = f"http://127.0.0.1:{exporter_port}"

        endpoints: list[dict[str, str]] = []
        while not endpoints and time.monotonic() - t0 < 30:
            endpoints = _demo_endpoints(httpx.get(f"{exporter}/metrics", timeout=5).text)
            time.sleep(0.5)
        assert endpoints, "the demo exporter never exported llmobs_endpoint_info"
        # A replica restarts: a start llmobs watches, so the cold-start panel has a measurement to show.
        fleet = re.search(r"at (http://127\.0\.0\.1:\d+)/replicas/", "".join(demo.lines))
        assert fleet, f"llmobs demo did not print its fleet URL:\n{demo.output()}"
        restart = endpoints[0]["endpoint"]
        httpx.post(f"{fleet.group(1)}/replicas/{restart}/restart", timeout=5).raise_for_status()
        gpu_page = _GpuFamilies(endpoints)

        # The same rules as alerts/*.yaml, evaluated every second instead of every 30s, with one alert on a
        # hair trigger (any KV use, for 2s) so that it goes pending → firing on the real server. The
        # thresholds themselves are proven by the promtool unit tests (tests/artifacts/test_alerts.py).
        rule_files = []
        e2e_config = dataclasses.replace(DEFAULT, rule_interval="1s", kv_cache_saturated_ratio=0.0,
                                         kv_cache_saturated_for="2s")
        for name, text in render(e2e_config).items():
            (tmp / name).write_text(text)
            rule_files.append(tmp / name)
        job = re.fullmatch(r'job="([^"]+)"', DEFAULT.exporter_selector)
        assert job, "the e2e test expects exporter_selector to be a job= matcher"
        prom = PrometheusServer(tmp / "prom", [f"127.0.0.1:{exporter_port}", f"127.0.0.1:{gpu_page.port}"],
                                rule_files=rule_files, job=job.group(1))
        prom.start(timeout=30)
        # Every test starts from a Prometheus that has scraped both targets and evaluated the rules.
        prom.wait_for("llmobs_requests_running", timeout=30)
        prom.wait_for("llmobs_desired_replicas", timeout=30)
        prom.wait_for("model:llmobs_request_rate:sum", timeout=30)
        yield Stack(prometheus=prom.url, exporter=exporter)
    finally:
        if prom is not None:
            prom.stop()
        if gpu_page is not None:
            gpu_page.stop()
        demo.stop()


def _query(base: str, expr: str) -> list[dict]:
    r = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=5)
    body = r.json()
    assert body.get("status") == "success", f"{expr}: {body}"
    return body["data"]["result"]


def _all_queries() -> list[tuple[str, str]]:
    return ([(f"panel {w}", e) for w, e in all_dashboard_queries()]
            + [(f"rule {name}", expr) for name, expr in all_recording_rule_exprs()]
            + [(f"recorded {name}", name) for name, _ in all_recording_rule_exprs()])


def test_every_panel_and_recording_rule_query_returns_series(stack):
    pending = set(_all_queries())
    t0 = time.monotonic()
    while pending and time.monotonic() - t0 < DEADLINE_S:
        pending = {(w, e) for w, e in pending if not _query(stack.prometheus, e)}
        if pending:
            time.sleep(2)
    assert not pending, "no series for:\n" + "\n".join(
        f"  {w}: {e}" + (f"  [not in the demo: {expected_empty_reason(e)}]" if expected_empty_reason(e) else "")
        for w, e in sorted(pending))


def test_expected_empty_families_are_not_exported_by_the_demo(stack):
    # The demo's own page, not Prometheus (which also scrapes the synthetic page).
    # (a family with no sample, only its HELP and TYPE lines, is not exported data)
    names = {fam.name for fam in text_string_to_metric_families(httpx.get(f"{stack.exporter}/metrics").text)
             if fam.samples}
    names |= {n + "_total" for n in names}
    now_exported = {needle: reason for needle, reason in EXPECTED_EMPTY.items()
                    if needle.startswith("llmobs_") and any(n.startswith(needle) for n in names)}
    assert not now_exported, (
        "the demo exporter now exports these families: remove them from dashboards.queries.EXPECTED_EMPTY "
        f"and from gpu_families_page in this file: {now_exported}")


def test_only_expected_empty_families_come_from_the_synthetic_page():
    endpoint = {"model": "m", "endpoint": "e", "node": "n", "gpu_model": "g", "gpu_uuid": "GPU-1"}
    page = gpu_families_page([endpoint], 0.0)
    for fam in text_string_to_metric_families(page):
        assert expected_empty_reason(fam.name) is not None, f"{fam.name} is not an expected-empty family"


def test_variables_have_values(stack):
    for where, query in all_variable_queries():
        m = re.fullmatch(r"label_values\((.+), (\w+)\)", query)
        assert m, query
        r = httpx.get(f"{stack.prometheus}/api/v1/series", params={"match[]": m.group(1)}, timeout=5).json()
        values = {s.get(m.group(2)) for s in r["data"]} - {None, ""}
        assert values, f"{where}: {query} has no values"


def test_rules_evaluate_without_errors(stack):
    # Catches what a syntax check cannot: many-to-many joins, type errors at evaluation time.
    time.sleep(2)
    groups = httpx.get(f"{stack.prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    assert {g["name"] for g in groups} >= {"llmobs.serving.rules", "llmobs.serving"}
    bad = [(r.get("name"), r.get("lastError")) for g in groups for r in g["rules"] if r.get("health") == "err"]
    assert not bad, bad


def test_an_alert_fires_with_its_labels_and_annotations(stack):
    firing: list[dict] = []
    t0 = time.monotonic()
    while not firing and time.monotonic() - t0 < 20:
        alerts = httpx.get(f"{stack.prometheus}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        firing = [a for a in alerts
                  if a["labels"]["alertname"] == "LlmobsKVCacheSaturated" and a["state"] == "firing"]
        time.sleep(1)
    assert firing, "LlmobsKVCacheSaturated never fired on the hair-trigger config"
    a = firing[0]
    assert a["labels"]["severity"] == "warning" and a["labels"]["model"]
    assert a["annotations"]["runbook_url"].endswith("/docs/runbooks.md#llmobskvcachesaturated")
    assert a["labels"]["model"] in a["annotations"]["description"]
    assert "{{" not in a["annotations"]["description"]

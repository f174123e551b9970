"""End to end on real parts: Debian's Prometheus scrapes `llmobs demo` with llmobs's rules loaded, and
every dashboard panel query and recording rule returns series.

Families no component exports in the demo yet are listed in ``dashboards.queries.EXPECTED_EMPTY`` with
the reason; a query reading one of them must return nothing here, and the test fails the day it returns
data, so that the list shrinks as those components land.
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
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from alerts.config import DEFAULT  # noqa: E402
from alerts.rules import render  # noqa: E402
from dashboards.queries import (  # noqa: E402
    all_dashboard_queries,
    all_recording_rule_exprs,
    all_variable_queries,
    expected_empty_reason,
)
from tests.promserver import PrometheusServer  # noqa: E402

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


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory) -> Iterator[str]:
    _binary("prometheus")
    tmp = tmp_path_factory.mktemp("e2e-prom")

    demo = _Proc([sys.executable, "-m", "llmobs.cli", "demo", "--port", "0", "--interval", "1",
                  "--window", "10", "--speedup", "10", "--no-tui"], cwd=ROOT)
    prom = None
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

        # The same rules as alerts/*.yaml, evaluated every second instead of every 30s.
        rule_files = []
        for name, text in render(dataclasses.replace(DEFAULT, rule_interval="1s")).items():
            (tmp / name).write_text(text)
            rule_files.append(tmp / name)
        job = re.fullmatch(r'job="([^"]+)"', DEFAULT.exporter_selector)
        assert job, "the e2e test expects exporter_selector to be a job= matcher"
        prom = PrometheusServer(tmp / "prom", [f"127.0.0.1:{exporter_port}"], rule_files=rule_files,
                                job=job.group(1))
        prom.start(timeout=30)
        yield prom.url
    finally:
        if prom is not None:
            prom.stop()
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


def test_every_panel_and_recording_rule_query_returns_series(prometheus):
    queries = _all_queries()
    pending = {(w, e) for w, e in queries if expected_empty_reason(e) is None}
    t0 = time.monotonic()
    while pending and time.monotonic() - t0 < DEADLINE_S:
        pending = {(w, e) for w, e in pending if not _query(prometheus, e)}
        if pending:
            time.sleep(2)
    assert not pending, "no series for:\n" + "\n".join(f"  {w}: {e}" for w, e in sorted(pending))

    now_has_data = [(w, expected_empty_reason(e)) for w, e in queries
                    if expected_empty_reason(e) is not None and _query(prometheus, e)]
    assert not now_has_data, ("these queries were listed as expected-empty but now return data; remove "
                              "their entries from dashboards.queries.EXPECTED_EMPTY:\n"
                              + "\n".join(f"  {w} ({why})" for w, why in now_has_data))


def test_variables_have_values(prometheus):
    for where, query in all_variable_queries():
        m = re.fullmatch(r"label_values\((.+), (\w+)\)", query)
        assert m, query
        r = httpx.get(f"{prometheus}/api/v1/series", params={"match[]": m.group(1)}, timeout=5).json()
        values = {s.get(m.group(2)) for s in r["data"]} - {None, ""}
        assert values, f"{where}: {query} has no values"


def test_rules_evaluate_without_errors(prometheus):
    # Catches what a syntax check cannot: many-to-many joins, type errors at evaluation time.
    time.sleep(2)
    groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    assert {g["name"] for g in groups} >= {"llmobs.serving.rules", "llmobs.serving"}
    bad = [(r.get("name"), r.get("lastError")) for g in groups for r in g["rules"] if r.get("health") == "err"]
    assert not bad, bad

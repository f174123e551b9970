"""Suite-wide rules. In CI (CI=true) nothing real may be skipped: a skip there is turned into a failure,
so a missing vLLM or Prometheus fails the run. Only tests marked `hardware` (need an NVIDIA GPU) may
skip in CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parents[1]
FIXTURE_PAGE = REPO / "tests" / "fixtures" / "vllm-0.32.0-cpu-metrics.txt"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and item.get_closest_marker("hardware") is None:
        if hasattr(report, "wasxfail"):
            return
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI, which must run every real test: {reason}"


@pytest.fixture(scope="session")
def fixture_page() -> str:
    return FIXTURE_PAGE.read_text()

"""Configuration: a bad file gets one clear message naming the key, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llmobs.config import ConfigError, config_from_mapping, load_config


def test_minimal_config_and_defaults() -> None:
    cfg = config_from_mapping({"targets": [{"url": "http://10.0.0.7:8000/metrics", "labels": {"node": "n1"}}]})
    [t] = cfg.build_targets()
    assert t.name == "10.0.0.7:8000" and t.node == "n1"
    assert cfg.scrape.interval_seconds == 5.0 and cfg.signals.window_seconds == 60.0


def test_a_target_role_becomes_its_role_label() -> None:
    cfg = config_from_mapping({"targets": [{"url": "http://p:8000/metrics", "role": "prefill"},
                                           {"url": "http://m:8000/metrics"}]})
    prefill, mixed = cfg.build_targets()
    assert prefill.labels["role"] == "prefill" and "role" not in mixed.labels  # unset: the tracker's `mixed`


@pytest.mark.parametrize(("data", "message"), [
    ({"targets": [{"url": "http://a/metrics", "role": "prefil"}]}, "targets.0.role"),
    ({"targets": [{"url": "ftp://x"}]}, "targets.0.url"),
    ({"targets": [{"url": "http://a/metrics", "bogus": 1}]}, "targets.0.bogus"),
    ({"scrape": {"interval_seconds": -1}}, "scrape.interval_seconds"),
    ({"targets": [{"url": "http://a/m"}, {"url": "http://a/m"}]}, "duplicate endpoint name"),
    (["not", "a", "mapping"], "top level must be a mapping"),
])
def test_bad_config_names_the_problem(data, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        config_from_mapping(data)


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("targets: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmobs.cli", *args], capture_output=True, text=True, timeout=60)


def test_check_config_cli(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("targets:\n  - url: http://127.0.0.1:8000/metrics\n")
    ok = _cli("run", "--config", str(good), "--check-config")
    assert ok.returncode == 0 and "config OK: 1 target" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("scrape:\n  timeout_seconds: fast\n")
    failed = _cli("run", "--config", str(bad), "--check-config")
    assert failed.returncode == 2
    assert "scrape.timeout_seconds" in failed.stderr and "Traceback" not in failed.stderr

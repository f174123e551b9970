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


def test_a_targets_scheduler_limits_reach_its_saturation_ratios() -> None:
    cfg = config_from_mapping({"targets": [
        {"url": "http://a/metrics", "max_num_seqs": 256, "max_num_batched_tokens": 8192},
        {"url": "http://b/metrics"}]})
    configured, bare = cfg.build_targets()
    assert (configured.scheduler.max_num_seqs, configured.scheduler.max_num_batched_tokens) == (256, 8192)
    assert (bare.scheduler.max_num_seqs, bare.scheduler.max_num_batched_tokens) == (None, None)


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
    ({"targets": [{"url": "http://a/m", "max_num_seqs": 0}]}, "targets.0.max_num_seqs"),
    ({"targets": [{"url": "http://a/m", "max_num_batched_tokens": "lots"}]}, "targets.0.max_num_batched_tokens"),
    (["not", "a", "mapping"], "top level must be a mapping"),
    ({"doors": [{"url": "http://r/metrics", "kind": "nginx"}]}, "doors.0.kind"),
    ({"doors": [{"url": "http://r/metrics", "kind": "vllm-router"}]}, "vllm-router page has no model label"),
    ({"doors": [{"url": "http://r/metrics", "kind": "litellm"}, {"url": "http://r/metrics", "kind": "litellm"}]},
     "duplicate door name"),
])
def test_bad_config_names_the_problem(data, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        config_from_mapping(data)


def test_doors_config_builds_door_targets_with_their_model_names() -> None:
    cfg = config_from_mapping({"doors": [
        {"url": "http://router:29000/metrics", "kind": "vllm-router", "model": "llama"},
        {"url": "http://litellm:4000/metrics/", "name": "proxy", "kind": "litellm", "model_map": {"public": "llama"},
         "bearer_token_file": "/run/secrets/litellm"}]})
    router, proxy = cfg.build_doors()
    assert (router.name, router.kind, router.model) == ("router:29000", "vllm-router", "llama")
    assert proxy.replica_model("public") == "llama" and proxy.replica_model("other") == "other"
    assert proxy.scrape_target().auth is not None  # scraped with the proxy's key


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

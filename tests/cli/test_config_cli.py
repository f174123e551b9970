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
    # a port the scraper cannot use: it raised in every scrape cycle and no target was scraped at all
    ({"targets": [{"url": "http://127.0.0.1:99999/metrics"}]}, "targets.0.url"),
    ({"targets": [{"url": "http://127.0.0.1:abc/metrics"}]}, "targets.0.url"),
    # one replica under two names: its pages, a few ms apart, read as thousands of requests/s
    ({"targets": [{"url": "http://a/m", "name": "x"}, {"url": "http://a/m", "name": "y"}]},
     "targets.1.url: the same URL as targets.0"),
    # .inf passed gt=0: an infinite interval scraped once and never again, an infinite window kept every point
    ({"scrape": {"interval_seconds": float("inf")}}, "scrape.interval_seconds"),
    ({"scrape": {"timeout_seconds": float("inf")}}, "scrape.timeout_seconds"),
    ({"signals": {"window_seconds": float("inf")}}, "signals.window_seconds"),
    ({"forecast": {"refresh_seconds": float("inf")}}, "forecast.refresh_seconds"),
    ({"scaler": {"stale_after_intervals": float("inf")}}, "scaler.stale_after_intervals"),
    ({"kubernetes": {"backoff_max_seconds": float("inf")}}, "kubernetes.backoff_max_seconds"),
    ({"otlp": {"export_interval_seconds": float("inf")}}, "otlp.export_interval_seconds"),
    ({"feedback": {"window_seconds": float("inf")}}, "feedback.window_seconds"),
    ({"cost": {"gpu_hourly_usd": {"H100": float("inf")}}}, "cost.gpu_hourly_usd"),
    # labels under names Prometheus refuses, or llmobs' own: accepted, then never exported (a bad role unchecked)
    ({"targets": [{"url": "http://a/m", "labels": {"gpu-model": "H100"}}]}, "not a Prometheus label name"),
    ({"targets": [{"url": "http://a/m", "labels": {"__meta": "x"}}]}, "not a Prometheus label name"),
    ({"targets": [{"url": "http://a/m", "labels": {"model": "x"}}]}, "label 'model' is set by llmobs"),
    ({"targets": [{"url": "http://a/m", "labels": {"role": "prefil"}}]}, "label 'role' is set by llmobs"),
    ({"targets": [{"url": "http://a/m", "name": "we\nird"}]}, "targets.0.name"),
    # YAML `true` was port 1 / one second, and the string "yes" a boolean
    ({"server": {"port": True}}, "server.port: Value error, must be a number, not true"),
    ({"scrape": {"interval_seconds": True}}, "scrape.interval_seconds: Value error, must be a number"),
    ({"feedback": {"enabled": "yes", "allow_unauthenticated": True}}, "feedback.enabled"),
    # an OTLP endpoint gRPC would push to port 99999 − 65536 in silence, or that ended start-up with a traceback
    ({"otlp": {"endpoint": "http://127.0.0.1:99999"}}, "otlp.endpoint: Value error, not a valid URL"),
    ({"otlp": {"endpoint": "http://[::1"}}, "otlp.endpoint: Value error, not a valid URL"),
    ({"otlp": {"endpoint": "http://ho st:4318"}}, "otlp.endpoint: Value error, has whitespace in its host"),
    ({"targets": [{"url": "http://ho st:8000/metrics"}]}, "targets.0.url: Value error, has whitespace in its host"),
    ({"kubernetes": {"backoff_max_seconds": False}}, "kubernetes.backoff_max_seconds: Value error, must be a number"),
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


def test_check_config_reads_the_targets_credential_files(tmp_path: Path) -> None:
    """--check-config said OK for a password or token file that was not there; every scrape then failed with
    `cannot read credentials file` (docs/configuration.md promises the check covers credential files)."""
    token, password, empty = tmp_path / "token", tmp_path / "password", tmp_path / "empty-token"
    token.write_text("s3cret\n")
    password.write_text("")  # an empty password is a password
    empty.write_text("\n")
    good = tmp_path / "good.yaml"
    good.write_text(f"targets:\n  - url: http://a:8000/metrics\n    bearer_token_file: {token}\n"
                    f"  - url: http://b:8000/metrics\n    basic_auth: {{username: u, password_file: {password}}}\n")
    assert _cli("run", "--config", str(good), "--check-config").returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"targets:\n  - url: http://a:8000/metrics\n    bearer_token_file: {tmp_path / 'nope'}\n"
                   f"  - url: http://b:8000/metrics\n    basic_auth: {{username: u, password_file: {tmp_path}}}\n"
                   f"  - url: http://c:8000/metrics\n    bearer_token_file: {empty}\n"
                   "doors:\n  - url: http://r:4000/metrics\n    kind: litellm\n"
                   f"    bearer_token_file: {tmp_path / 'gone'}\n")
    failed = _cli("run", "--config", str(bad), "--check-config")
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    for key in ("targets.0.bearer_token_file", "targets.1.basic_auth.password_file", "targets.2.bearer_token_file",
                "doors.0.bearer_token_file"):
        assert key in failed.stderr, failed.stderr
    assert "is a directory" in failed.stderr and "is empty" in failed.stderr


@pytest.mark.parametrize("index", ["x", "-1", "7", "\u00b2", "\u0663"])
def test_check_config_resolves_the_shard_index_as_start_up_does(tmp_path: Path, index: str) -> None:
    """A bad LLMOBS_SHARD_INDEX passed the check, then start-up ended in "unexpected ValueError ... please report
    it" (exit 1); "²" reached int() and "٣" (an Arabic-Indic digit) was taken as 3."""
    import os

    config = tmp_path / "sharded.yaml"
    config.write_text("targets: [{url: 'http://127.0.0.1:1/metrics'}]\nsharding: {shards: 3}\n")
    failed = subprocess.run([sys.executable, "-m", "llmobs.cli", "run", "--config", str(config), "--check-config"],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "LLMOBS_SHARD_INDEX": index})
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert "sharding:" in failed.stderr and "please report" not in failed.stderr

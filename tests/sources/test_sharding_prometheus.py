"""llmobs' shard assignment is Prometheus' own: the real binary, given the relabel rules docs/scaling.md
documents (rebuild the URL from scheme, address and path, `hashmod` it, `keep` one residue), keeps
exactly the targets `ShardedTargetSource` gives the same shard. So a Prometheus shard and an llmobs shard
with the same N and index hold the same vLLM replicas."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from llmobs.sources.sharding import ShardedTargetSource
from llmobs.sources.targets import StaticTargetSource, Target
from tests.promserver import free_port, require_binary

pytestmark = pytest.mark.prometheus

SHARDS = 3


def relabel_rules(shards: int, index: int) -> list[dict]:
    """The rules docs/scaling.md gives for a Prometheus shard that matches llmobs shard `index`."""
    return [
        {"source_labels": ["__scheme__", "__address__", "__metrics_path__"], "regex": "(.+);(.+);(.+)",
         "replacement": "${1}://${2}${3}", "target_label": "__tmp_url"},
        {"source_labels": ["__tmp_url"], "modulus": shards, "action": "hashmod", "target_label": "__tmp_shard"},
        {"source_labels": ["__tmp_shard"], "regex": str(index), "action": "keep"},
    ]


def test_prometheus_hashmod_keeps_the_same_targets_as_llmobs(tmp_path: Path) -> None:
    binary = require_binary("prometheus")
    addresses = [f"127.0.0.{1 + i % 3}:{20000 + i}" for i in range(60)]  # nothing listens: targets stay down
    config = {
        "global": {"scrape_interval": "1h"},
        "scrape_configs": [{"job_name": f"shard-{i}", "static_configs": [{"targets": addresses}],
                            "relabel_configs": relabel_rules(SHARDS, i)} for i in range(SHARDS)],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    with (tmp_path / "log").open("wb") as log:
        process = subprocess.Popen([binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                                    f"--storage.tsdb.path={tmp_path / 'data'}",
                                    f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        kept: dict[int, set[str]] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(f"http://127.0.0.1:{port}/api/v1/targets", params={"state": "any"}, timeout=5)
                # Prometheus answers 503 "Service Unavailable" (plain text) until it is ready
                data = r.json()["data"] if r.status_code == 200 else {"activeTargets": [], "droppedTargets": []}
                active = data["activeTargets"]
                if len(active) + len(data["droppedTargets"]) >= len(addresses) * SHARDS:
                    kept = {i: {t["scrapeUrl"] for t in active if t["labels"]["job"] == f"shard-{i}"}
                            for i in range(SHARDS)}
                    break
            time.sleep(0.3)
        assert kept, (tmp_path / "log").read_text()[-2000:]
    finally:
        process.terminate()
        process.wait(timeout=15)
    source = StaticTargetSource([Target(f"http://{a}/metrics", a) for a in addresses])
    mine = {i: {t.url for t in ShardedTargetSource(source, SHARDS, i).targets()} for i in range(SHARDS)}
    assert kept == mine
    assert all(mine.values())

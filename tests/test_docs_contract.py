"""The metric names are a public contract: every family the exporter emits is documented, docs/metrics.md is
the current reference, and the README's configuration example is a valid config."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml
from prometheus_client import CollectorRegistry, generate_latest

from llmobs.config import config_from_mapping
from llmobs.serving.collector import FleetCollector
from llmobs.state import StateHolder
from tests.conftest import REPO
from tests.factories import make_state, make_target_health, signals_from_page


def exported_families(fixture_page: str) -> set[str]:
    holder = StateHolder()
    health = make_target_health(up=False, last_scrape_time=0.0, scrape_duration_seconds=0.1, last_error="boom",
                                last_error_kind="timeout", consecutive_failures=1, errors_by_kind={"timeout": 1},
                                skipped_lines={"malformed": 1}, missing_series=("ttft",), last_success_time=1.0)
    holder.publish(make_state(signals_from_page(fixture_page), targets=(health,)))
    registry = CollectorRegistry()
    registry.register(FleetCollector(holder))
    text = generate_latest(registry).decode()
    return set(re.findall(r"^# TYPE (\S+) ", text, flags=re.M))


def test_every_exported_family_is_documented(fixture_page: str) -> None:
    documented = (REPO / "docs" / "metrics.md").read_text()
    missing = [f for f in sorted(exported_families(fixture_page))
               if f"`{f}" not in documented and f"`{f.removesuffix('_total')}" not in documented]
    assert not missing, f"undocumented metric families: {missing}"


def test_metric_reference_is_generated_from_the_catalogue() -> None:
    """docs/metrics.md is what scripts/generate_metrics_doc.py writes from the metric catalogue (no hand edits)."""
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "generate_metrics_doc.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_readme_has_exactly_two_setup_commands() -> None:
    readme = (REPO / "README.md").read_text()
    setup = readme.split("## Set up", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^make \w+", setup, flags=re.M)
    assert commands == ["make run", "make test"]


def _yaml_blocks(text: str) -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```", text, flags=re.M | re.S)


def test_readme_and_configuration_reference_examples_are_valid_configs() -> None:
    """The README's short config and docs/configuration.md's reference are configs `llmobs run` accepts."""
    for path in (REPO / "README.md", REPO / "docs" / "configuration.md"):
        blocks = [b for b in _yaml_blocks(path.read_text()) if b.lstrip().startswith(("targets:", "# llmobs.yaml"))]
        assert blocks, f"{path.name} shows no configuration"
        for block in blocks:
            cfg = config_from_mapping(yaml.safe_load(block))
            assert cfg.build_targets(), f"{path.name}: example has no target"
    reference = _yaml_blocks((REPO / "docs" / "configuration.md").read_text())[0]
    assert config_from_mapping(yaml.safe_load(reference)).build_targets()[0].node == "gpu-node-a"

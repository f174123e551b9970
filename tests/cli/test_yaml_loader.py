"""One bounded YAML loader behind every config: hostile files are one-line errors.

A deeply nested document used to raise RecursionError with a traceback from `llmobs agent --check-config`;
an alias bomb expands a few hundred bytes into billions of nodes. Each CLI that reads a config must exit
2 with one line on stderr that names the file, for each kind of bad file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llmobs.config import ConfigError, load_config, load_config_text
from llmobs.feedback.auth import TokenError, load_tokens
from llmobs.forecast.capacity import parse_gpu_table
from llmobs.forecast.errors import ForecastInputError

DEEP = "a:\n" + "".join("  " * i + "- \n" for i in range(1, 3)) + "[" * 5000 + "]" * 5000 + "\n"
ALIAS_BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n" for i in range(9))
BINARY = bytes(range(256)) * 4
MAX_BYTES = 4 * 2**20  # docs/configuration.md: "files over 4 MiB are refused with one line"

HOSTILE = {
    "deep": (DEEP.encode(), "nested"),
    "deep_block": (("x:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 200))).encode(), "nested"),
    "alias_bomb": (ALIAS_BOMB.encode(), "aliases"),
    "binary": (BINARY, "not UTF-8"),
    "oversize": (b"# padding\n" * (MAX_BYTES // 10 + 1), "byte limit"),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_loader_refuses_hostile_yaml(tmp_path: Path, kind: str) -> None:
    data, message = HOSTILE[kind]
    path = tmp_path / f"{kind}.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_loader_reads_plain_yaml_and_unused_anchors() -> None:
    config = load_config_text("scrape: &unused\n  interval_seconds: 7\nserver: {port: 9500}\n")
    assert (config.scrape.interval_seconds, config.server.port) == (7, 9500)
    assert load_config_text("") == load_config_text("{}")  # an empty file: every default
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config_text("a: !!python/object:os.system x\n")  # the safe loader builds no objects


def test_every_config_reader_goes_through_it(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB)
    with pytest.raises(ConfigError, match="aliases"):
        load_config(bomb)
    with pytest.raises(TokenError, match="aliases"):
        load_tokens(bomb)
    with pytest.raises(ForecastInputError, match="aliases"):
        parse_gpu_table(ALIAS_BOMB, str(bomb))
    from llmobs.agent.config import AgentConfigError, load_agent_config
    from llmobs.feedback.cli import load_feedback_config

    with pytest.raises(AgentConfigError, match="aliases"):
        load_agent_config(bomb)
    with pytest.raises(ValueError, match="aliases"):
        load_feedback_config(bomb)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("kind", sorted(HOSTILE))
@pytest.mark.parametrize("command", [
    ("-m", "llmobs.cli", "run", "--check-config", "--config"),
    ("-m", "llmobs.cli", "agent", "--check-config", "--config"),
    ("-m", "llmobs.feedback"),
])
def test_check_config_prints_one_line_and_exits_2(tmp_path: Path, kind: str, command: tuple[str, ...]) -> None:
    data, message = HOSTILE[kind]
    path = tmp_path / f"{kind}.yaml"
    path.write_bytes(data)
    result = _run(*command, str(path))
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert message in lines[0] and str(path) in lines[0] and "Traceback" not in result.stderr


def test_a_key_given_twice_is_refused_not_overwritten() -> None:
    """PyYAML keeps the last of two equal keys: a second `targets:` pasted below the first replaced it, and the
    check said OK with half the fleet gone."""
    with pytest.raises(ConfigError, match=r"key 'targets' appears twice in one mapping \(line 3\)"):
        load_config_text("targets:\n  - url: http://a:8000/metrics\ntargets:\n  - url: http://b:8000/metrics\n")
    with pytest.raises(ConfigError, match="key 'interval_seconds' appears twice"):
        load_config_text("scrape: {interval_seconds: 5, interval_seconds: 10}\n")
    # the same key in different mappings, and equal values in a list, are not duplicates
    config = load_config_text("targets:\n  - {url: 'http://a:8000/metrics', labels: {node: n}}\n"
                              "  - {url: 'http://b:8000/metrics', labels: {node: n}}\n")
    assert [t.labels for t in config.targets] == [{"node": "n"}, {"node": "n"}]

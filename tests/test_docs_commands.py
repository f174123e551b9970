"""Every command shown in README.md and docs/**/*.md is run, so a page cannot show a command that fails.

The commands are taken from fenced code blocks tagged sh, bash, shell or console, and from untagged blocks
whose first line starts with a known program. Each is classified by its program and checked:

- `llmobs …`, `.venv/bin/llmobs …`, `python -m llmobs…`: run for real (PYTHONPATH=src). The names a page
  uses stand for real files in the working folder: `llmobs.yaml` scrapes the vLLM fixture page served on
  loopback, `feedback.yaml`/`agent.yaml` are minimal configs, `config.json` is a Llama-3-8B-shaped model
  config, `saved-metrics.txt` is the fixture page, `FILE` a trace in data/traces, `X` a number; `[--opt]`
  is run with the option, `a|b` with `a`. Servers (`run`, `feedback`, `agent`, `demo`) are started, must
  answer on `/healthz` (the exporter must also have scraped its target), and are stopped; one server per
  distinct command line, reused. Any other command must exit 0.
- `.venv/bin/python scripts/…`: generators run with `--check` (they must agree with the committed files);
  `fuzz/…` harnesses with `-runs=0` (the corpus replayed, no minute of fuzzing).
- `.venv/bin/python benchmarks/X.py …`: benchmarks take minutes, so each runs with `--help` only, and
  every flag the page shows must be in that help.
- `.venv/bin/pytest …`: collected (`--collect-only`), not run: the suite runs them anyway.
- `make T`: `make -n T` (a dry run) must succeed.
- `promtool`, `openssl`, `jq`: run for real. `cat > F <<'EOF'` writes F for the commands after it.
- `helm install|upgrade|template|lint`: the same chart rendered (or linted) with the same values (`-f`
  files, `--set`) by Helm's own engine (helm-python-sdk, as tests/artifacts/test_helm_chart.py does), values schema
  included.
- `curl` to llmobs' own ports (9400 exporter, 9402 feedback API): run against the started server, with the
  page's body and headers; to an outside service (Grafana): allow-listed below with the reason.
- `docker`, `kubectl`: no engine or cluster here, so they are allow-listed with the reason, and the files
  they name must exist (after the commands before them in the same block ran).

A command whose program is not classified here fails the test: a new kind of command needs a check.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import FIXTURE_PAGE, REPO
from tests.pageserver import FixturePageServer

pytestmark = pytest.mark.timeout(300)

DOC_PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
SHELL_TAGS = {"sh", "bash", "shell", "console"}
VENV_BIN = Path(sys.executable).parent
SUBPROCESS_TIMEOUT_S = 120.0

# Programs that cannot run here, with the reason. Their file arguments must still exist.
NOT_RUN = {
    "docker": "no container engine in the test environment (tests/artifacts/test_dockerfile.py lints the "
              "Dockerfile)",
    "kubectl": "no Kubernetes cluster in the test environment (tests/artifacts/test_helm_chart.py renders what "
               "it would get)",
}
# curl to a service that is not llmobs: URL prefix → reason.
OUTSIDE_SERVICES = {"$GRAFANA_URL": "Grafana's HTTP API; no Grafana runs in the tests (the dashboards' queries "
                                     "run against a real Prometheus in tests/e2e/test_e2e_prometheus_dashboards.py)"}
# Words that stand for something the reader supplies.
PLACEHOLDERS = {"FILE": "data/traces/AzureLLMInferenceTrace_conv.csv", "X": "2.5"}
# llmobs' default ports → the server kind answering there.
LLMOBS_PORTS = {9400: "run", 9402: "feedback", 9403: "agent"}
SERVER_COMMANDS = {"run", "feedback", "agent", "demo"}
KNOWN_PROGRAMS = {"llmobs", "python", "python3", "make", "promtool", "helm", "openssl", "curl", "jq", "cat",
                  "docker", "kubectl", "cd", "nice", "for", "done", "pytest", *NOT_RUN}


# ---------------------------------------------------------------- extraction


@dataclass
class Block:
    page: Path
    line: int
    text: str

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


@dataclass
class Command:
    words: list[str]
    heredoc: str | None = None
    source: str = ""


def code_blocks(page: Path) -> Iterator[tuple[int, str, str]]:
    """(line, tag, body) of every fenced block, indented ones (inside lists) included."""
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)(```+)(\S*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        indent, fence, tag = m.groups()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not re.match(rf"^\s*{fence}\s*$", lines[j]):
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        yield i + 1, tag.lower(), "\n".join(body)
        i = j + 1


def first_program(line: str) -> str:
    word = line.strip().split(" ", 1)[0] if line.strip() else ""
    return Path(word).name if "/" in word else word


def command_blocks() -> list[Block]:
    blocks = []
    for page in DOC_PAGES:
        for line, tag, body in code_blocks(page):
            first = next((x for x in body.splitlines() if x.strip()), "")
            if tag in SHELL_TAGS or (tag == "" and first_program(first.removeprefix("$ ")) in KNOWN_PROGRAMS):
                blocks.append(Block(page, line, body))
    return blocks


def logical_lines(block: Block) -> list[tuple[str, str | None]]:
    """Lines joined across `\\`, a trailing `|` or `&&`; here-documents attached to their command."""
    raw = block.text.splitlines()
    if any(x.startswith("$ ") for x in raw):  # console: prompts are commands, the rest is output
        raw = [x[2:] for x in raw if x.startswith("$ ")]
    out: list[tuple[str, str | None]] = []
    i, pending = 0, ""
    while i < len(raw):
        line = raw[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        here = re.search(r"<<-?\s*'?(\w+)'?", line)
        heredoc = None
        if here:
            body = []
            while i < len(raw) and raw[i].strip() != here.group(1):
                body.append(raw[i])
                i += 1
            i += 1
            heredoc = "\n".join(body) + "\n"
            line = line[:here.start()] + line[here.end():]
        stripped = line.rstrip()
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        if re.search(r"(\||&&)\s*(#.*)?$", stripped) and not heredoc:
            pending += re.sub(r"\s*#[^'\"]*$", "", stripped) + " "
            continue
        out.append((pending + line, heredoc))
        pending = ""
    if pending:
        out.append((pending, None))
    return out


def substitute(text: str, variables: dict[str, str]) -> str:
    """`$NAME` and `${NAME}` replaced as the shell would: not inside single quotes."""
    out, quoted = [], False
    for part in re.split(r"('|\$\{?[A-Za-z_]\w*\}?)", text):
        if part == "'":
            quoted = not quoted
        elif part.startswith("$") and not quoted:
            part = variables.get(part.strip("${}"), part)
        out.append(part)
    return "".join(out)


def split_commands(block: Block, variables: dict[str, str] | None = None) -> list[Command]:
    """Each simple command of the block, in order (`a | b`, `a && b`, `a; b` give two), with the given
    variables substituted where the shell would substitute them."""
    commands: list[Command] = []
    for text, heredoc in logical_lines(block):
        text = substitute(text, variables or {})
        # `a|b` written without spaces is a choice in a synopsis, not a pipe: take the first.
        text = re.sub(r"(?<=[\w.-])\|(?=[\w.-])[\w.|-]*", "", text)
        lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|<>")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words: list[str] = []
        for token in [*lexer, ";"]:
            if token in {";", "&&", "||", "|", "&"}:
                if words:
                    commands.append(Command(words, heredoc if words[0] == "cat" else None, text.strip()))
                words = []
            else:
                words.append(token)
    return commands


# ---------------------------------------------------------------- the world the commands run in


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class World:
    """The working folder every command runs in: the repository's top-level entries linked in, and the
    files the pages name written beside them. Servers started from commands are kept here and reused."""

    root: Path
    env: dict[str, str]
    ports: dict[str, int]
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = field(default_factory=dict)

    def run(self, argv: list[str], cwd: Path | None = None, timeout: float = SUBPROCESS_TIMEOUT_S
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, cwd=cwd or self.root, env=self.env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def stop_all(self) -> None:
        for proc, _port in self.servers.values():
            proc.send_signal(signal.SIGTERM)
        for proc, _port in self.servers.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


LLAMA_3_8B_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
    "intermediate_size": 14336, "num_attention_heads": 32, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 8192,
    "torch_dtype": "bfloat16", "tie_word_embeddings": False,
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("docs-commands")
    for entry in REPO.iterdir():
        if entry.name not in {".git", ".venv"}:
            (root / entry.name).symlink_to(entry)
    (root / ".venv").symlink_to(VENV_BIN.parent)
    page = FixturePageServer()
    ports = {"run": free_port(), "feedback": free_port(), "agent": free_port(), "demo": free_port()}
    (root / "llmobs.yaml").write_text(yaml.safe_dump({
        "targets": [{"url": page.url, "name": "llama-a-0",
                     "labels": {"node": "gpu-node-a", "gpu_model": "NVIDIA-H100-80GB-HBM3"}}],
        "scrape": {"interval_seconds": 1},
        "server": {"host": "127.0.0.1", "port": ports["run"]},
    }))
    (root / "tokens.yaml").write_text(yaml.safe_dump({"chat": "docs-test-token"}))
    (root / "feedback.yaml").write_text(yaml.safe_dump({
        "host": "127.0.0.1", "port": ports["feedback"], "tokens_file": str(root / "tokens.yaml"),
        "db_path": str(root / "feedback.db"), "synchronous": "NORMAL"}))
    (root / "agent.yaml").write_text(yaml.safe_dump({
        "host": "127.0.0.1", "port": ports["agent"], "node_name": "gpu-node-a", "interval_seconds": 1}))
    (root / "config.json").write_text(json.dumps(LLAMA_3_8B_CONFIG))
    shutil.copy(FIXTURE_PAGE, root / "saved-metrics.txt")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "TOKEN": "docs-test-token", "NO_PROXY": "*",
           "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(proxy, None)
    w = World(root, env, ports)
    try:
        yield w
    finally:
        w.stop_all()
        page.close()


# ---------------------------------------------------------------- handlers, one per program


def bind(words: list[str]) -> list[str]:
    """Placeholders and optional brackets → one concrete command line."""
    out = []
    for word in words:
        if word in {"...", "…"}:
            continue
        word = word.removeprefix("[").removesuffix("]")
        out.append(PLACEHOLDERS.get(word, word))
    return out


def assert_bound(words: list[str]) -> None:
    unbound = [w for w in words if re.search(r"\$\{?[A-Za-z_]", w)]
    assert not unbound, f"variables no check binds: {unbound}"


def expand_globs(words: list[str], cwd: Path) -> list[str]:
    out = []
    for word in words:
        if any(c in word for c in "*?") and not word.startswith("-"):
            matches = sorted(glob.glob(word, root_dir=cwd))
            assert matches, f"{word} matches no file"
            out += matches
        else:
            out.append(word)
    return out


def wait_for_http(url: str, proc: subprocess.Popen[bytes], log: Path, want: str = "", timeout: float = 30.0) -> str:
    """Poll until the URL answers 200 and its body matches the regex `want`."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                last = response.read().decode()
                if response.status == 200 and re.search(want, last, flags=re.M):
                    return last
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    wanted = f" with {want}" if want else ""
    raise AssertionError(f"{url} did not answer 200{wanted} within {timeout:.0f} s; last: {last[-500:]}\n"
                         f"server log: {log.read_text()[-2000:]}")


def start_server(world: World, argv: list[str], kind: str) -> int:
    key = " ".join(argv)
    if key in world.servers:
        return world.servers[key][1]
    if kind == "demo":
        port = world.ports["demo"]
        argv = [*argv, "--port", str(port), "--scaler-port", "0", "--feedback-port", "0", "--no-tui"]
    else:
        port = world.ports[kind]
    log = world.root / f"server-{len(world.servers)}.log"  # a file: a full pipe would block the server
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=world.root, env=world.env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)
    world.servers[key] = (proc, port)
    wait_for_http(f"http://127.0.0.1:{port}/healthz", proc, log)
    if kind == "run":  # serving is not enough: the exporter must have scraped the fixture replica
        wait_for_http(f"http://127.0.0.1:{port}/metrics", proc, log,
                      want=r'^llmobs_target_up\{[^}]*endpoint="llama-a-0"[^}]*\} 1\.0$')
    return port


def server_for(world: World, kind: str) -> int:
    """The server a curl to llmobs' port talks to: started from the documented command if not yet up."""
    for key, (_proc, port) in world.servers.items():
        if f" {kind} " in f" {key} ":
            return port
    return start_server(world, [str(VENV_BIN / "llmobs"), kind, "--config", f"{kind}.yaml"], kind)


def llmobs_argv(words: list[str]) -> list[str] | None:
    """The argv of an llmobs invocation, or None when the words are not one."""
    prog = words[0]
    if prog in {"llmobs", ".venv/bin/llmobs"}:
        return [str(VENV_BIN / "llmobs"), *words[1:]]
    if prog in {"python", "python3", ".venv/bin/python"} and words[1:2] == ["-m"] and words[2].startswith("llmobs"):
        return [sys.executable, *words[1:]]
    return None


def check_llmobs(world: World, argv: list[str], cwd: Path) -> None:
    args = argv[1:] if argv[0] != sys.executable else argv[3:]
    sub = args[0] if args else ""
    if argv[0] == sys.executable and argv[2] == "llmobs.feedback":
        sub = "feedback"
    if sub in SERVER_COMMANDS and "--check-config" not in args and "--help" not in args:
        start_server(world, argv, sub)
        return
    result = world.run(argv, cwd)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"


def check_python_script(world: World, words: list[str]) -> None:
    script = words[1]
    if script.startswith("benchmarks/"):
        result = world.run([sys.executable, script, "--help"])
        assert result.returncode == 0, result.stderr[-2000:]
        shown = {w.split("=", 1)[0] for w in words[2:] if w.startswith("--")}
        missing = sorted(f for f in shown if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", result.stdout))
        assert not missing, f"{script} has no {missing} (its --help: {result.stdout[-1500:]})"
        return
    if script.startswith("fuzz/"):
        # A minute of fuzzing is the reader's job; -runs=0 replays the corpus through the same harness.
        args = [w for w in words[2:] if not w.startswith("-max_total_time=")]
        result = world.run([sys.executable, script, "-runs=0", *args])
        assert result.returncode == 0, f"{script}: {result.stderr[-2000:]}"
        return
    if script.startswith("scripts/"):
        usage = world.run([sys.executable, script, "--help"])
        assert "--check" in usage.stdout, f"{script} shown in the docs needs a --check form to be tested"
        result = world.run([sys.executable, *words[1:], "--check"])
        assert result.returncode == 0, f"{script} --check: generated files drifted\n{result.stdout}{result.stderr}"
        return
    raise AssertionError(f"no check for python script {script}: classify it in tests/test_docs_commands.py")


def set_value(values: dict[str, Any], assignment: str) -> None:
    path, value = assignment.split("=", 1)
    keys = path.split(".")
    node = values
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = yaml.safe_load(value)


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = value
    return base


def check_helm(world: World, words: list[str], cwd: Path) -> str:
    import helm_python as helm

    action = words[1]
    assert action in {"install", "upgrade", "template", "lint"}, f"no check for `helm {action}`"
    positional: list[str] = []
    strict = False
    values: dict[str, Any] = {}
    namespace = "default"
    rest = iter(words[2:])
    for word in rest:
        if word in {"-n", "--namespace"}:
            namespace = next(rest)
        elif word in {"-f", "--values"}:
            deep_merge(values, yaml.safe_load((cwd / next(rest)).read_text()) or {})
        elif word == "--set":
            set_value(values, next(rest))
        elif word in {"--create-namespace", "--install", "--atomic", "--wait"}:
            pass
        elif word == "--strict":
            strict = True
        elif word.startswith("-"):
            raise AssertionError(f"`helm {action}` flag {word} is not understood by this test")
        else:
            positional.append(word)
    if action == "lint":
        (chart,) = positional
        report = helm.lint(cwd / chart, values or None, strict=strict, namespace=namespace)
        assert report["errors"] == [], report["errors"]
        assert [m for m in report["messages"] if m["severity"] >= 2] == [], report["messages"]
        return "helm lint"
    release, chart = positional
    with helm.Chart.load(cwd / chart) as loaded:
        rendered = loaded.render(values or None, name=release, namespace=namespace, is_install=True)
    manifests = [d for path, text in rendered.items() if not path.endswith("NOTES.txt")
                 for d in yaml.safe_load_all(text) if d]
    assert manifests, "the chart rendered nothing"
    kinds = {d["kind"] for d in manifests}
    if values.get("prometheusRule", {}).get("enabled"):
        assert "PrometheusRule" in kinds
    if values.get("serviceMonitor", {}).get("enabled"):
        assert "ServiceMonitor" in kinds
    return "helm render"


def check_curl(world: World, words: list[str], cwd: Path) -> str:
    url = next(w for w in words[1:] if "://" in w or w.startswith("$"))
    if not url.startswith("$"):
        assert_bound(words)
    for prefix, _reason in OUTSIDE_SERVICES.items():
        if url.startswith(prefix):
            return "curl (outside service, not run)"
    m = re.match(r"https?://[^/:]+:(\d+)(/.*)?$", url)
    assert m and int(m.group(1)) in LLMOBS_PORTS, f"curl to {url}: neither an llmobs port nor an allow-listed service"
    port = server_for(world, LLMOBS_PORTS[int(m.group(1))])
    argv = ["curl", "--silent", "--show-error", "--fail-with-body", "--max-time", "20",
            *[f"http://127.0.0.1:{port}{m.group(2) or '/'}" if w == url else w for w in words[1:]]]
    result = world.run(argv, cwd)
    assert result.returncode == 0, f"{' '.join(argv)}\nexit {result.returncode}: {result.stdout}{result.stderr}"
    return "curl (llmobs server)"


def check_not_run(world: World, words: list[str], cwd: Path) -> None:
    """docker/kubectl: the files they would read must exist."""
    named: list[str] = []
    it = iter(words[1:])
    for word in it:
        if word in {"-f", "--file", "--filename"}:
            named.append(next(it))
        elif word.startswith("--from-file="):
            named.append(word.split("=", 1)[1].split("=")[-1])
    if words[0] == "docker" and words[1:2] == ["build"]:
        named.append(words[-1])  # the build context
    for name in named:
        assert (cwd / name).exists(), f"`{' '.join(words)}` names {name}, which does not exist"


def run_block(world: World, block: Block) -> list[str]:
    """Run every command of the block; return how each was classified."""
    classes: list[str] = []
    cwd = world.root
    for earlier in BLOCKS:  # files an earlier block of the page writes (`cat > F <<'EOF'`), for a block run alone
        if earlier.page == block.page and earlier.line < block.line:
            for cmd in split_commands(earlier):
                if cmd.heredoc is not None and ">" in cmd.words:
                    (cwd / cmd.words[cmd.words.index(">") + 1]).write_text(cmd.heredoc)
    variables = {"TOKEN": world.env["TOKEN"]}
    for var, pattern in re.findall(r"^\s*for (\w+) in (\S+?);", block.text, flags=re.M):
        matches = sorted(glob.glob(pattern, root_dir=cwd))
        variables[var] = matches[0] if matches else pattern
    for cmd in split_commands(block, variables):
        words = cmd.words
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):  # VAR=value prefixes
            words = words[1:]
        if words[:1] == ["nice"]:
            words = words[3:] if words[1:2] == ["-n"] else words[1:]
        if words[:1] == ["do"]:
            words = words[1:]
        if not words:
            continue
        prog = words[0]
        if prog == "cd":
            cwd = cwd / words[1]
            classes.append("cd")
            continue
        if prog == "for":
            assert words[2] == "in" and glob.glob(words[3], root_dir=cwd), f"`for` over {words[3:]} matches nothing"
            classes.append("for (the loop's commands run on its first file)")
            continue
        if prog == "done":
            continue
        words = bind(words)
        if prog not in {"curl", *NOT_RUN}:
            assert_bound(words)
        argv = llmobs_argv(words)
        if argv is not None:
            check_llmobs(world, argv, cwd)
            classes.append("llmobs")
        elif prog in {".venv/bin/python", "python", "python3"} and words[1].startswith("benchmarks/"):
            check_python_script(world, words)
            classes.append("benchmark --help")
        elif prog in {".venv/bin/python", "python", "python3"} and words[1].startswith("fuzz/"):
            check_python_script(world, words)
            classes.append("fuzz harness -runs=0")
        elif prog in {".venv/bin/python", "python", "python3"}:
            check_python_script(world, words)
            classes.append("script --check")
        elif prog in {".venv/bin/pytest", "pytest"}:
            result = world.run([str(VENV_BIN / "pytest"), "--collect-only", "-q", "-p", "no:cacheprovider",
                                *words[1:]], REPO)
            assert result.returncode == 0, result.stdout[-2000:]
            classes.append("pytest --collect-only")
        elif prog == "make":
            result = world.run(["make", "-n", *words[1:]], REPO)
            assert result.returncode == 0, f"make -n {words[1:]}: {result.stderr[-2000:]}"
            classes.append("make -n")
        elif prog in {"promtool", "openssl", "jq"}:
            assert shutil.which(prog), f"{prog} is not installed (make test installs it)"
            result = world.run(expand_globs(words, cwd), cwd)
            assert result.returncode == 0, f"{' '.join(words)}\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
            classes.append(prog)
        elif prog == "cat" and cmd.heredoc is not None and ">" in words:
            (cwd / words[words.index(">") + 1]).write_text(cmd.heredoc)
            classes.append("cat heredoc")
        elif prog == "helm":
            classes.append(check_helm(world, words, cwd))
        elif prog == "curl":
            classes.append(check_curl(world, words, cwd))
        elif prog in NOT_RUN:
            check_not_run(world, words, cwd)
            classes.append(f"{prog} (not run)")
        else:
            raise AssertionError(f"{block.id}: `{' '.join(words)}`: program {prog!r} is not classified in "
                                 "tests/test_docs_commands.py; add a check for it")
    return classes


BLOCKS = command_blocks()


def test_commands_are_found() -> None:
    """The extraction itself works: README's commands and the deploy page's are among the blocks."""
    pages = {b.page.name for b in BLOCKS}
    assert {"README.md", "deploy.md", "forecasting.md"} <= pages
    words = [c.words[0] for b in BLOCKS for c in split_commands(b)]
    assert words.count("llmobs") >= 4 and "helm" in words and "openssl" in words


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_documented_command_runs(world: World, block: Block) -> None:
    assert run_block(world, block)


# ---------------------------------------------------------------- every page reachable, every link resolves

# Written by another piece of work: must be linked even while it is being written.
REQUIRED_PAGES = {REPO / "docs" / "api.md"}


def markdown_links(page: Path) -> Iterator[Path]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        yield (page.parent / target.split("#", 1)[0]).resolve()


def test_every_docs_page_is_linked_from_the_readme_or_another_page() -> None:
    linked = {target for page in DOC_PAGES for target in markdown_links(page)}
    pages = {p.resolve() for p in DOC_PAGES if p != REPO / "README.md"} | REQUIRED_PAGES
    orphans = sorted(str(p.relative_to(REPO)) for p in pages if p not in linked)
    assert not orphans, f"pages no README row or other page links to: {orphans}"


def test_every_relative_link_in_the_docs_resolves() -> None:
    broken = [f"{page.relative_to(REPO)} → {target.relative_to(REPO) if target.is_relative_to(REPO) else target}"
              for page in DOC_PAGES for target in markdown_links(page) if not target.exists()]
    assert not broken, f"links to nothing: {broken}"

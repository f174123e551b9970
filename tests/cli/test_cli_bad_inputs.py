"""Every `llmobs` command, run as the installed program, fed bad files and busy ports: one error, no traceback.

Each case is a real subprocess (`llmobs …` with this checkout's src first on PYTHONPATH), so what is checked
is what a user sees: a nonzero exit (2 for bad input or config, 1 for a start-up failure such as a port in
use), no "Traceback" on stderr, and an error that is one `error: …` line — or, for a config with several
problems, a header line and one indented line per problem — naming the problem.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.tls_files import write_self_signed

ROOT = REPO
LLMOBS = Path(sys.executable).with_name("llmobs")
GOOD_TRACE = ROOT / "data" / "traces" / "AzureLLMInferenceTrace_conv.csv"


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]
    needle: str
    code: int = 2


def _busy_port() -> socket.socket:
    """A listening socket on a free loopback port: the port every 'in use' case points at."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def _cases(tmp: Path, busy: int) -> list[Case]:
    binary = _write(tmp / "binary.dat", random.Random(7).randbytes(4096))
    deep = _write(tmp / "deep.yaml", "[" * 10_000)
    folder = tmp / "folder"
    folder.mkdir()
    missing = tmp / "missing.yaml"
    garbage_crt = _write(tmp / "garbage.crt", "not a certificate\n")
    garbage_key = _write(tmp / "garbage.key", "not a key\n")
    fake_pem = _write(tmp / "fake.crt", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    cert_a, _ = write_self_signed(tmp, "a")
    _, key_b = write_self_signed(tmp, "b")
    tokens_deep = _write(tmp / "tokens-deep.yaml", "a: " + "[" * 10_000)
    tokens_list = _write(tmp / "tokens-list.yaml", "- just\n- a list\n")

    def run_config(stem: str, text: str) -> str:
        return str(_write(tmp / f"run-{stem}.yaml", text))

    def scaler_tls(cert: Path, key: Path) -> str:
        return f"scaler: {{enabled: true, port: 0, tls: {{cert_file: '{cert}', key_file: '{key}'}}}}\n"

    def feedback(extra: str, port: int = 0) -> str:
        return f"feedback: {{enabled: true, port: {port}, {extra}}}\n"

    db_ok = f"db_path: '{tmp / 'fb.db'}'"
    open_fb = f"allow_unauthenticated: true, {db_ok}"
    configs = {
        "tls-garbage": scaler_tls(garbage_crt, garbage_key),
        "tls-fake-pem": scaler_tls(fake_pem, key_b),
        "tls-mismatch": scaler_tls(cert_a, key_b),
        "tls-missing": scaler_tls(tmp / "nope.crt", tmp / "nope.key"),
        "tls-ca-garbage": (f"scaler: {{enabled: true, port: 0, tls: {{cert_file: '{cert_a}', key_file: "
                           f"'{tmp / 'a.key'}', client_ca_file: '{garbage_crt}'}}}}\n"),
        "tokens-missing": feedback(f"tokens_file: '{tmp / 'no-tokens.yaml'}', {db_ok}"),
        "tokens-binary": feedback(f"tokens_file: '{binary}', {db_ok}"),
        "tokens-deep": feedback(f"tokens_file: '{tokens_deep}', {db_ok}"),
        "tokens-list": feedback(f"tokens_file: '{tokens_list}', {db_ok}"),
        "db-under-file": feedback(f"allow_unauthenticated: true, db_path: '{binary}/fb.db'"),
        "db-in-proc": feedback("allow_unauthenticated: true, db_path: /proc/llmobs-test/fb.db"),
        "db-is-dir": feedback(f"allow_unauthenticated: true, db_path: '{folder}'"),
        "db-not-sqlite": feedback(f"allow_unauthenticated: true, db_path: '{binary}'"),
        "same-ports": "server: {port: 9555}\n" + feedback(open_fb, 9555),
        "port-range": "server: {port: 70000}\n",
        "validation": "scrape: {timeout_seconds: fast, interval_seconds: -1}\n",
        "kubeconfig-garbage": f"kubernetes: {{enabled: true, kubeconfig: '{garbage_crt}'}}\n",
        "kubeconfig-missing": f"kubernetes: {{enabled: true, kubeconfig: '{tmp / 'no-kubeconfig'}'}}\n",
    }
    paths = {stem: run_config(stem, text) for stem, text in configs.items()}
    busy_exporter = run_config("busy-exporter", f"server: {{host: 127.0.0.1, port: {busy}}}\n")
    busy_scaler = run_config("busy-scaler", f"server: {{port: 0}}\nscaler: {{enabled: true, host: 127.0.0.1, "
                                            f"port: {busy}}}\n")
    busy_feedback = run_config("busy-feedback", "server: {port: 0}\n" + feedback(f"host: 127.0.0.1, {open_fb}", busy))
    fb_standalone = {
        "deep": str(deep), "binary": str(binary), "missing": str(missing), "dir": str(folder),
        "no-auth": str(_write(tmp / "fb-noauth.yaml", f"port: 0\n{db_ok}\n")),
        "tokens-missing": str(_write(tmp / "fb-tokens.yaml", f"port: 0\ntokens_file: '{tmp / 'nope'}'\n")),
        "db-under-file": str(_write(tmp / "fb-db.yaml", f"port: 0\nallow_unauthenticated: true\n"
                                                       f"db_path: '{binary}/x.db'\n")),
        "busy": str(_write(tmp / "fb-busy.yaml", f"host: 127.0.0.1\nport: {busy}\nallow_unauthenticated: true\n"
                                                 f"db_path: '{tmp / 'busy.db'}'\n")),
    }
    # a kubeconfig with a cluster but no context: the kubernetes client's own ConfigException at start-up
    no_context = _write(tmp / "kubeconfig-no-context.yaml", "clusters: [{name: c, cluster: {server: "
                                                             "'https://127.0.0.1:1'}}]\n")
    run_no_context = run_config("no-context", f"server: {{port: 0}}\nkubernetes: {{enabled: true, "
                                              f"kubeconfig: '{no_context}'}}\n")
    agent_no_context = str(_write(tmp / "agent-no-context.yaml", f"port: 0\nnode_name: n1\nkubernetes: "
                                                                 f"{{enabled: true, kubeconfig: '{no_context}'}}\n"))
    agent_bad_kubeconfig = str(_write(tmp / "agent-kubeconfig.yaml", f"node_name: n1\nkubernetes: {{enabled: true, "
                                                                     f"kubeconfig: '{garbage_crt}'}}\n"))
    agent_busy = str(_write(tmp / "agent-busy.yaml", f"host: 127.0.0.1\nport: {busy}\nproc_root: '{tmp}'\n"))
    # a mis-mounted /host/proc passed the check, then every GPU process silently lost its pod and model
    agent_no_proc = str(_write(tmp / "agent-no-proc.yaml", f"port: 0\nproc_root: '{tmp / 'no-proc'}'\n"))
    agent_busy_loop = str(_write(tmp / "agent-interval.yaml", "port: 0\ninterval_seconds: 0.000001\n"))
    model = {"num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "hidden_size": 4096,
             "vocab_size": 128256, "intermediate_size": 14336}

    def model_config(stem: str, **fields: object) -> str:
        return str(_write(tmp / f"{stem}.json", json.dumps({**model, **fields})))

    traces = {
        "empty": str(_write(tmp / "empty.csv", "")),
        "garbage": str(binary),
        "columns": str(_write(tmp / "columns.csv", "a,b\n1,2\n3,4\n")),
        "header-only": str(_write(tmp / "header.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n")),
        "bad-rows": str(_write(tmp / "rows.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\nsoon,x,y\n")),
        "missing": str(tmp / "missing.csv"),
        "dir": str(folder),
    }

    cases: list[Case] = []
    for label, path, needle in (("binary", binary, "UTF-8"), ("deep", deep, "deep"),
                                ("missing", missing, "cannot read"), ("dir", folder, "directory")):
        cases.append(Case(f"run-check-{label}", ("run", "--config", str(path), "--check-config"), needle))
        cases.append(Case(f"agent-{label}", ("agent", "--config", str(path), "--check-config"), str(path.name)))
    needles = {"tls-garbage": "no PEM certificate", "tls-fake-pem": "scaler.tls", "tls-mismatch": "matching",
               "tls-missing": "cannot read", "tls-ca-garbage": "client_ca_file", "tokens-missing": "tokens_file",
               "tokens-binary": "UTF-8", "tokens-deep": "nesting depth", "tokens-list": "must map",
               "db-under-file": "not a directory", "db-in-proc": "db_path", "db-is-dir": "is a directory",
               "db-not-sqlite": "not a SQLite database", "same-ports": "port 9555",
               "port-range": "server.port", "validation": "scrape.timeout_seconds",
               "kubeconfig-garbage": "not a kubeconfig", "kubeconfig-missing": "cannot read"}
    for stem, needle in needles.items():
        cases.append(Case(f"run-check-{stem}", ("run", "--config", paths[stem], "--check-config"), needle))
    for stem in ("tls-garbage", "tokens-missing", "db-under-file"):
        cases.append(Case(f"run-{stem}", ("run", "--config", paths[stem]), needles[stem]))
    cases += [
        Case("run-busy-exporter", ("run", "--config", busy_exporter), f"exporter (server.port) port {busy}", 1),
        Case("run-busy-scaler", ("run", "--config", busy_scaler), f"KEDA scaler (scaler.port) port {busy}", 1),
        Case("run-busy-feedback", ("run", "--config", busy_feedback), f"feedback API (feedback.port) port {busy}", 1),
        Case("run-no-config", ("run",), "--config"),
        Case("demo-busy", ("demo", "--port", str(busy), "--host", "127.0.0.1", "--no-tui"), f"port {busy}", 1),
        Case("demo-bad-interval", ("demo", "--interval", "soon"), "duration 'soon'"),
        Case("demo-zero-window", ("demo", "--window", "0"), "must be positive"),
        # inf queued requests without end: 24 GB in under 20 s, then the OOM killer
        Case("demo-infinite-speedup", ("demo", "--speedup", "inf", "--no-tui"), "--speedup"),
        Case("demo-port-out-of-range", ("demo", "--port", "70000", "--no-tui"), "--port"),
        # port 0 was not checked, and uvicorn's own failure came out as "unexpected ..., please report it"
        Case("demo-bad-host", ("demo", "--host", "bad!host", "--port", "0", "--scaler-port", "0", "--feedback-port",
                               "0", "--no-tui"), "cannot listen on bad!host:0", 1),
        Case("run-no-cluster-credentials", ("run", "--config", run_no_context), "cannot load cluster credentials",
             1),
        Case("agent-no-cluster-credentials", ("agent", "--config", agent_no_context),
             "cannot load cluster credentials", 1),
        Case("agent-check-kubeconfig-garbage", ("agent", "--config", agent_bad_kubeconfig, "--check-config"),
             "not a kubeconfig"),
        Case("agent-busy", ("agent", "--config", agent_busy), f"agent (port) port {busy}", 1),
        Case("agent-no-proc", ("agent", "--config", agent_no_proc, "--check-config"), "is not a directory"),
        Case("agent-busy-loop", ("agent", "--config", agent_busy_loop, "--check-config"), "interval_seconds"),
        Case("agent-port-range", ("agent", "--port", "70000"), "--port"),
        Case("agent-check-deep", ("agent", "--config", str(deep), "--check-config"), "deep.yaml"),
        Case("unknown-command", ("fly",), "No such command"),
        Case("old-simulate", ("simulate", "--trace", traces["columns"]), "llmobs forecast simulate"),
        Case("old-capacity", ("capacity", "--model-config", "x.json"), "llmobs forecast capacity"),
    ]
    fb_needles = {"deep": "nested too deeply", "binary": "UTF-8", "missing": "cannot read", "dir": "directory",
                  "no-auth": "tokens_file", "tokens-missing": "tokens_file", "db-under-file": "not a directory"}
    for stem, needle in fb_needles.items():
        cases.append(Case(f"feedback-{stem}", ("feedback", "--config", fb_standalone[stem]), needle))
    cases.append(Case("feedback-check-deep", ("feedback", "--config", fb_standalone["deep"], "--check-config"),
                      "nested too deeply"))
    cases.append(Case("feedback-busy", ("feedback", "--config", fb_standalone["busy"]), f"port {busy}", 1))
    cases.append(Case("python-m-feedback-binary", ("-m", "llmobs.feedback", fb_standalone["binary"]), "UTF-8"))
    trace_needles = {"empty": "not a readable CSV", "garbage": "binary.dat", "columns": "unknown trace format",
                     "header-only": "no data rows", "bad-rows": "rows.csv", "missing": "not found",
                     "dir": "is a directory"}
    for stem, needle in trace_needles.items():
        cases.append(Case(f"backtest-{stem}", ("forecast", "backtest", "--trace", traces[stem]), needle))
        cases.append(Case(f"simulate-{stem}", ("forecast", "simulate", "--trace", traces[stem],
                                               "--capacity-per-replica", "2"), needle))
    cases += [
        Case("backtest-bad-step", ("forecast", "backtest", "--trace", str(GOOD_TRACE), "--step", "10x"), "'10x'"),
        Case("backtest-zero-horizon", ("forecast", "backtest", "--trace", str(GOOD_TRACE), "--horizon", "0s"),
             "must be positive"),
        Case("simulate-readme-example", ("forecast", "simulate", "--trace", str(GOOD_TRACE), "--policy", "hybrid"),
             "--capacity-per-replica"),
        Case("simulate-bad-cold-start", ("forecast", "simulate", "--trace", str(GOOD_TRACE), "--cold-start", "later",
                                         "--capacity-per-replica", "2"), "'later'"),
        Case("simulate-nan-capacity", ("forecast", "simulate", "--trace", str(GOOD_TRACE), "--capacity-per-replica",
                                       "nan"), "capacity"),
    ]
    capacity_inputs = {
        "huge": (model_config("huge", hidden_size=1e308, intermediate_size=1e308), "hidden_size"),
        "huge-vocab": (model_config("huge-vocab", vocab_size=1e308), "vocab_size"),
        "negative": (model_config("negative", num_hidden_layers=-32), "num_hidden_layers"),
        "nan": (model_config("nan", hidden_size=float("nan")), "hidden_size"),
        "infinity": (model_config("inf", num_attention_heads=float("inf")), "num_attention_heads"),
        "string": (model_config("string", intermediate_size="wide"), "intermediate_size"),
        "not-object": (str(_write(tmp / "list.json", "[1, 2]")), "not a JSON object"),
        "binary": (str(binary), "binary.dat"),
        "missing": (str(tmp / "config.json"), "cannot read"),
        "dir": (str(folder), "folder"),
    }
    for stem, (path, needle) in capacity_inputs.items():
        cases.append(Case(f"capacity-{stem}", ("forecast", "capacity", "--model-config", path,
                                               "--gpu-memory-gib", "80"), needle))
    cases += [
        Case("capacity-nan-memory", ("forecast", "capacity", "--model-config", model_config("ok"),
                                     "--gpu-memory-gib", "nan"), "memory"),
        Case("capacity-inf-memory", ("forecast", "capacity", "--model-config", model_config("ok"),
                                     "--gpu-memory-gib", "inf"), "memory"),
        Case("capacity-deep-gpu-table", ("forecast", "capacity", "--model-config", model_config("ok"), "--gpu", "x",
                                         "--gpu-table", str(deep)), "deep.yaml"),
        Case("capacity-binary-page", ("forecast", "capacity", "--metrics-page", str(binary)), "binary.dat"),
        Case("capacity-nothing", ("forecast", "capacity"), "--model-config"),
    ]
    return cases


@dataclass(frozen=True)
class Outcome:
    code: int
    stderr: str
    stdout: str


SUBPROCESS = {
    "run-check-binary", "run-check-deep", "run-check-tls-mismatch", "run-check-tokens-missing",
    "run-check-db-in-proc", "run-tls-garbage", "run-busy-exporter", "run-busy-scaler", "run-busy-feedback",
    "demo-busy", "agent-deep", "agent-binary", "agent-busy", "feedback-deep", "feedback-busy",
    "python-m-feedback-binary", "backtest-empty", "backtest-garbage", "simulate-columns",
    "simulate-readme-example", "capacity-huge", "capacity-negative", "capacity-nan", "old-simulate",
}
"""Cases run as the installed program (one per command and kind of input); the rest run in-process
through the same entry point (`llmobs.cli.main`), which is what the program calls, at a fraction of
the start-up cost."""


def _subprocess(args: tuple[str, ...]) -> Outcome:
    argv = [sys.executable, *args] if args[0] == "-m" else [str(LLMOBS), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NODE_NAME": "", "COLUMNS": "200"}
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=90, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        return Outcome(-1, f"timed out; stderr: {exc.stderr!r}", "")
    return Outcome(p.returncode, p.stderr, p.stdout)


def _in_process(args: tuple[str, ...], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Outcome:
    from llmobs.cli import app
    from llmobs.cli_support import run_app
    from llmobs.feedback.__main__ import main as feedback_module_main

    monkeypatch.setenv("NODE_NAME", "")
    monkeypatch.setenv("COLUMNS", "200")
    code = feedback_module_main(list(args[2:])) if args[0] == "-m" else run_app(app, list(args))
    out, err = capsys.readouterr()
    return Outcome(code, err, out)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Case], dict[str, Outcome]]]:
    """The cases (files written, one port held busy), and the outcomes of those run as subprocesses."""
    busy = _busy_port()
    try:
        cases = {c.name: c for c in _cases(tmp_path_factory.mktemp("bad-inputs"), busy.getsockname()[1])}
        chosen = [cases[name] for name in sorted(SUBPROCESS)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda c: _subprocess(c.args), chosen))
        yield cases, {c.name: r for c, r in zip(chosen, results, strict=True)}
    finally:
        busy.close()


def _assert_one_error(case: Case, outcome: Outcome) -> None:
    shown = f"{case.args}: exit {outcome.code}\nstderr:\n{outcome.stderr}\nstdout:\n{outcome.stdout[-2000:]}"
    assert outcome.code == case.code, shown
    assert "Traceback" not in outcome.stderr and "Traceback" not in outcome.stdout, shown
    lines = [ln for ln in outcome.stderr.splitlines() if ln.strip()]
    assert lines and lines[0].startswith("error: "), shown
    if len(lines) > 1:  # a header naming the file, then one indented line per problem
        assert lines[0].endswith(":") and all(ln.startswith("  ") for ln in lines[1:]), shown
    assert case.needle in outcome.stderr, shown


def _case_names() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        return [c.name for c in _cases(Path(tmp), 1)]


CASES = _case_names()


def test_subprocess_cases_exist() -> None:
    assert set(CASES) >= SUBPROCESS


@pytest.mark.parametrize("name", CASES)
def test_bad_input_is_one_error_line(world: tuple[dict[str, Case], dict[str, Outcome]], name: str,
                                     capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    cases, outcomes = world
    case = cases[name]
    outcome = outcomes[name] if name in outcomes else _in_process(case.args, capsys, monkeypatch)
    _assert_one_error(case, outcome)

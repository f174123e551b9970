"""The `llmobs` command tree: its shape, an example in every --help, one duration syntax, the error boundary."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.main import get_command

from llmobs import __version__
from llmobs.cli import app
from llmobs.cli_support import DURATION, run_app
from llmobs.durations import DurationError, parse_duration
from tests.conftest import REPO
from tests.tls_files import write_self_signed

ROOT = REPO


def llmobs(args: list[str]) -> int:
    """`llmobs ARGS` in-process: the exit code the program would have (its output goes to capsys)."""
    return run_app(app, args)


def _walk(command: object, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        if not sub.hidden:
            yield from _walk(sub, (*path, name))


TREE = [path for path, _ in _walk(get_command(app))]


def test_command_tree() -> None:
    assert set(TREE) == {(), ("run",), ("demo",), ("agent",), ("feedback",), ("version",), ("forecast",),
                         ("forecast", "backtest"), ("forecast", "simulate"), ("forecast", "capacity")}


@pytest.mark.parametrize("path", TREE, ids=lambda p: " ".join(p) or "llmobs")
def test_every_help_exits_0_and_shows_an_example(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    assert llmobs([*path, "--help"]) == 0
    out = capsys.readouterr().out
    examples = [ln.strip(" │") for ln in out.splitlines() if "Example:" in ln]
    assert examples, out
    assert all("llmobs" in ex for ex in examples), examples  # an example is a command line


def _parser_of(param: object) -> object:
    """The conversion function behind an option, across typer versions (click's FuncParamType, or typer's
    own type descriptor)."""
    func = getattr(getattr(param, "type", None), "func", None)
    info = getattr(getattr(param, "type_descriptor", None), "parameter_info", None)
    return func or getattr(info, "parser", None)


def test_every_duration_option_takes_the_same_syntax() -> None:
    """Options that are lengths of time all parse through DURATION (`90`, `30s`, `5m`, `1.5h`)."""
    time_words = ("interval", "window", "duration", "cold_start", "step", "horizon")
    found = []
    for path, command in _walk(get_command(app)):
        for param in getattr(command, "params", []):
            if any(w in (param.name or "") for w in time_words):
                found.append((path, param.name))
                assert _parser_of(param) is DURATION, (path, param.name)
    assert len(found) >= 8, found  # demo ×3, backtest ×2, simulate ×3


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90.0), ("90s", 90.0), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("1.5h", 5400.0),
    ("500ms", 0.5), ("1d", 86400.0), (" 2m ", 120.0), (".5m", 30.0), (45, 45.0), (2.5, 2.5),
])
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5 minutes", "-5m", "1h30m", "5M", "0", "0s", "1e3", "nan", "inf",
                                  "9" * 400, float("nan"), float("inf"), -1.0, True])
def test_bad_durations_say_what_is_accepted(text: str | float) -> None:
    with pytest.raises(DurationError, match="duration"):
        parse_duration(text)


def test_zero_only_when_allowed() -> None:
    assert parse_duration("0s", allow_zero=True) == 0.0


def test_duration_option_reaches_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--cold-start 90` and `--cold-start 1.5m` are the same replay."""
    trace = tmp_path / "t.csv"
    with (ROOT / "data" / "traces" / "AzureLLMInferenceTrace_conv.csv").open() as f:
        trace.write_text("".join(next(f) for _ in range(801)))
    outputs = []
    for cold in ("90", "1.5m"):
        args = ["forecast", "simulate", "--trace", str(trace), "--capacity-per-replica", "1", "--cold-start", cold,
                "--json"]
        assert llmobs(args) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and '"cold_start_seconds": 90.0' in outputs[0]


def test_version_command_and_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert llmobs(["version"]) == 0 and capsys.readouterr().out.strip() == f"llmobs {__version__}"
    assert llmobs(["--version"]) == 0 and capsys.readouterr().out.strip() == f"llmobs {__version__}"


@pytest.mark.parametrize(("old", "new"), [("simulate", "forecast simulate"), ("capacity", "forecast capacity")])
def test_old_top_level_names_point_to_the_new_ones(old: str, new: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert llmobs([old, "--trace", "x.csv", "--json"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: `llmobs {old}` is now `llmobs {new}` (same options): llmobs {new} --trace x.csv --json"


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert llmobs(["forecast", "backtest"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: llmobs forecast backtest: Missing option '--trace'")


def _exploding_app() -> typer.Typer:
    boom = typer.Typer()

    @boom.command()
    def explode(verbose: bool = typer.Option(False, "--verbose", "-v")) -> None:
        raise KeyError("a genuine bug")

    @boom.command()
    def other() -> None:
        """so that `explode` is a sub-command"""

    return boom


def test_unexpected_errors_are_reported_as_such_with_the_traceback_under_verbose(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert run_app(_exploding_app(), ["explode"]) == 1
    err = capsys.readouterr().err
    assert err == ("error: unexpected KeyError: 'a genuine bug' (rerun with -v for the traceback; please report "
                   "it)\n")
    assert run_app(_exploding_app(), ["explode", "-v"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "raise KeyError" in err and err.endswith("please report it)\n")


def test_check_config_passes_what_start_up_accepts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Real TLS files, a Secret-style tokens directory, a database in a directory still to be created, and an
    existing SQLite database: all pass, and the check leaves no file behind."""
    import sqlite3

    cert, key = write_self_signed(tmp_path)
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    (tokens / "chat").write_text("s3cret\n")
    existing = tmp_path / "existing.db"
    sqlite3.connect(existing).close()
    sqlite3.connect(existing).execute("CREATE TABLE t (x)").connection.close()
    before = sorted(p.name for p in tmp_path.iterdir())
    for db in (tmp_path / "new" / "dir" / "feedback.db", existing):
        cfg = tmp_path / "llmobs.yaml"
        cfg.write_text(f"scaler: {{enabled: true, port: 0, tls: {{cert_file: '{cert}', key_file: '{key}', "
                       f"client_ca_file: '{cert}'}}}}\n"
                       f"feedback: {{enabled: true, port: 0, tokens_file: '{tokens}', db_path: '{db}'}}\n")
        assert llmobs(["run", "--config", str(cfg), "--check-config"]) == 0, capsys.readouterr().err
        assert "config OK" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({*before, "llmobs.yaml"})


def test_feedback_module_delegates_to_the_subcommand(tmp_path: Path) -> None:
    cfg = tmp_path / "feedback.yaml"
    cfg.write_text(f"allow_unauthenticated: true\nport: 0\ndb_path: '{tmp_path / 'fb.db'}'\n")
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    ok = subprocess.run([sys.executable, "-m", "llmobs.feedback", str(cfg), "--check-config"], capture_output=True,
                        text=True, timeout=60, env=env)
    assert ok.returncode == 0 and ok.stdout.startswith("feedback config OK: port 0"), ok.stderr
    usage = subprocess.run([sys.executable, "-m", "llmobs.feedback"], capture_output=True, text=True, timeout=60,
                           env=env)
    assert usage.returncode == 2 and usage.stderr.startswith("error: llmobs feedback: Missing option '--config'")


@pytest.mark.parametrize("group", [[], ["forecast"]], ids=["llmobs", "forecast"])
def test_a_bare_group_shows_its_commands_not_an_error(group: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert llmobs(group) == 2  # click's code for "no command given"
    out, err = capsys.readouterr()
    listed = {ln.strip("│ ").split(" ")[0] for ln in out.splitlines() if ln.startswith("│ ")}
    assert listed >= ({"run", "demo", "agent", "feedback", "forecast", "version"} if not group
                      else {"backtest", "simulate", "capacity"}), out
    if not group:
        assert not listed & {"simulate", "capacity"}, out  # the old top-level names are hidden
    assert "error" not in err

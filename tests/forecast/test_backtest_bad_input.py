"""`llmobs forecast backtest` on input that used to crash it, hang it, or print a misleading answer.

Each case is what a user gets: one `error: …` line and exit 2 naming what to change, or — where the input is
legitimate but has nothing to rank — a result that says so instead of naming a winner."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llmobs.cli import app
from llmobs.cli_support import run_app
from llmobs.forecast.demand import DEFAULT_TRACE_DIR, MAX_GRID_ROWS, read_trace
from llmobs.forecast.errors import ForecastInputError

SERVEGEN_HEADER = "window_start_s,total_rate_rps,mean_input_tokens_est,mean_output_tokens_est\n"


def backtest(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run_app(app, ["forecast", "backtest", *args])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(code: int, out: str, err: str) -> str:
    lines = [ln for ln in (out + err).splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), out + err
    return lines[0]


@pytest.fixture
def small_servegen(tmp_path: Path) -> Path:
    """Three days of the bundled ServeGen trace: enough to score, quick to back-test."""
    trace = tmp_path / "servegen.csv"
    with (DEFAULT_TRACE_DIR / "servegen_m-small_rate_10min.csv").open() as f:
        trace.write_text("".join(next(f) for _ in range(3 * 144 + 1)))
    return trace


# ---------------------------------------------------------------- 3: a step that would need gigabytes


def test_a_step_too_fine_for_the_trace_is_refused_before_any_bucket_is_allocated(tmp_path: Path) -> None:
    rates = tmp_path / "windows.csv"  # 3 windows = 1,800 s: 1.8 M buckets of 1 ms
    rates.write_text(SERVEGEN_HEADER + "0,5,100,10\n600,6,100,10\n1200,7,100,10\n")
    requests = tmp_path / "requests.csv"  # 1,200 s of requests: 1.2 M buckets of 1 ms
    requests.write_text("timestamp_ms,input_length,output_length\n0,5,1\n600000,5,1\n1200000,5,1\n")
    for trace, smallest in ((rates, "0.0018s"), (requests, "0.0012s")):
        with pytest.raises(ForecastInputError) as e:
            read_trace(trace, 0.001)
        message = str(e.value)
        assert "--step 0.001s" in message and f"use --step {smallest} or more" in message
        assert f"at most {MAX_GRID_ROWS:,}" in message
        assert len(read_trace(trace, float(smallest[:-1]))) <= MAX_GRID_ROWS  # the step it names works


def test_cli_names_the_smallest_step_for_a_14_day_trace(capsys: pytest.CaptureFixture[str]) -> None:
    """The QA case: 14 days at 1 ms was 1.2 billion buckets (~24 GB) and an OOM kill, no message."""
    code, out, err = backtest(["--trace", str(DEFAULT_TRACE_DIR / "servegen_m-small_rate_10min.csv"),
                               "--step", "1ms"], capsys)
    line = one_error_line(code, out, err)
    assert "1,209,600,000 buckets" in line and line.endswith("use --step 1.21s or more")


# ---------------------------------------------------------------- 4: absurd rates, huge scores


@pytest.mark.parametrize(("row", "column"), [("1200,1e308,100,10", "total_rate_rps"),
                                             ("1200,5,1e308,10", "mean_input_tokens_est")])
def test_an_implausible_rate_window_is_refused_naming_its_row(tmp_path: Path, row: str, column: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text(SERVEGEN_HEADER + "".join(f"{i * 600},5,100,10\n" for i in range(2)) + row + "\n"
                     + "".join(f"{i * 600},5,100,10\n" for i in range(3, 60)))
    line = one_error_line(*backtest(["--trace", str(trace)], capsys))
    assert f"column {column} row 4 is 1e+308" in line and "fix or delete that row" in line


def test_a_huge_score_is_printed_whole_not_cut_into_a_smaller_number(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # Legal rates (≤ 1e9 req/s) can still make WAPE ~1e10: a fleet at 1e9 req/s that drops to 0.001 just as
    # scoring starts. 15 fixed-point digits in an 80-column table came out as "384615…".
    trace = tmp_path / "drop.csv"
    trace.write_text(SERVEGEN_HEADER + "".join(f"{i * 600},{1e9 if i <= 13 else 0.001},100,10\n"
                                               for i in range(40)))
    code, out, err = backtest(["--trace", str(trace)], capsys)
    assert code == 0, out + err
    table = out.split("best at")[0]
    # a narrow table may fold a cell onto a second line, but never cuts it to "…"
    assert "3.85e+" in table and "…" not in table


# ---------------------------------------------------------------- 5: nothing to score


@pytest.fixture
def silent_scored_part(tmp_path: Path) -> Path:
    """Two requests in the first minute, a last one 50.5 minutes later (in the dropped partial bucket): every
    scored minute has no traffic. ARIMA's fit on that window is rank-deficient (statsmodels warns)."""
    trace = tmp_path / "silent.csv"
    trace.write_text("timestamp_ms,input_length,output_length\n0,10,5\n1000,10,5\n3030000,10,5\n")
    return trace


def test_no_winner_is_named_when_no_score_is_defined(silent_scored_part: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = backtest(["--trace", str(silent_scored_part)], capsys)
    assert code == 0, out + err
    assert "\nbest at" not in out and "(*)" not in out and "│ * │" not in out
    assert "no best at 60s: the scored part (steps 30–49 of 50) has no traffic: every value is zero; WAPE is " \
           "undefined on it" in " ".join(out.split())
    # the fit warning is a note of the result, not stray text on stderr
    assert err == "" and "SingularMatrixWarning" in out


def test_json_with_undefined_scores_is_valid_json(silent_scored_part: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = backtest(["--trace", str(silent_scored_part), "--json"], capsys)
    assert code == 0 and err == "", out + err

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    d = json.loads(out, parse_constant=refuse)
    assert d["best"] is None and "every value is zero" in d["no_winner"]
    assert all(s["wape"] is None and s["pinball_scaled"] is None for s in d["scores"])
    assert any("SingularMatrixWarning" in note for note in d["notes"])


def test_a_scored_series_still_names_its_winner(small_servegen: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = backtest(["--trace", str(small_servegen), "--json"], capsys)
    d = json.loads(out)
    assert code == 0 and d["best"] in {s["forecaster"] for s in d["scores"]} and d["no_winner"] is None


# ---------------------------------------------------------------- 6: --plot checked before the run


@pytest.mark.parametrize(("plot", "needle"), [
    ("out.txt", ".txt is not an image format matplotlib writes"),
    ("nodir/out.png", "directory nodir does not exist"),
    ("adir", "is a directory"),
    ("noext", "has no suffix"),
    ("", "--plot is empty"),
])
def test_a_bad_plot_path_is_one_error_line_and_writes_nothing(
        small_servegen: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plot: str, needle: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "work"
    (work / "adir").mkdir(parents=True)
    monkeypatch.chdir(work)
    line = one_error_line(*backtest(["--trace", str(small_servegen), "--plot", plot], capsys))
    assert needle in line
    assert sorted(os.listdir(work)) == ["adir"] and not os.listdir(work / "adir")  # no adir.png, no .png


def test_a_good_plot_path_still_writes_the_image(small_servegen: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    svg = tmp_path / "bt.svg"
    code, out, err = backtest(["--trace", str(small_servegen), "--plot", str(svg)], capsys)
    assert code == 0, out + err
    assert svg.read_text().lstrip().startswith("<?xml")


# ---------------------------------------------------------------- 7: what is wrong with --trace


@pytest.mark.parametrize(("trace", "needle"), [
    ("", "trace path is empty"),
    ("/dev/null", "trace /dev/null is not a regular file"),
    ("DIR", "is a directory, not a trace file"),
])
def test_a_trace_path_that_is_no_file_says_why(tmp_path: Path, trace: str, needle: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    line = one_error_line(*backtest(["--trace", trace.replace("DIR", str(tmp_path))], capsys))
    assert needle in line and "not found" not in line

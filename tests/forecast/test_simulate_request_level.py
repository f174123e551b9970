"""`llmobs forecast simulate --level request`: real trace rows and a Prometheus history through the
request-level fleet simulator, one policy or all of them, and every bad input as one `error:` line."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

from llmobs.cli import app
from llmobs.cli_support import run_app
from llmobs.forecast.cli import REQUEST_POLICIES
from llmobs.forecast.demand import DEFAULT_TRACE_DIR
from llmobs.simulate import check_slo, load_profile, simulate
from llmobs.simulate.fluid import simulate_fluid
from llmobs.simulate.policies import POLICIES, load_test_capacity
from llmobs.simulate.whatif import REQUEST_LEVEL_LIMIT, build_fleet, prepare, traffic_from_trace

SERVEGEN = str(DEFAULT_TRACE_DIR / "servegen_m-small_rate_10min.csv")
BUNDLED_PROFILE = Path(__file__).resolve().parents[2] / "src" / "llmobs" / "simulate" / "profiles"
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Run:
    """`llmobs forecast simulate --level request ARGS` → (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = run_app(app, ["forecast", "simulate", "--level", "request", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _azure_rows(tmp_path: Path, rows: int = 1500) -> Path:
    """The first `rows` requests of the Azure 2023 conversation trace, as their own CSV."""
    out = tmp_path / "conv.csv"
    with (DEFAULT_TRACE_DIR / "AzureLLMInferenceTrace_conv.csv").open() as f:
        out.write_text("".join(next(f) for _ in range(rows + 1)))
    return out


def _json(code: int, out: str, err: str) -> dict:
    assert code == 0, out + err
    return json.loads(out)


def test_keda_on_a_real_trace_slice_reports_what_its_run_did(tmp_path: Path, cli: Run) -> None:
    trace = _azure_rows(tmp_path)
    d = _json(*cli("--trace", str(trace), "--policy", "keda-rate", "--knob", "1.5", "--capacity-per-replica", "2",
                   "--compress", "4", "--cold-start", "1m", "--json"))
    assert d["policy"] == "keda-rate" and d["knob_value"] == 1.5 and d["requests"] == 1500
    assert d["capacity_per_replica_rps"] == 2 and d["cold_start_seconds"] == 60
    # the same run through the library: the CLI adds nothing and drops nothing
    fleet = build_fleet(cold_start_s=60.0)
    setup = prepare(traffic_from_trace(str(trace), compress=4.0), fleet, capacity_rps=2.0)
    result = simulate(setup.traffic.workload, setup.fleet.config, POLICIES["keda-rate"].build(1.5, setup.context))
    assert d["attainment"] == pytest.approx(result.attainment(1.0, 0.1))
    assert d["gpu_hours"] == pytest.approx(result.gpu_hours)
    assert d["goodput_per_gpu_hour"] == pytest.approx(result.goodput_per_gpu_hour(1.0, 0.1))
    timeline = d["replica_timeline"]
    assert timeline[0] == [0.0, d["initial_replicas"], 0]
    assert d["scale_events"] == len(timeline) - 1 > 0  # ×4 load on ~2 req/s replicas: KEDA scaled
    assert d["peak_replicas"] == max(ready + starting for _, ready, starting in timeline)


def test_capacity_is_profiled_on_the_training_part_when_not_given(tmp_path: Path, cli: Run) -> None:
    trace = str(_azure_rows(tmp_path))
    d = _json(*cli("--trace", trace, "--json"))
    setup = prepare(traffic_from_trace(trace), build_fleet(), capacity_rps=None)
    expected = load_test_capacity(setup.context.training, setup.fleet.config, 1.0, 0.1)
    assert d["capacity_per_replica_rps"] == pytest.approx(expected) and expected > 0
    assert d["knob_value"] == pytest.approx(POLICIES["keda-rate"].default(setup.context))
    assert any("profiled on one simulated replica" in note for note in d["notes"])


def test_the_bundled_mooncake_trace_runs_with_its_defaults_and_says_what_vllm_rejected(cli: Run) -> None:
    """Mooncake records requests in groups at one timestamp, and some of its prompts exceed max_model_len or
    cannot be prefilled within the TTFT: the load test still finds a capacity (Poisson arrivals, relative to
    what the mix attains alone), and the rejected prompts are named in the notes, not left to be guessed from
    the attainment."""
    d = _json(*cli("--trace", str(DEFAULT_TRACE_DIR / "mooncake_fast25_conversation.csv"), "--duration", "5m",
                   "--json"))
    assert 0.05 < d["capacity_per_replica_rps"] < 1.0  # 12,000-token prompts: a fraction of a request per second
    rejected = [note for note in d["notes"] if "requests rejected: prompt ≥ max_model_len" in note]
    assert len(rejected) == 1 and int(rejected[0].split()[0]) > 0
    assert 0 < d["attainment"] < 1


def test_a_minute_of_traffic_still_gets_a_replicas_capacity_not_a_burst(tmp_path: Path, cli: Run) -> None:
    """A few dozen requests all fit in one burst within the SLO at any rate: the load test sends them again
    until a 1 % tail means something, so the capacity is what the full trace's load test finds, within 3×
    (it was 1.7 million requests/s)."""
    short = _json(*cli("--trace", str(_azure_rows(tmp_path, 40)), "--json"))
    full = load_test_capacity(traffic_from_trace(str(_azure_rows(tmp_path, 1500))).workload,
                              build_fleet().config, 1.0, 0.1)
    assert full / 3 < short["capacity_per_replica_rps"] < full * 3


def test_a_lower_threshold_buys_attainment_with_gpu_hours(tmp_path: Path, cli: Run) -> None:
    trace = str(_azure_rows(tmp_path))
    common = ("--trace", trace, "--capacity-per-replica", "2", "--compress", "4", "--json")
    eager = _json(*cli(*common, "--knob", "0.6"))
    lazy = _json(*cli(*common, "--knob", "6"))
    assert eager["gpu_hours"] > lazy["gpu_hours"] and eager["peak_replicas"] > lazy["peak_replicas"]
    assert eager["attainment"] >= lazy["attainment"]
    strict = _json(*cli(*common, "--knob", "6", "--ttft-slo", "200ms", "--tpot-slo", "20ms"))
    assert strict["gpu_hours"] == pytest.approx(lazy["gpu_hours"])  # the SLO scores the run, it does not change it
    assert strict["attainment"] < lazy["attainment"]


def test_compare_runs_every_policy_at_its_default_on_the_same_traffic(tmp_path: Path, cli: Run) -> None:
    trace = str(_azure_rows(tmp_path, 800))
    args = ("--trace", trace, "--capacity-per-replica", "3", "--compare")
    d = _json(*cli(*args, "--json"))
    assert [p["policy"] for p in d["policies"]] == list(POLICIES)
    assert all(p["requests"] == 800 and 0 <= p["attainment"] <= 1 and p["gpu_hours"] > 0 for p in d["policies"])
    alone = _json(*cli("--trace", trace, "--capacity-per-replica", "3", "--policy", "keda-rate", "--json"))
    (keda,) = [p for p in d["policies"] if p["policy"] == "keda-rate"]
    assert keda == {k: v for k, v in alone.items() if k in keda}
    code, out, err = cli(*args)
    assert code == 0, err
    for column in ("attainment", "GPU-hours", "goodput/GPU-h", "scale events", "peak replicas"):
        assert column in out
    assert all(key in out for key in POLICIES)


def test_traffic_beyond_the_request_level_runs_in_the_fluid_mode(cli: Run) -> None:
    """Two hours of ServeGen are ~5 million requests: rate windows in the fluid mode, never drawn one by one."""
    d = _json(*cli("--trace", SERVEGEN, "--duration", "2h", "--capacity-per-replica", "150", "--json"))
    assert d["mode"] == "fluid" and d["requests"] > REQUEST_LEVEL_LIMIT
    assert d["ttft_p90_s"] is None and any("fluid mode" in note for note in d["notes"])
    setup = prepare(traffic_from_trace(SERVEGEN, duration_s=7200.0), build_fleet(), capacity_rps=150.0)
    assert setup.traffic.fluid and setup.traffic.workload is None and len(setup.traffic.training) > 0
    result = simulate_fluid(setup.traffic.fluid_demand, setup.fleet.config,
                            POLICIES["keda-rate"].build(d["knob_value"], setup.context))
    assert d["requests"] == round(result.requests)
    assert d["attainment"] == pytest.approx(result.attainment(1.0, 0.1))
    assert d["gpu_hours"] == pytest.approx(result.gpu_hours)
    assert d["scale_events"] == len(result.replica_timeline) - 1


def test_list_policies_and_help_name_every_policy(cli: Run, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli("--list-policies")
    assert code == 0
    for spec in POLICIES.values():
        assert spec.key in out and spec.knob.split()[0] in out
    assert run_app(app, ["forecast", "simulate", "--help"]) == 0
    assert tuple(POLICIES) == REQUEST_POLICIES  # what --help lists is the registry
    help_text = " ".join(capsys.readouterr().out.split())
    assert " | ".join(REQUEST_POLICIES) in help_text.replace("│ ", "").replace(" │", "")


# --- Prometheus history --------------------------------------------------------------------------------

@contextlib.contextmanager
def _prometheus(rate: float, prompt: float | None, output: float | None,
                queries: list[str] | None = None) -> Iterator[str]:
    """A stand-in Prometheus query_range API on loopback: constant request rate and token rates (None: the
    series is absent, as on a Prometheus that scrapes no token counter), for llmobs' series or vLLM's; the
    queries it answered are appended to `queries`."""
    tokens = {"prompt_tokens": None if prompt is None else rate * prompt,
              "generation_tokens": None if output is None else rate * output}
    answers = {"request_rate": rate, "request_success_total": rate, **tokens}
    seen = queries if queries is not None else []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            q = parse_qs(urlparse(self.path).query)
            query, start, end = q["query"][0], float(q["start"][0]), float(q["end"][0])
            step = float(q["step"][0].rstrip("s"))
            seen.append(query)
            value = next((v for k, v in answers.items() if k in query), None)
            result = [] if value is None else [{"metric": {}, "values": [
                [t, str(value)] for t in np.arange(start, end + step / 2, step).tolist()]}]
            body = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_prometheus_history_becomes_requests_at_its_rate_and_lengths(cli: Run) -> None:
    with _prometheus(rate=4.0, prompt=300.0, output=60.0) as url:
        d = _json(*cli("--prometheus", url, "--model", "m", "--history", "30m", "--step", "1m",
                       "--capacity-per-replica", "3", "--json"))
    expected = 4.0 * 31 * 60  # the range's 31 points are 31 windows of 60 s at 4 req/s: Poisson, within 5 sigma
    assert abs(d["requests"] - expected) < 5 * expected ** 0.5
    assert d["source"] == "prometheus" and any("Poisson" in n for n in d["notes"])
    assert 0 <= d["attainment"] <= 1 and d["gpu_hours"] > 0


def test_prometheus_history_of_vllms_own_counters(cli: Run) -> None:
    queries: list[str] = []
    with _prometheus(rate=3.0, prompt=200.0, output=50.0, queries=queries) as url:
        d = _json(*cli("--prometheus", url, "--model", "llama", "--promql", "vllm", "--history", "20m",
                       "--capacity-per-replica", "3", "--json"))
    assert sorted(queries) == sorted([
        'sum(rate(vllm:request_success_total{model_name="llama"}[1m]))',
        'sum(rate(vllm:prompt_tokens_total{model_name="llama"}[1m]))',
        'sum(rate(vllm:generation_tokens_total{model_name="llama"}[1m]))'])
    assert abs(d["requests"] - 3.0 * 21 * 60) < 5 * (3.0 * 21 * 60) ** 0.5


def test_a_long_prometheus_history_runs_its_windows_in_the_fluid_mode(cli: Run) -> None:
    with _prometheus(rate=1000.0, prompt=300.0, output=60.0) as url:
        d = _json(*cli("--prometheus", url, "--model", "m", "--history", "1h", "--capacity-per-replica", "60",
                       "--json"))
    assert d["mode"] == "fluid" and d["requests"] == 1000 * 61 * 60  # expected requests, not a draw
    assert 0 <= d["attainment"] <= 1 and d["gpu_hours"] > 0
    assert d["initial_replicas"] == 17  # the first minute's 1000 req/s at 60 per replica
    assert d["peak_replicas"] == 21  # KEDA at its default threshold, 0.8 × 60 = 48 req/s: ceil(1000 / 48)


def test_a_prometheus_history_without_traffic_says_so_not_that_lengths_are_missing(cli: Run) -> None:
    with _prometheus(rate=0.0, prompt=100.0, output=20.0) as url:
        code, out, err = cli("--prometheus", url, "--model", "m", "--history", "10m", "--capacity-per-replica", "3")
    assert code == 2 and "no request rate above 0 in any window" in err and "--mean-prompt" not in err, out + err


def test_prometheus_without_token_series_needs_the_mean_lengths(cli: Run) -> None:
    with _prometheus(rate=2.0, prompt=None, output=None) as url:
        code, out, err = cli("--prometheus", url, "--model", "m", "--history", "10m", "--capacity-per-replica", "3")
        assert code == 2 and err.startswith("error: ") and "--mean-prompt-tokens" in err, out + err
        d = _json(*cli("--prometheus", url, "--model", "m", "--history", "10m", "--capacity-per-replica", "3",
                       "--mean-prompt-tokens", "200", "--mean-output-tokens", "40", "--json"))
    assert d["requests"] > 0


def test_prometheus_draws_lengths_around_its_token_means() -> None:
    from llmobs.forecast.demand import PrometheusRangeReader
    from llmobs.simulate.whatif import traffic_from_prometheus

    with _prometheus(rate=10.0, prompt=500.0, output=80.0) as url, PrometheusRangeReader(url) as reader:
        series = reader.demand("m", 0.0, 3600.0, 60.0)
    w = traffic_from_prometheus(series, seed=3).workload
    assert w.prompt.mean() == pytest.approx(500, rel=0.05) and w.output.mean() == pytest.approx(80, rel=0.05)
    assert (np.diff(w.arrival) >= 0).all() and w.arrival[-1] <= 3660


# --- bad input: one line, exit 2 -----------------------------------------------------------------------

def _bad_trace(tmp_path: Path, edit: Callable[[list[list[str]]], None], header: str | None = None) -> str:
    lines = _azure_rows(tmp_path, 50).read_text().splitlines()
    rows = [line.split(",") for line in lines[1:]]
    edit(rows)
    out = tmp_path / "bad.csv"
    out.write_text("\n".join([header or lines[0], *(",".join(r) for r in rows)]) + "\n")
    return str(out)


def _t4_profile(tmp_path: Path) -> str:
    """The bundled Llama 3.1 8B profile on a 16 GiB T4: its weights leave no room for a KV cache."""
    text = (BUNDLED_PROFILE / "llama-3.1-8b-h100.yaml").read_text().replace("gpu: H100-80GB", "gpu: T4")
    out = tmp_path / "t4.yaml"
    out.write_text(text)
    return str(out)


def _h200_profile(tmp_path: Path) -> str:
    """The bundled profile on an H200: a fleet the fluid mode's committed table was not fitted for."""
    text = (BUNDLED_PROFILE / "llama-3.1-8b-h100.yaml").read_text().replace("gpu: H100-80GB", "gpu: H200")
    out = tmp_path / "h200.yaml"
    out.write_text(text)
    return str(out)


BAD = {
    "no length columns": (lambda p: ["--trace", _bad_trace(p, lambda rows: [r.__delitem__(slice(1, 3)) for r in rows],
                                                           header="TIMESTAMP")], "prompt and output lengths"),
    "negative length": (lambda p: ["--trace", _bad_trace(p, lambda rows: rows[3].__setitem__(1, "-5"))],
                        "prompt length -5"),
    "absurd length": (lambda p: ["--trace", _bad_trace(p, lambda rows: rows[3].__setitem__(2, "99999999999"))],
                      "output length"),
    "profile holds no request": (lambda p: ["--trace", str(_azure_rows(p, 50)), "--profile", _t4_profile(p)],
                                 "exceed usable GPU memory"),
    "unknown profile": (lambda p: ["--trace", str(_azure_rows(p, 50)), "--profile", "h100-magic"],
                        "bundled profiles"),
    "unmeetable TPOT": (lambda p: ["--trace", str(_azure_rows(p, 50)), "--tpot-slo", "1ms"],
                        "no number of replicas can meet it"),
    "unmeetable TTFT": (lambda p: ["--trace", str(_azure_rows(p, 50)), "--ttft-slo", "1ms"],
                        "no number of replicas can meet it"),
    "unknown policy": (lambda p: ["--trace", str(_azure_rows(p, 50)), "--policy", "magic"], "unknown policy"),
    "negative knob": (lambda p: ["--trace", str(_azure_rows(p, 50)), "--capacity-per-replica", "2", "--knob", "-1"],
                      "out of range"),
    "absurd knob": (lambda p: ["--trace", str(_azure_rows(p, 50)), "--capacity-per-replica", "2", "--knob", "1e9"],
                    "out of range"),
    "unreachable Prometheus": (lambda p: ["--prometheus", "http://127.0.0.1:9", "--model", "m"], "unreachable"),
    "Prometheus without model": (lambda p: ["--prometheus", "http://127.0.0.1:9"], "--model"),
    "no traffic given": (lambda p: [], "--trace FILE or --prometheus URL"),
    "a capacity no replica has": (
        lambda p: ["--trace", str(_azure_rows(p, 50)), "--capacity-per-replica", "1e-9"], "≥ 0.001/s"),
    "the clairvoyant bound on rate windows": (
        lambda p: ["--trace", SERVEGEN, "--duration", "2h", "--policy", "clairvoyant"], "needs every request"),
    "empty policy name": (lambda p: ["--trace", str(_azure_rows(p, 50)), "--policy", ""], "unknown policy"),
    "Prometheus options with a trace": (
        lambda p: ["--trace", str(_azure_rows(p, 50)), "--promql", "vllm", "--mean-prompt-tokens", "3"],
        "--promql, --mean-prompt-tokens: options of --prometheus"),
    "trace cuts with Prometheus": (lambda p: ["--prometheus", "http://127.0.0.1:9", "--model", "m", "--start", "5m"],
                                   "--start and --duration cut a --trace"),
    "replay options at the request level": (lambda p: ["--trace", str(_azure_rows(p, 50)), "--utilization", "7"],
                                            "--utilization: replay-level options"),
    "a polling loop no autoscaler runs": (
        lambda p: ["--trace", str(_azure_rows(p, 50)), "--polling-interval", "1ms"], "at most once a second"),
    "more replicas than a request-level run holds": (
        lambda p: ["--trace", str(_azure_rows(p, 50)), "--min-replicas", "100000", "--max-replicas", "100000"],
        "--min-replicas 100,000"),
    "long traffic on a profile the fluid mode has no table for": (
        lambda p: ["--trace", SERVEGEN, "--duration", "2h", "--profile", _h200_profile(p)], "need the fluid mode"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_error_line(case: str, tmp_path: Path, cli: Run) -> None:
    make_args, needle = BAD[case]
    code, out, err = cli(*make_args(tmp_path))
    lines = [ln for ln in (out + err).splitlines() if ln.strip()]
    assert code == 2, out + err
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], out + err


def test_start_zero_is_the_beginning(tmp_path: Path, cli: Run) -> None:
    trace = str(_azure_rows(tmp_path, 200))
    args = ("--trace", trace, "--capacity-per-replica", "2", "--json")
    assert _json(*cli(*args, "--start", "0")) == _json(*cli(*args))


def test_replay_stays_the_default_and_refuses_request_options(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    trace = str(_azure_rows(tmp_path, 400))
    code = run_app(app, ["forecast", "simulate", "--trace", trace, "--capacity-per-replica", "1", "--json"])
    out, err = capsys.readouterr()
    assert code == 0 and "underprovisioned_minutes" in json.loads(out), err
    code = run_app(app, ["forecast", "simulate", "--trace", trace, "--capacity-per-replica", "1", "--compare"])
    out, err = capsys.readouterr()
    assert code == 2 and err.strip() == "error: --compare: request-level options, add --level request"


def test_the_fleet_is_the_profiles_and_starts_sized_for_the_first_minute() -> None:
    fleet = build_fleet(ttft_slo_s=0.5, tpot_slo_s=0.05, cold_start_s=30.0)
    profile = load_profile("llama-3.1-8b-h100")
    assert fleet.config.profile == profile and fleet.config.cold_start_s == 30.0
    assert fleet.config.engine.kv_blocks == profile.capacity(context_tokens=32768).num_blocks
    check_slo(fleet.config, 0.5, 0.05)  # what build_fleet accepted, the simulator accepts
    traffic = traffic_from_trace(str(DEFAULT_TRACE_DIR / "AzureLLMInferenceTrace_conv.csv"), duration_s=300.0,
                                 compress=10.0)
    first_minute = int((traffic.workload.arrival <= 60.0).sum())
    setup = prepare(traffic, fleet, capacity_rps=3.0)
    assert setup.fleet.config.initial_replicas == int(np.ceil(first_minute / 60 / 3.0)) > 1
    assert setup.context.capacity_rps == 3.0 and setup.context.future is traffic.workload
    assert setup.context.training is not None and 0 < len(setup.context.training) < len(traffic.workload)


def test_a_model_with_a_shorter_context_serves_at_most_that(tmp_path: Path) -> None:
    """vLLM refuses a --max-model-len above the model's max_position_embeddings: the simulated fleet does too."""
    text = (BUNDLED_PROFILE / "llama-3.1-8b-h100.yaml").read_text()
    short = tmp_path / "short.yaml"
    short.write_text(text.replace("max_position_embeddings: 131072", "max_position_embeddings: 4096"))
    assert build_fleet(str(short)).config.engine.max_model_len == 4096
    assert build_fleet().config.engine.max_model_len == 32_768  # the bundled model's 131,072 is capped as before

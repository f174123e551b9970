"""`llmobs forecast {backtest, simulate, capacity}`, as typer commands.

`register(app)` adds the `forecast` group to the main `llmobs` app (owned by `llmobs.cli`), and the old
top-level `llmobs simulate` / `llmobs capacity` as hidden names that only say where the command moved.
`forecast simulate --level request` runs the request-level simulator (`llmobs.simulate`, a layer above
this one), handed in by the CLI through `register` as `simulate --html`'s page writer is.
Every bad input surfaces as a `ForecastInputError` (or a bad DURATION), printed as one `error: …` line
with exit code 2 — never a traceback. Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import json
import math
import numbers
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from llmobs._extras import require
from llmobs.cli_support import DURATION, DURATION_HELP, OFFSET, example, fail, one_line_errors
from llmobs.forecast.errors import ForecastInputError

console = Console()
MOVED = {"simulate": "forecast simulate", "capacity": "forecast capacity"}
"""Commands that were top level before the `forecast` group held them all."""


def _fmt(x: float, digits: int = 3) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _score_cell(x: float) -> str:
    """A backtest score for the table: scores are ratios near 1, so an enormous one is shown in scientific
    notation — 302 fixed-point digits would be cut by the table to a short, misleading number."""
    return _fmt(x) if not math.isfinite(x) or abs(x) < 1e6 else f"{x:.3g}"


def _json_ready(x: Any) -> Any:
    """`x` with every NaN or ±inf number as None (JSON null) and numpy scalars as Python numbers: `json.dumps`
    would otherwise write bare NaN, which no JSON parser accepts."""
    if isinstance(x, dict):
        return {k: _json_ready(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_ready(v) for v in x]
    if isinstance(x, (bool, str)) or x is None:
        return x
    if isinstance(x, numbers.Integral):
        return int(x)
    if isinstance(x, numbers.Real):
        f = float(x)
        return f if math.isfinite(f) else None
    return x


def _print_json(d: Any) -> None:
    print(json.dumps(_json_ready(d), indent=2, default=float, allow_nan=False))


PLOT_EXAMPLE = ".png, .svg or .pdf"


def _plot_path(raw: str | Path | None, option: str = "--plot") -> Path | None:
    """Check a plot path before the (long) run that precedes the plot: matplotlib picks the format from the
    suffix, refuses one it does not know, and silently appends `.png` to a path without one (`--plot /some/dir`
    would write /some/dir.png). None when no plot was asked for."""
    if raw is None:
        return None
    text = str(raw)
    if not text.strip():
        raise ForecastInputError(f"{option} is empty: give a file name ending in {PLOT_EXAMPLE}")
    path = Path(text)
    if path.is_dir():
        raise ForecastInputError(f"{option} {text} is a directory: give a file name such as {path / 'plot.png'}")
    suffix = path.suffix.lower().lstrip(".")
    if not suffix:
        raise ForecastInputError(f"{option} {text} has no suffix: end it in {PLOT_EXAMPLE} (the suffix picks the "
                                 "image format)")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    supported = FigureCanvasAgg.get_supported_filetypes()
    if suffix not in supported:
        raise ForecastInputError(f"{option} {text}: .{suffix} is not an image format matplotlib writes; use "
                                 f"{PLOT_EXAMPLE} (or {', '.join('.' + s for s in sorted(supported))})")
    if not path.parent.is_dir():
        raise ForecastInputError(f"{option} {text}: directory {path.parent} does not exist")
    return path


def _save_plot(fig: Any, out: Path) -> None:
    """Save, turning a write failure (read-only directory, full disk) into the one-line input error."""
    try:
        fig.savefig(out)
    except OSError as exc:
        raise ForecastInputError(f"cannot write plot {out}: {exc.strerror or exc}") from exc


def _check_capacity_floats(given: dict[str, float | None]) -> None:
    """Refuse bad float options under the option's own name, before `estimate_capacity` (which checks the
    same under its keyword names) sees them: NaN passed every `< 0` check and ended as an `unexpected
    ValueError`, and `--params-b -1` was reported as "weights -1.86 GiB"."""
    for option, value in given.items():
        if value is not None and not math.isfinite(value):
            raise ForecastInputError(f"{option} {value} is not a finite number")
    if given["--weights-gib"] is not None and given["--params-b"] is not None:  # weights used to win silently
        raise ForecastInputError("give --weights-gib or --params-b, not both (each sets the weight size)")
    for option, strict in (("--params-b", True), ("--weights-gib", False), ("--usd-per-hour", False),
                           ("--activation-reserve-gib", False)):
        value = given[option]
        if value is not None and (value <= 0 if strict else value < 0):
            raise ForecastInputError(f"{option} {value:g} must be {'>' if strict else '≥'} 0")


@one_line_errors(ForecastInputError)
def capacity(
    model_config: Annotated[Path | None, typer.Option(help="Hugging Face config.json of the model")] = None,
    gpu_memory_gib: Annotated[float | None, typer.Option(help="memory of one GPU, GiB")] = None,
    context: Annotated[int, typer.Option(help="context length per sequence, tokens")] = 8192,
    gpu: Annotated[str | None, typer.Option(help="GPU name from the table (sets memory and $/h)")] = None,
    gpu_table: Annotated[Path | None, typer.Option(help="YAML GPU table replacing the bundled one")] = None,
    usd_per_hour: Annotated[float | None, typer.Option(help="price of one GPU per hour (overrides table)")] = None,
    gpu_memory_utilization: Annotated[float, typer.Option(help="vLLM --gpu-memory-utilization")] = 0.9,
    kv_cache_dtype: Annotated[str, typer.Option(help="auto (model dtype), fp8, ...")] = "auto",
    weights_gib: Annotated[float | None, typer.Option(help="weight size, GiB (default: estimated)")] = None,
    params_b: Annotated[float | None, typer.Option(help="parameters, billions (instead of weights-gib)")] = None,
    tensor_parallel_size: Annotated[int, typer.Option("--tp", help="tensor-parallel size")] = 1,
    block_size: Annotated[int, typer.Option(help="KV block size, tokens (vLLM's: 1, 8, 16, 32, 64, 128, 256)")] = 16,
    activation_reserve_gib: Annotated[float, typer.Option(help="per-GPU reserve for activations")] = 1.0,
    metrics_page: Annotated[
        Path | None, typer.Option(help="a saved /metrics page: use its vllm:cache_config_info instead")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """How many tokens and concurrent sequences one replica's KV cache holds."""
    require("forecast")  # the GPU table and inputs are read through forecast.demand (pandas)
    from llmobs.forecast.capacity import (
        capacity_from_cache_config_info,
        estimate_capacity,
        load_gpu_table,
        load_model_config,
        lookup_gpu,
        parse_cache_config_info,
    )

    _check_capacity_floats({
        "--gpu-memory-gib": gpu_memory_gib, "--usd-per-hour": usd_per_hour,
        "--gpu-memory-utilization": gpu_memory_utilization, "--weights-gib": weights_gib, "--params-b": params_b,
        "--activation-reserve-gib": activation_reserve_gib,
    })
    if metrics_page is not None:
        from llmobs.forecast.demand import read_input_text

        page = read_input_text(metrics_page, "metrics page")
        cap = capacity_from_cache_config_info(parse_cache_config_info(page), context)
    else:
        if model_config is None:
            raise ForecastInputError("give --model-config PATH (or --metrics-page FILE)")
        config = load_model_config(model_config)
        price = usd_per_hour
        name = ""
        if gpu is not None:
            g = lookup_gpu(gpu, load_gpu_table(gpu_table))
            name = g.name
            # `is None`, not `or`: an explicit --gpu-memory-gib 0 is refused below, not read as "unset"
            gpu_memory_gib = g.memory_gib if gpu_memory_gib is None else gpu_memory_gib
            price = price if price is not None else g.usd_per_hour
        if gpu_memory_gib is None:
            raise ForecastInputError("give --gpu-memory-gib GIB or --gpu NAME")
        cap = estimate_capacity(
            config,
            gpu_memory_gib=gpu_memory_gib,
            context_tokens=context,
            gpu_memory_utilization=gpu_memory_utilization,
            kv_cache_dtype=kv_cache_dtype,
            weights_gib=weights_gib,
            params_billion=params_b,
            tensor_parallel_size=tensor_parallel_size,
            block_size=block_size,
            activation_reserve_gib=activation_reserve_gib,
            gpu_name=name,
            usd_per_hour=price,
        )
    d = cap.to_dict()
    if as_json:
        _print_json(d)
        return
    t = Table(title=f"KV capacity ({cap.source})", show_header=False)
    t.add_row("KV bytes per token", f"{cap.kv_bytes_per_token:,} ({cap.kv_bytes_per_token / 1024:.1f} KiB)")
    t.add_row("KV cache", f"{_fmt(cap.kv_cache_gib, 2)} GiB, {cap.num_blocks:,} blocks × {cap.block_size}")
    t.add_row("KV tokens that fit", f"{cap.kv_tokens:,}")
    t.add_row(f"max concurrent sequences at {cap.context_tokens:,} tokens", f"{cap.max_concurrent_sequences:,}")
    t.add_row("weights", f"{_fmt(cap.weights_gib, 2)} GiB")
    if cap.usd_per_hour is not None:
        t.add_row("$/h (replica)", f"{cap.usd_per_hour:.2f}")
    for note in cap.notes:
        t.add_row("note", note)
    console.print(t)


def _plot_backtest(result: Any, horizon: int, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = result.paths[(result.best, horizon)]
    fig, ax = plt.subplots(figsize=(10, 4), dpi=80)
    ax.plot(path.target_index, path.actual, lw=0.8, color="black", label="actual")
    ax.plot(path.target_index, path.point, lw=0.8, color="tab:blue", label=f"{result.best} forecast")
    ax.fill_between(path.target_index, path.point, path.upper, color="tab:blue", alpha=0.2,
                    label=f"up to q{result.quantile:g}")
    ax.set_ylabel("requests/s")
    ax.set_title(f"{result.source}: {horizon}-step-ahead forecast ({horizon * result.step_seconds:g}s)")
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    try:
        _save_plot(fig, out)
    finally:
        plt.close(fig)


@one_line_errors(ForecastInputError)
def backtest_cmd(
    # str, not Path: typer turns `--trace ''` into Path("."), and the message should say the path was empty
    trace: Annotated[str, typer.Option(metavar="FILE", help="trace CSV (formats in data/traces/README.md)")],
    step: Annotated[float | None, typer.Option(
        parser=DURATION, metavar="DURATION", help=f"bucket size {DURATION_HELP} (default: the trace's own)")] = None,
    horizon: Annotated[float | None, typer.Option(
        parser=DURATION, metavar="DURATION", help="forecast horizon, e.g. the cold start (default: 1 step)")] = None,
    quantile: Annotated[float, typer.Option(help="upper quantile of the band")] = 0.9,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    plot: Annotated[str | None, typer.Option(
        metavar="FILE", help=f"write an image ({PLOT_EXAMPLE}) of actual vs forecast with the band")] = None,
) -> None:
    """Rolling-origin backtest of every forecaster at one step and at the horizon."""
    require("forecast")
    from llmobs.forecast.backtest import backtest
    from llmobs.forecast.demand import read_trace

    plot_path = _plot_path(plot)  # before the backtest: a bad path must not cost the whole run
    series = read_trace(trace, step)
    h = max(1, math.ceil(horizon / series.step_seconds - 1e-9)) if horizon else 1
    with warnings.catch_warnings(record=True) as caught:
        # A fit on a window without variation makes statsmodels warn (SingularMatrixWarning) on stderr, in the
        # middle of the table or the JSON's stream: keep each distinct warning as a note instead.
        warnings.simplefilter("always")
        result = backtest(series, sorted({1, h}), quantile=quantile)
    fit_notes = list(dict.fromkeys(f"a forecaster's fit warned ({w.filename.split('site-packages/')[-1]}): "
                                   f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught))
    if plot_path is not None:
        _plot_backtest(result, h, plot_path)
    at = f"{h * result.step_seconds:g}s"
    if as_json:
        d = result.to_dict()
        d["notes"] = [*result.notes, *fit_notes]
        _print_json(d)
        return
    t = Table(title=f"backtest {result.source}: {result.n_points} steps of {result.step_seconds:g}s, "
              f"scored from step {result.eval_start}")
    for col in ("", "forecaster", "horizon", "WAPE", "MAPE", f"pinball q{quantile:g}/mean", "coverage", "n"):
        # fold, never "…": a cut number reads as a different number
        t.add_column(col, no_wrap=col in ("forecaster", ""), overflow="fold")
    for s in result.scores:
        mark = "*" if s.forecaster == result.best and s.horizon_steps == h and not result.no_winner else ""
        t.add_row(mark, s.forecaster, f"{s.horizon_steps * result.step_seconds:g}s", _score_cell(s.wape),
                  _score_cell(s.mape), _score_cell(s.pinball_scaled), _score_cell(s.coverage), str(s.n))
    console.print(t)
    if result.no_winner:
        console.print(f"no best at {at}: {result.no_winner}")
    else:
        console.print(f"best at {at}: {result.best} (*)")
    for name, why in result.skipped.items():
        console.print(f"skipped {name}: {why}")
    for note in (*result.notes, *fit_notes):
        console.print(f"note: {note}")


def _plot_replay(results: list[Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4), dpi=80)
    r0 = results[0]
    ax.plot(r0.index, r0.demand, lw=0.8, color="black", label="demand")
    for r in results:
        ax.step(r.index, r.ready_capacity, where="post", lw=0.9, label=f"{r.policy} ready capacity")
    ax.set_ylabel("requests/s")
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    try:
        _save_plot(fig, out)
    finally:
        plt.close(fig)


@dataclass(frozen=True)
class RequestLevelRun:
    """What `simulate --level request` hands to the request-level simulator (`llmobs.simulate`, a layer above
    this one, so the CLI passes it in through `register`). None = that simulator's default."""

    trace: Path | None
    prometheus: str | None
    model: str | None
    history_s: float
    promql: str
    step_s: float | None
    start_s: float
    duration_s: float | None
    policy: str | None
    knob: float | None
    compare: bool
    list_policies: bool
    profile: str | None
    ttft_slo_s: float | None
    tpot_slo_s: float | None
    compress: float
    initial_replicas: int | None
    cold_start_s: float | None
    polling_interval_s: float
    min_replicas: int
    max_replicas: int
    capacity_per_replica: float | None
    mean_prompt_tokens: float | None
    mean_output_tokens: float | None
    seed: int
    as_json: bool


RequestLevelRunner = Callable[[RequestLevelRun], None]
# `simulate --html` draws with the status page's chart code, which lives in the serving layer above this one:
# the CLI hands the writer in through `register` (path, title, replay results, notes).
HtmlWriter = Callable[[Path, str, Sequence[Any], Sequence[str]], None]


@dataclass(frozen=True)
class SimulateHooks:
    """What the layers above hand `simulate` through `register`. Each registered app's command carries its
    own (as its click context's `obj`), so registering the group on another app changes nothing here."""

    html_writer: HtmlWriter | None = None
    request_level: RequestLevelRunner | None = None

_PANEL = "Request level (--level request)"


def _request_option(*declarations: str, **settings: Any) -> Any:
    """An option of the request level, shown in its own --help panel."""
    return typer.Option(*declarations, rich_help_panel=_PANEL, **settings)
REQUEST_POLICIES = ("keda-rate", "keda-waiting", "aibrix-kpa", "llmd-wva", "dynamo-planner", "llmobs", "clairvoyant")
"""The request-level policies' keys, for --help (`llmobs.simulate.policies.POLICIES` is the registry; a test
keeps the two in step)."""


@one_line_errors(ForecastInputError)
def simulate(
    ctx: typer.Context,
    trace: Annotated[Path | None, typer.Option(
        help="trace CSV (formats in data/traces/README.md); at --level request, or --prometheus")] = None,
    level: Annotated[str, typer.Option(
        help="replay: demand buckets against replica capacity (fast, any length); request: every request "
             "through simulated vLLM replicas (TTFT/TPOT, SLO attainment, GPU-hours)")] = "replay",
    capacity_per_replica: Annotated[float | None, typer.Option(
        help="requests/s one replica serves within its SLO (measure it, or see `llmobs forecast capacity`); at "
             "--level request the default is profiled from the profile and the SLOs")] = None,
    policy: Annotated[str | None, typer.Option(
        help="replay: reactive | predictive | hybrid (default reactive); request: "
             f"{' | '.join(REQUEST_POLICIES)} (default keda-rate; --list-policies says what each is)")] = None,
    cold_start: Annotated[float | None, typer.Option(
        parser=DURATION, metavar="DURATION", show_default="5m replay, 2m request",
        help=f"time from scale-up to ready {DURATION_HELP}")] = None,
    step: Annotated[float | None, typer.Option(
        parser=DURATION, metavar="DURATION",
        help="bucket size (default: 10s for requests, 60s for rates and Prometheus history)")] = None,
    utilization: Annotated[float, typer.Option(
        help="target utilization (headroom) per replica; hybrid's is its forecast part's, in (0, 1], its reactive "
             "floor stays at 0.8")] = 0.8,
    polling_interval: Annotated[float, typer.Option(parser=DURATION, metavar="DURATION", show_default="15s",
                                                    help="HPA sync / KEDA polling interval")] = 15.0,
    forecaster: Annotated[str, typer.Option(help="forecaster for predictive/hybrid")] = "llmobs_gbm",
    min_replicas: Annotated[int, typer.Option()] = 1,
    max_replicas: Annotated[int, typer.Option()] = 10_000,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    plot: Annotated[Path | None, typer.Option(help="write a PNG of demand vs ready capacity")] = None,
    html: Annotated[Path | None, typer.Option(
        help="write every policy's replay (this one first) side by side as one self-contained HTML file")] = None,
    prometheus: Annotated[str | None, _request_option(
        metavar="URL", help="read the demand from this Prometheus (query_range) instead of a trace")] = None,
    model: Annotated[str | None, _request_option(help="the model whose history --prometheus reads")] = None,
    history: Annotated[float, _request_option(
        parser=DURATION, metavar="DURATION", show_default="1h", help="how far back --prometheus reads, up to now")
    ] = 3600.0,
    promql: Annotated[str, _request_option(
        help="series --prometheus reads: llmobs (llmobs_request_rate, ...) or vllm (rate of "
             "vllm:request_success_total, ...)")] = "llmobs",
    start: Annotated[float | None, _request_option(
        parser=OFFSET, metavar="DURATION", help="skip this much of the trace")] = None,
    duration: Annotated[float | None, _request_option(
        parser=DURATION, metavar="DURATION", help="simulate this much of the trace (default: all)")] = None,
    knob: Annotated[float | None, _request_option(
        help="the policy's knob (--list-policies names it; default: what its documentation suggests)")
    ] = None,
    compare: Annotated[bool, _request_option(
        "--compare", help="run every policy at its default knob; one table")] = False,
    list_policies: Annotated[bool, _request_option(
        "--list-policies", help="print the policies, their knobs and sources, and exit")] = False,
    profile: Annotated[str | None, _request_option(
        metavar="NAME|FILE", show_default="llama-3.1-8b-h100",
        help="step-time profile of one replica: a bundled name or a YAML file")] = None,
    ttft_slo: Annotated[float | None, _request_option(
        parser=DURATION, metavar="DURATION", show_default="1s", help="time-to-first-token SLO")] = None,
    tpot_slo: Annotated[float | None, _request_option(
        parser=DURATION, metavar="DURATION", show_default="100ms",
        help="time-per-output-token SLO")] = None,
    compress: Annotated[float, _request_option(
        help="play the requests this many times faster (a bigger load from the same trace)")] = 1.0,
    initial_replicas: Annotated[int | None, _request_option(
        help="replicas ready at the start (default: enough for the first minute at the capacity)")
    ] = None,
    mean_prompt_tokens: Annotated[float | None, _request_option(
        help="mean prompt length for --prometheus when it has no prompt-token series")] = None,
    mean_output_tokens: Annotated[float | None, _request_option(
        help="mean output length for --prometheus when it has no generation-token series")] = None,
    seed: Annotated[int, _request_option(
        help="seed of the requests drawn from rate windows (ServeGen, Prometheus)")] = 0,
) -> None:
    """Replay a trace against an autoscaling policy; report under-provisioned and replica minutes.

    With --level request, every request of a trace (or of a Prometheus history) goes through simulated vLLM
    replicas scaled by a real autoscaler's rules (KEDA, AIBrix, llm-d, Dynamo, llmobs): SLO attainment,
    GPU-hours and goodput per GPU-hour; --compare runs them all."""
    require("forecast")
    hooks = ctx.obj if isinstance(ctx.obj, SimulateHooks) else SimulateHooks()
    if level == "request" or list_policies:
        if hooks.request_level is None:
            raise ForecastInputError("--level request needs the request-level simulator (run it as "
                                     "`llmobs forecast simulate`)")
        if plot is not None or html is not None:
            raise ForecastInputError("--plot and --html draw the replay; --level request prints a table (or --json)")
        replay_only = {"--utilization": None if utilization == 0.8 else utilization,
                       "--forecaster": None if forecaster == "llmobs_gbm" else forecaster}
        given = [name for name, value in replay_only.items() if value is not None]
        if given:
            raise ForecastInputError(f"{', '.join(given)}: replay-level options; at --level request each policy's "
                                     "own knob is --knob (--list-policies names it)")
        hooks.request_level(RequestLevelRun(
            trace=trace, prometheus=prometheus, model=model, history_s=history, promql=promql, step_s=step,
            start_s=start or 0.0, duration_s=duration, policy=policy, knob=knob, compare=compare,
            list_policies=list_policies, profile=profile, ttft_slo_s=ttft_slo, tpot_slo_s=tpot_slo, compress=compress,
            initial_replicas=initial_replicas, cold_start_s=cold_start, polling_interval_s=polling_interval,
            min_replicas=min_replicas, max_replicas=max_replicas, capacity_per_replica=capacity_per_replica,
            mean_prompt_tokens=mean_prompt_tokens, mean_output_tokens=mean_output_tokens, seed=seed,
            as_json=as_json))
        return
    if level != "replay":
        raise ForecastInputError(f"unknown level {level!r}; choose replay or request")
    request_only = {"--prometheus": prometheus, "--model": model, "--knob": knob, "--compare": compare or None,
                    "--profile": profile, "--ttft-slo": ttft_slo, "--tpot-slo": tpot_slo,
                    "--initial-replicas": initial_replicas, "--start": start, "--duration": duration,
                    "--compress": None if compress == 1.0 else compress}
    given = [name for name, value in request_only.items() if value is not None]
    if given:
        raise ForecastInputError(f"{', '.join(given)}: request-level options, add --level request")
    if trace is None:
        raise ForecastInputError("give --trace FILE (Prometheus history needs --level request)")
    plot = _plot_path(plot)  # before the replay, as backtest does: a bad path must not cost the whole run
    policy = policy or "reactive"
    cold_start = 300.0 if cold_start is None else cold_start
    import numpy as np

    from llmobs.forecast.demand import read_trace
    from llmobs.forecast.forecasters import make_forecaster
    from llmobs.forecast.replay import POLICIES, HpaConfig, ReplayConfig, forecast_path, replay

    if policy not in POLICIES:
        raise ForecastInputError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)} (the "
                                 "autoscalers KEDA, AIBrix, llm-d... are simulated at --level request)")
    if capacity_per_replica is None:
        raise ForecastInputError("give --capacity-per-replica RPS: the requests/s one replica serves within its "
                                 "SLO (e.g. --capacity-per-replica 2.5)")
    rate_windows = read_trace(trace).source.startswith("servegen")
    step_s = step if step else (60.0 if rate_windows else 10.0)
    # requests are re-bucketed at the step; rate windows finer than the file's are interpolated
    series = read_trace(trace, step_s, finer="linear")
    hpa = HpaConfig(polling_interval_s=polling_interval, min_replicas=min_replicas, max_replicas=max_replicas)
    cfg = ReplayConfig(capacity_per_replica=capacity_per_replica, cold_start_s=cold_start, hpa=hpa)
    if html is not None and hooks.html_writer is None:
        raise ForecastInputError("--html needs the llmobs CLI's page writer (run it as `llmobs forecast simulate`)")
    upper, need = None, 1
    if policy != "reactive" or html is not None:
        h = math.ceil(cfg.cold_start_s / series.step_seconds - 1e-9) + 1
        forecast_model = make_forecaster(forecaster)
        _, upper = forecast_path(series, forecast_model, h)
        need = forecast_model.required_history(h, series.step_seconds)  # the guard's short-history threshold
    result = replay(series, policy, cfg, utilization=utilization, forecast_upper=upper, forecaster_name=forecaster,
                    min_history=need)
    if plot is not None:
        _plot_replay([result], plot)
    if html is not None and hooks.html_writer is not None:
        others = [replay(series, p, cfg, utilization=utilization, forecast_upper=upper, forecaster_name=forecaster,
                         min_history=need) for p in POLICIES if p != policy]
        hooks.html_writer(html, f"llmobs forecast simulate · {trace.name}", [result, *others], [
            f"cold start {cfg.cold_start_s:g} s", f"{capacity_per_replica:g} req/s per replica",
            f"step {series.step_seconds:g} s", f"utilization {utilization:g}", f"forecaster {forecaster}"])
    d = result.to_dict()
    d.update(trace=str(trace), step_seconds=series.step_seconds, cold_start_seconds=cfg.cold_start_s,
             capacity_per_replica=capacity_per_replica, mean_demand=float(np.nanmean(result.demand)))
    if as_json:
        _print_json(d)
        return
    t = Table(title=f"simulate {policy} on {trace.name}", show_header=False)
    for k, v in d.items():
        if isinstance(v, dict):  # fallbacks by reason: only the reasons that happened
            v = ", ".join(f"{r} {c}" for r, c in v.items() if c) or "none"
        t.add_row(k, _fmt(v, 2) if isinstance(v, float) else str(v))
    console.print(t)


def _moved(old: str) -> Any:
    def moved(ctx: typer.Context) -> None:
        fail(f"`llmobs {old}` is now `llmobs {MOVED[old]}` (same options): llmobs {MOVED[old]} "
             + " ".join(ctx.args))

    moved.__doc__ = f"Moved to `llmobs {MOVED[old]}`."
    return moved


def register(app: typer.Typer, html_writer: HtmlWriter | None = None,
             request_level: RequestLevelRunner | None = None) -> None:
    """Add the `forecast` group (backtest, simulate, capacity) to the main `llmobs` app; `html_writer` writes
    `simulate --html`, `request_level` runs `simulate --level request`."""
    forecast_app = typer.Typer(
        no_args_is_help=True,
        help="Demand forecasting on traces: backtests, autoscaling replays, KV-cache capacity.",
        epilog=example("llmobs forecast backtest --trace data/traces/servegen_m-small_rate_10min.csv --horizon 30m"))
    forecast_app.command("backtest", epilog=example(
        "llmobs forecast backtest --trace data/traces/servegen_m-small_rate_10min.csv --step 10m --horizon 30m",
    ))(backtest_cmd)
    hooks = SimulateHooks(html_writer, request_level)
    forecast_app.command("simulate", context_settings={"obj": hooks}, epilog=example(
        "llmobs forecast simulate --trace data/traces/AzureLLMInferenceTrace_conv.csv --policy hybrid "
        "--capacity-per-replica 2.5 --cold-start 5m",
        "llmobs forecast simulate --level request --trace data/traces/AzureLLMInferenceTrace_conv.csv --compare",
        "llmobs forecast simulate --level request --prometheus http://prometheus:9090 --model llama --history 6h "
        "--policy keda-rate --knob 4",
    ))(simulate)
    forecast_app.command("capacity", epilog=example(
        "llmobs forecast capacity --model-config config.json --gpu H100-80GB --context 8192",
        "llmobs forecast capacity --metrics-page saved-metrics.txt --context 1024",
    ))(capacity)
    app.add_typer(forecast_app, name="forecast")
    for old in MOVED:
        app.command(old, hidden=True, add_help_option=False,
                    context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(_moved(old))

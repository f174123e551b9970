"""`llmobs forecast {backtest, simulate, capacity}`, as typer commands.

`register(app)` adds the `forecast` group to the main `llmobs` app (owned by `llmobs.cli`), and the old
top-level `llmobs simulate` / `llmobs capacity` as hidden names that only say where the command moved.
Every bad input surfaces as a `ForecastInputError` (or a bad DURATION), printed as one `error: …` line
with exit code 2 — never a traceback. Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from llmobs._extras import require
from llmobs.cli_support import DURATION, DURATION_HELP, example, fail, one_line_errors
from llmobs.forecast.errors import ForecastInputError

console = Console()
MOVED = {"simulate": "forecast simulate", "capacity": "forecast capacity"}
"""Commands that were top level before the `forecast` group held them all."""


def _fmt(x: float, digits: int = 3) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


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
    block_size: Annotated[int, typer.Option(help="KV block size, tokens")] = 16,
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
            gpu_memory_gib = gpu_memory_gib or g.memory_gib
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
        print(json.dumps(d, indent=2, default=float))
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
    fig.savefig(out)
    plt.close(fig)


@one_line_errors(ForecastInputError)
def backtest_cmd(
    trace: Annotated[Path, typer.Option(help="trace CSV (formats in data/traces/README.md)")],
    step: Annotated[float | None, typer.Option(
        parser=DURATION, metavar="DURATION", help=f"bucket size {DURATION_HELP} (default: the trace's own)")] = None,
    horizon: Annotated[float | None, typer.Option(
        parser=DURATION, metavar="DURATION", help="forecast horizon, e.g. the cold start (default: 1 step)")] = None,
    quantile: Annotated[float, typer.Option(help="upper quantile of the band")] = 0.9,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    plot: Annotated[Path | None, typer.Option(help="write a PNG of actual vs forecast with the band")] = None,
) -> None:
    """Rolling-origin backtest of every forecaster at one step and at the horizon."""
    require("forecast")
    from llmobs.forecast.backtest import backtest
    from llmobs.forecast.demand import read_trace

    series = read_trace(trace, step)
    h = max(1, math.ceil(horizon / series.step_seconds - 1e-9)) if horizon else 1
    result = backtest(series, sorted({1, h}), quantile=quantile)
    if plot is not None:
        _plot_backtest(result, h, plot)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2, default=float))
        return
    t = Table(title=f"backtest {result.source}: {result.n_points} steps of {result.step_seconds:g}s, "
              f"scored from step {result.eval_start}")
    for col in ("", "forecaster", "horizon", "WAPE", "MAPE", f"pinball q{quantile:g}/mean", "coverage", "n"):
        t.add_column(col, no_wrap=col in ("forecaster", ""))
    for s in result.scores:
        mark = "*" if s.forecaster == result.best and s.horizon_steps == h else ""
        t.add_row(mark, s.forecaster, f"{s.horizon_steps * result.step_seconds:g}s", _fmt(s.wape),
                  _fmt(s.mape), _fmt(s.pinball_scaled), _fmt(s.coverage), str(s.n))
    console.print(t)
    console.print(f"best at {h * result.step_seconds:g}s: {result.best} (*)")
    for name, why in result.skipped.items():
        console.print(f"skipped {name}: {why}")
    for note in result.notes:
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
    fig.savefig(out)
    plt.close(fig)


@one_line_errors(ForecastInputError)
def simulate(
    trace: Annotated[Path, typer.Option(help="trace CSV (formats in data/traces/README.md)")],
    capacity_per_replica: Annotated[float | None, typer.Option(
        help="requests/s one replica serves within its SLO (measure it, or see `llmobs forecast capacity`)")] = None,
    policy: Annotated[str, typer.Option(help="reactive | predictive | hybrid")] = "reactive",
    cold_start: Annotated[float, typer.Option(parser=DURATION, metavar="DURATION", show_default="5m",
                                              help=f"time from scale-up to ready {DURATION_HELP}")] = 300.0,
    step: Annotated[float | None, typer.Option(
        parser=DURATION, metavar="DURATION", help="bucket size (default: 10s for requests, 60s for rates)")] = None,
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
) -> None:
    """Replay a trace against an autoscaling policy; report under-provisioned and replica minutes."""
    require("forecast")
    import numpy as np

    from llmobs.forecast.demand import read_trace
    from llmobs.forecast.forecasters import make_forecaster
    from llmobs.forecast.replay import POLICIES, HpaConfig, ReplayConfig, forecast_path, replay

    if policy not in POLICIES:
        raise ForecastInputError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    if capacity_per_replica is None:
        raise ForecastInputError("give --capacity-per-replica RPS: the requests/s one replica serves within its "
                                 "SLO (e.g. --capacity-per-replica 2.5)")
    rate_windows = read_trace(trace).source.startswith("servegen")
    step_s = step if step else (60.0 if rate_windows else 10.0)
    # requests are re-bucketed at the step; rate windows finer than the file's are interpolated
    series = read_trace(trace, step_s, finer="linear")
    hpa = HpaConfig(polling_interval_s=polling_interval, min_replicas=min_replicas, max_replicas=max_replicas)
    cfg = ReplayConfig(capacity_per_replica=capacity_per_replica, cold_start_s=cold_start, hpa=hpa)
    if html is not None and _html_writer is None:
        raise ForecastInputError("--html needs the llmobs CLI's page writer (run it as `llmobs forecast simulate`)")
    upper, need = None, 1
    if policy != "reactive" or html is not None:
        h = math.ceil(cfg.cold_start_s / series.step_seconds - 1e-9) + 1
        model = make_forecaster(forecaster)
        _, upper = forecast_path(series, model, h)
        need = model.required_history(h, series.step_seconds)  # the guard's short-history threshold
    result = replay(series, policy, cfg, utilization=utilization, forecast_upper=upper, forecaster_name=forecaster,
                    min_history=need)
    if plot is not None:
        _plot_replay([result], plot)
    if html is not None and _html_writer is not None:
        others = [replay(series, p, cfg, utilization=utilization, forecast_upper=upper, forecaster_name=forecaster,
                         min_history=need) for p in POLICIES if p != policy]
        _html_writer(html, f"llmobs forecast simulate · {trace.name}", [result, *others], [
            f"cold start {cfg.cold_start_s:g} s", f"{capacity_per_replica:g} req/s per replica",
            f"step {series.step_seconds:g} s", f"utilization {utilization:g}", f"forecaster {forecaster}"])
    d = result.to_dict()
    d.update(trace=str(trace), step_seconds=series.step_seconds, cold_start_seconds=cfg.cold_start_s,
             capacity_per_replica=capacity_per_replica, mean_demand=float(np.nanmean(result.demand)))
    if as_json:
        print(json.dumps(d, indent=2, default=float))
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


# `simulate --html` draws with the status page's chart code, which lives in the serving layer above this one:
# the CLI hands the writer in through `register` (path, title, replay results, notes).
HtmlWriter = Callable[[Path, str, Sequence[Any], Sequence[str]], None]
_html_writer: HtmlWriter | None = None


def register(app: typer.Typer, html_writer: HtmlWriter | None = None) -> None:
    """Add the `forecast` group (backtest, simulate, capacity) to the main `llmobs` app; `html_writer` writes
    `simulate --html`."""
    global _html_writer
    _html_writer = html_writer
    forecast_app = typer.Typer(
        no_args_is_help=True,
        help="Demand forecasting on traces: backtests, autoscaling replays, KV-cache capacity.",
        epilog=example("llmobs forecast backtest --trace data/traces/servegen_m-small_rate_10min.csv --horizon 30m"))
    forecast_app.command("backtest", epilog=example(
        "llmobs forecast backtest --trace data/traces/servegen_m-small_rate_10min.csv --step 10m --horizon 30m",
    ))(backtest_cmd)
    forecast_app.command("simulate", epilog=example(
        "llmobs forecast simulate --trace data/traces/AzureLLMInferenceTrace_conv.csv --policy hybrid "
        "--capacity-per-replica 2.5 --cold-start 5m",
    ))(simulate)
    forecast_app.command("capacity", epilog=example(
        "llmobs forecast capacity --model-config config.json --gpu H100-80GB --context 8192",
        "llmobs forecast capacity --metrics-page saved-metrics.txt --context 1024",
    ))(capacity)
    app.add_typer(forecast_app, name="forecast")
    for old in MOVED:
        app.command(old, hidden=True, add_help_option=False,
                    context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(_moved(old))

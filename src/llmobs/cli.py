"""The `llmobs` command. It only wires stages together; the work lives in the packages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from llmobs.config import (
    ConfigError,
    FeedbackConfig,
    ForecastSection,
    LlmobsConfig,
    ScalerConfig,
    ScrapeConfig,
    ServerConfig,
    SignalsConfig,
    load_config,
)
from llmobs.state import StateHolder

# Requests/s one simulated replica serves at its latency target (the demo's capacity_per_replica).
DEMO_CAPACITY = {"llama-3.1-8b-instruct": 3.0, "qwen2.5-coder-7b": 6.0}

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Observability and autoscaling signals for self-hosted vLLM fleets.")
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


def _setup_logging(verbose: bool) -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


async def _wait_for_signal(stop: asyncio.Event, duration: float | None) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=duration)


@app.command()
def run(
    config: Path = typer.Option(..., "--config", "-c", help="YAML configuration file"),
    check_config: bool = typer.Option(False, "--check-config", help="validate the config and exit"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Scrape the configured vLLM targets and serve /metrics, /healthz, /api/v1/signals and /."""
    from llmobs.runtime import start_exporter
    from llmobs.serving.gc import GcPolicy

    try:
        cfg = load_config(config)
    except ConfigError as e:
        err.print(f"[red]error:[/red] {e}", highlight=False)
        raise typer.Exit(2) from None
    if check_config:
        console.print(f"config OK: {len(cfg.targets)} target(s), exporter on {cfg.server.host}:{cfg.server.port}")
        return
    _setup_logging(verbose)

    async def main() -> None:
        exporter = await start_exporter(cfg, cycle_hook=GcPolicy())  # this process is ours: tune its GC
        console.print(f"llmobs exporter on http://{cfg.server.host}:{exporter.port}/ "
                      f"scraping {len(cfg.targets)} target(s) every {cfg.scrape.interval_seconds:g}s")
        stop = asyncio.Event()
        await _wait_for_signal(stop, None)
        await exporter.stop()

    asyncio.run(main())


def _fmt(v: float | None, scale: float = 1.0, digits: int = 2, unit: str = "") -> str:
    import math

    if v is None or not math.isfinite(v):
        return "–"
    return f"{v * scale:.{digits}f}{unit}"


def signals_table(holder: StateHolder) -> Table:
    state = holder.current
    up = sum(1 for t in state.targets if t.up)
    table = Table(title=f"llmobs demo · {up}/{len(state.targets)} targets up · window {state.window_seconds:g}s",
                  title_justify="left")
    for col in ("model", "endpoint", "node", "KV", "run", "wait", "req/s", "tok/s out",
                "TTFT p50", "TTFT p99", "ITL p50", "E2E p90", "preempt/s", "prefix hit"):
        table.add_column(col, justify="left" if col in ("model", "endpoint", "node") else "right")
    for s in sorted(state.signals, key=lambda s: (s.attribution.model, s.attribution.endpoint)):
        a = s.attribution
        table.add_row(
            a.model, a.endpoint, a.node, _fmt(s.kv_cache_utilization, 100, 0, "%"),
            _fmt(s.requests_running, 1, 0), _fmt(s.requests_waiting, 1, 0), _fmt(s.request_rate),
            _fmt(s.generation_tokens_rate, 1, 0), _fmt(s.ttft.quantiles[0.5], 1, 3, "s"),
            _fmt(s.ttft.quantiles[0.99], 1, 3, "s"), _fmt(s.itl.quantiles[0.5], 1000, 1, "ms"),
            _fmt(s.e2e_latency.quantiles[0.9], 1, 1, "s"), _fmt(s.preemption_rate),
            _fmt(s.prefix_cache_hit_ratio, 100, 0, "%"),
        )
    if not state.signals:
        table.caption = "waiting for the second scrape of each target (rates need two points)…"
    return table


@app.command()
def demo(
    port: int = typer.Option(9400, help="exporter port (0 = any free port)"),
    fleet_port: int = typer.Option(0, help="simulated fleet port (0 = any free port)"),
    scaler_port: int = typer.Option(9401, help="KEDA external scaler gRPC port (0 = any free port)"),
    feedback_port: int = typer.Option(9402, help="feedback API port (0 = any free port)"),
    host: str = typer.Option("127.0.0.1", help="listen address for every server"),
    interval: float = typer.Option(2.0, help="scrape interval, seconds"),
    window: float = typer.Option(30.0, help="signal window, seconds"),
    speedup: float = typer.Option(1.0, help="replay the traces this many times faster than real time"),
    duration: float | None = typer.Option(None, help="exit after this many seconds (default: run until Ctrl-C)"),
    tui: bool = typer.Option(True, help="live terminal table (off when stdout is not a terminal)"),
) -> None:
    """Embedded default: a simulated vLLM fleet driven by real traces, scraped by the exporter, with the
    forecaster, KEDA scaler and feedback API on (simulated KEDA polls and user ratings feed them)."""
    import tempfile

    from llmobs.demo.activity import poll_like_keda, simulate_feedback
    from llmobs.demo.fleet import create_fleet_app, default_fleet
    from llmobs.runtime import serve_asgi, start_exporter
    from llmobs.sources.targets import StaticTargetSource

    _setup_logging(False)
    logging.getLogger("llmobs.pipeline").setLevel(logging.ERROR)

    async def main(workdir: str) -> None:
        fleet = default_fleet(speedup=speedup)
        fleet_server, fleet_task, bound_fleet = await serve_asgi(create_fleet_app(fleet), host, fleet_port)
        targets = fleet.targets(f"http://{host}:{bound_fleet}")
        cfg = LlmobsConfig(
            scrape=ScrapeConfig(interval_seconds=interval), signals=SignalsConfig(window_seconds=window),
            server=ServerConfig(host=host, port=port),
            # Demo-scale forecast: 10 s steps, 1 min horizon (a real deployment uses its cold start).
            forecast=ForecastSection(enabled=True, refresh_seconds=max(interval, 2.0), step_seconds=10,
                                     horizon_seconds=60, capacity_per_replica=DEMO_CAPACITY),
            scaler=ScalerConfig(enabled=True, host=host, port=scaler_port, forecast_horizons_seconds=[60.0]),
            feedback=FeedbackConfig(enabled=True, host=host, port=feedback_port, allow_unauthenticated=True,
                                    allowed_apps=["chat"], db_path=Path(workdir) / "feedback.db"),
        )
        exporter = await start_exporter(cfg, StaticTargetSource(targets))
        base = f"http://{host}:{exporter.port}"
        console.print(f"[bold]llmobs demo[/bold] · simulated fleet: {len(targets)} vLLM replicas at "
                      f"http://{host}:{bound_fleet}/replicas/<name>/metrics")
        console.print(f"exporter: {base}/metrics · status page: {base}/ · JSON: {base}/api/v1/signals")
        assert exporter.scaler is not None
        scaler = exporter.scaler
        console.print(f"KEDA scaler (gRPC, {scaler.engine} engine): {host}:{scaler.port} · metrics-api: "
                      f"{base}/api/v1/scaler/metrics?model=<model>&signal=queue_depth&target=10 · "
                      f"feedback API: http://{host}:{exporter.feedback_port}/v1/feedback")
        sys.stdout.flush()
        stop = asyncio.Event()
        clients = [
            asyncio.create_task(poll_like_keda(base, exporter.holder, 5.0, stop)),
            asyncio.create_task(simulate_feedback(f"http://{host}:{exporter.feedback_port}", exporter.holder, stop)),
        ]
        waiter = asyncio.create_task(_wait_for_signal(stop, duration))
        if tui and console.is_terminal:
            with Live(signals_table(exporter.holder), console=console, refresh_per_second=2) as live:
                while not waiter.done():
                    live.update(signals_table(exporter.holder))
                    await asyncio.wait([waiter], timeout=1.0)
        else:
            last = 0.0
            while not waiter.done():
                if time.monotonic() - last > 10 and exporter.holder.current.signals:
                    console.print(signals_table(exporter.holder))
                    last = time.monotonic()
                await asyncio.wait([waiter], timeout=1.0)
        stop.set()
        await asyncio.gather(*clients, return_exceptions=True)
        await exporter.stop()
        fleet_server.should_exit = True
        await fleet_task

    with tempfile.TemporaryDirectory(prefix="llmobs-demo-") as workdir:
        asyncio.run(main(workdir))


def _register_subcommands() -> None:
    """Commands owned by other stages (forecasting, the GPU node agent) add themselves here."""
    from llmobs.agent.cli import register as register_agent
    from llmobs.forecast.cli import register as register_forecast

    register_forecast(app)
    register_agent(app)


_register_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()

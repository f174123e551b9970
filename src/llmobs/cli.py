"""The `llmobs` command. It only wires stages together; the work lives in the packages.

Command tree: `run`, `demo`, `agent`, `feedback`, `forecast {backtest, simulate, capacity}`, `version`.
Every command reports bad input as one `error: …` line (exit 2) and a failed start as one line naming the
server and port (exit 1); `main` is the boundary that keeps tracebacks for genuinely unexpected errors,
shown only with -v.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from llmobs import __version__
from llmobs._extras import require
from llmobs.cli_support import (
    DURATION,
    DURATION_HELP,
    CliError,
    ensure_can_listen,
    example,
    kubernetes_credentials_errors,
    one_line_errors,
    problems_message,
    run_app,
)
from llmobs.config import (
    ConfigError,
    DoorConfig,
    ForecastSection,
    LlmobsConfig,
    ScrapeConfig,
    ServerConfig,
    SignalsConfig,
    load_config,
)
from llmobs.feedback.config import FeedbackConfig
from llmobs.serving.scaler.config import ScalerConfig
from llmobs.state import StateHolder

# Requests/s one simulated replica serves at its latency target (the demo's capacity_per_replica).
DEMO_CAPACITY = {"llama-3.1-8b-instruct": 3.0, "qwen2.5-coder-7b": 6.0}

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Observability and autoscaling signals for self-hosted vLLM fleets.",
                  epilog=example("llmobs demo", "llmobs run --config llmobs.yaml"))
console = Console(width=None if sys.stdout.isatty() else 160)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"llmobs {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="print the llmobs version and exit"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="show the traceback of an unexpected error"),
) -> None:
    """Observability and autoscaling signals for self-hosted vLLM fleets."""


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


def load_run_config(path: Path) -> LlmobsConfig:
    """Read, validate and check the files a config names: exactly what `run` checks before it starts."""
    from llmobs.preflight import startup_problems
    from llmobs.runtime import required_extras

    try:
        cfg = load_config(path)
    except ConfigError as exc:  # YAML and read errors name the file already; validation errors do not
        raise CliError(str(exc) if str(path) in str(exc) else f"config {path}: {exc}") from None
    for feature in required_extras(cfg):  # a component enabled without its pip extra cannot start
        require(feature)
    problems = startup_problems(cfg)
    if problems:
        raise CliError(problems_message(f"config {path}", problems))
    return cfg


@app.command(epilog=example("llmobs run --config llmobs.yaml",
                            "llmobs run --config llmobs.yaml --check-config"))
@one_line_errors(ConfigError)
def run(
    config: Path = typer.Option(..., "--config", "-c", help="YAML configuration file"),
    check_config: bool = typer.Option(False, "--check-config",
                                      help="validate the config and the files it names (TLS, tokens, database, "
                                           "kubeconfig), then exit: 0 when start-up would pass them, 2 if not"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="debug logging; traceback of an unexpected error"),
) -> None:
    """Scrape the configured vLLM targets and serve /metrics, /healthz, /api/v1/signals and /."""
    from llmobs.preflight import listeners

    cfg = load_run_config(config)
    if check_config:
        console.print(f"config OK: {len(cfg.targets)} target(s), exporter on {cfg.server.host}:{cfg.server.port}")
        return
    for what, host, port in listeners(cfg):
        ensure_can_listen(what, host, port)
    _setup_logging(verbose)
    from llmobs.runtime import start_exporter
    from llmobs.serving.gc import GcPolicy

    async def main() -> None:
        exporter = await start_exporter(cfg, cycle_hook=GcPolicy())  # this process is ours: tune its GC
        console.print(f"llmobs exporter on http://{cfg.server.host}:{exporter.port}/ "
                      f"scraping {len(cfg.targets)} target(s) every {cfg.scrape.interval_seconds:g}s")
        stop = asyncio.Event()
        await _wait_for_signal(stop, None)
        await exporter.stop()

    with kubernetes_credentials_errors():
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


@app.command(epilog=example("llmobs demo", "llmobs demo --speedup 10 --duration 5m --no-tui"))
@one_line_errors()
def demo(
    port: int = typer.Option(9400, min=0, max=65535, help="exporter port (0 = any free port)"),
    fleet_port: int = typer.Option(0, min=0, max=65535, help="simulated fleet port (0 = any free port)"),
    scaler_port: int = typer.Option(9401, min=0, max=65535, help="KEDA external scaler gRPC port (0 = any free port)"),
    feedback_port: int = typer.Option(9402, min=0, max=65535, help="feedback API port (0 = any free port)"),
    host: str = typer.Option("127.0.0.1", help="listen address for every server"),
    interval: float = typer.Option(2.0, parser=DURATION, metavar="DURATION", show_default="2s",
                                   help=f"scrape interval {DURATION_HELP}"),
    window: float = typer.Option(30.0, parser=DURATION, metavar="DURATION", show_default="30s",
                                 help="signal window"),
    # at most 1,000×: the replay queues every request up to (elapsed × speedup) at each tick, and at 1e6 (or
    # inf, which never arrives) it queued without end and ran out of memory in seconds
    speedup: float = typer.Option(1.0, min=0.001, max=1000.0,
                                  help="replay the traces this many times faster than real time (at most 1000)"),
    duration: float | None = typer.Option(None, parser=DURATION, metavar="DURATION",
                                          help="exit after this long (default: run until Ctrl-C)"),
    tui: bool = typer.Option(True, help="live terminal table (off when stdout is not a terminal)"),
) -> None:
    """A simulated vLLM fleet driven by real traces, with everything on: try llmobs in one command.

    The exporter scrapes the fleet; the forecaster, KEDA scaler and feedback API run too, fed by simulated
    KEDA polls and user ratings."""
    import tempfile

    require("forecast")  # the simulated fleet replays traces (pandas); the demo starts the forecaster
    require("scaler")  # ... and the KEDA scaler
    from llmobs.demo.activity import poll_like_keda, simulate_feedback
    from llmobs.demo.fleet import create_fleet_app, default_fleet
    from llmobs.runtime import start_exporter
    from llmobs.serving.asgi import serve_asgi
    from llmobs.sources.targets import StaticTargetSource

    for what, listen_port in (("exporter (--port)", port), ("simulated fleet (--fleet-port)", fleet_port),
                              ("KEDA scaler (--scaler-port)", scaler_port),
                              ("feedback API (--feedback-port)", feedback_port)):
        ensure_can_listen(what, host, listen_port)
    _setup_logging(False)
    logging.getLogger("llmobs.pipeline").setLevel(logging.ERROR)

    async def main(workdir: str) -> None:
        fleet = default_fleet(speedup=speedup)
        fleet_server, fleet_task, bound_fleet = await serve_asgi(create_fleet_app(fleet), host, fleet_port)
        targets = fleet.targets(f"http://{host}:{bound_fleet}")
        cfg = LlmobsConfig(
            doors=[DoorConfig(url=f"http://{host}:{bound_fleet}/door/metrics", name="litellm", kind="litellm")],
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
        console.print(f"KEDA scaler (gRPC): {host}:{scaler.port} · metrics-api: "
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


def write_replay_html(path: Path, title: str, results: Sequence[Any], notes: Sequence[str]) -> None:
    """`llmobs forecast simulate --html`: the status page's charts for a replay (imported only when asked)."""
    from llmobs.serving.statuspage.replay import write_replay_html as write

    write(path, title, results, notes)


def run_request_level(run: Any) -> None:
    """`llmobs forecast simulate --level request`: the request-level simulator (imported only when asked)."""
    from llmobs.simulate.whatif.cli import run_request_level as run_it

    run_it(run)


def _register_subcommands() -> None:
    """Commands owned by other stages (forecasting, the GPU node agent, feedback) add themselves here."""
    from llmobs.agent.cli import register as register_agent
    from llmobs.feedback.cli import register as register_feedback
    from llmobs.forecast.cli import register as register_forecast

    register_agent(app)
    register_feedback(app)
    register_forecast(app, html_writer=write_replay_html, request_level=run_request_level)


_register_subcommands()


@app.command(epilog=example("llmobs version", "llmobs --version"))
def version() -> None:
    """Print the llmobs version."""
    typer.echo(f"llmobs {__version__}")


def main(argv: list[str] | None = None) -> NoReturn:
    """The `llmobs` program: run the app inside the one-line error boundary and exit with its code (as click
    programs do, so `main()` called from a script still sets the exit status)."""
    sys.exit(run_app(app, argv))


if __name__ == "__main__":
    main()

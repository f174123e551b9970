"""The public API (`import llmobs`): the names it exports, their documentation and types, and what each
does for a program that embeds llmobs. Changing the surface means changing PUBLIC here, on purpose."""

from __future__ import annotations

import ast
import asyncio
import importlib
import inspect
import json
import math
import os
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmobs
from tests.conftest import FIXTURE_PAGE
from tests.pageserver import FixturePageServer

SRC = Path(llmobs.__file__).resolve().parent
FIXTURE = FIXTURE_PAGE

PUBLIC = [
    "Attribution", "ConfigError", "Distribution", "Exporter", "FleetState", "LlmobsConfig", "METRICS",
    "MetricSpec", "MissingExtraError", "ModelEndpointSignals", "Page", "SignalTracker", "__version__",
    "load_config", "load_config_text", "metric", "parse_page",
]


def test_the_surface_is_pinned() -> None:
    assert sorted(llmobs.__all__) == PUBLIC
    assert set(PUBLIC) <= set(dir(llmobs))
    for name in PUBLIC:
        assert getattr(llmobs, name) is not None


def test_star_import_gives_the_surface() -> None:
    namespace: dict[str, object] = {}
    exec("from llmobs import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(PUBLIC)


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'parse'"):
        llmobs.parse  # noqa: B018


def test_import_llmobs_imports_nothing_else() -> None:
    """`import llmobs` in a program that may never call it costs one small module: names load on use."""
    code = ("import json, sys; import llmobs; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('llmobs', 'pydantic', 'yaml'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(SRC.parent)})
    assert json.loads(out.stdout) == ["llmobs", "llmobs._lazy"]


def _own_docstring(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    name = getattr(obj, "__name__", "")
    # a dataclass without a docstring gets its signature as one: that documents nothing
    return "" if name and doc.startswith(f"{name}(") else doc


def _check_callable(where: str, fn: typing.Callable[..., object], problems: list[str]) -> None:
    if not _own_docstring(fn):
        problems.append(f"{where}: no docstring")
    hints = typing.get_type_hints(fn)  # also fails on an annotation that names nothing importable
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    missing = [p.name for p in params if p.name not in hints]
    if missing or "return" not in hints:
        problems.append(f"{where}: unannotated {missing + ([] if 'return' in hints else ['return'])}")


def test_every_public_callable_is_documented_and_typed() -> None:
    problems: list[str] = []
    for name in PUBLIC:
        obj = getattr(llmobs, name)
        if inspect.isfunction(obj):
            _check_callable(name, obj, problems)
        elif inspect.isclass(obj):
            if not _own_docstring(obj):
                problems.append(f"{name}: no docstring")
            for attr, member in vars(obj).items():  # what the class itself defines, not what it inherits
                if isinstance(member, property):
                    _check_callable(f"{name}.{attr}", member.fget, problems)
                elif attr == "__init__" and inspect.isfunction(member):  # documented by the class docstring
                    hints = typing.get_type_hints(member)
                    unannotated = sorted(set(inspect.signature(member).parameters) - set(hints) - {"self"})
                    if unannotated:
                        problems.append(f"{name}.__init__: unannotated {unannotated}")
                elif inspect.isfunction(member) and not attr.startswith("_"):
                    _check_callable(f"{name}.{attr}", member, problems)
    assert not problems, "\n".join(problems)


# Packages of generated code only (protoc output): imported by module, with nothing to curate.
GENERATED = {"llmobs.serving.scaler.proto"}


def _packages() -> list[str]:
    found = {".".join(p.relative_to(SRC.parent).parent.parts) for p in SRC.rglob("__init__.py")}
    return sorted(found - GENERATED)


@pytest.mark.parametrize("package", _packages())
def test_every_package_says_what_it_exports(package: str) -> None:
    """Each package curates `__all__` (or declares it empty, being internal), and every name resolves.
    An exported name must not be a submodule's name: importing that submodule would replace the
    package attribute with the module."""
    module = importlib.import_module(package)
    assert module.__doc__, f"{package} has no docstring"
    assert isinstance(getattr(module, "__all__", None), list), f"{package} defines no __all__"
    for name in module.__all__:
        getattr(module, name)
    path = Path(module.__file__).parent
    submodules = {p.stem for p in path.glob("*.py")} | {p.name for p in path.iterdir() if (p / "__init__.py").exists()}
    assert not set(module.__all__) & submodules


def _type_checking_blocks(package: str) -> list[ast.If]:
    path = SRC.parent.joinpath(*package.split("."), "__init__.py")
    tree = ast.parse(path.read_text())
    return [n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING"]


TYPED_PACKAGES = [p for p in _packages() if _type_checking_blocks(p)]


def test_the_public_packages_are_visible_to_type_checkers() -> None:
    assert {"llmobs", "llmobs.signals", "llmobs.sources", "llmobs.forecast"} <= set(TYPED_PACKAGES)


@pytest.mark.parametrize("package", TYPED_PACKAGES)
def test_type_checkers_see_the_lazy_exports(package: str) -> None:
    """A lazily exported package names its exports in `if TYPE_CHECKING:` for type checkers; that block
    must import the very objects `package.X` loads at run time, no more and no fewer."""
    module = importlib.import_module(package)
    static = {}
    for block in _type_checking_blocks(package):
        for node in ast.walk(block):
            if isinstance(node, ast.ImportFrom):
                source = importlib.import_module("." * node.level + (node.module or ""), package)
                static.update({a.asname or a.name: getattr(source, a.name) for a in node.names})
    assert set(static) == set(module.__all__) - {"__version__"}
    wrong = [name for name, obj in static.items() if getattr(module, name) is not obj]
    assert not wrong, f"{package}.X at run time is not what the TYPE_CHECKING block imports: {wrong}"


def test_py_typed_ships_with_the_package() -> None:
    assert (SRC / "py.typed").is_file()


# --- parse_page ---------------------------------------------------------------------------------------


def test_parse_page_reads_a_vllm_page() -> None:
    page = llmobs.parse_page(FIXTURE.read_text())
    assert list(page.models) == ["tiny"]
    assert page.skipped == {} and page.skipped_lines == 0 and page.missing == ()
    tiny = page.models["tiny"]
    assert tiny.counter("request_success") == 8.0  # stop 2 + length 6 (+ 0 for the other reasons)
    assert tiny.gauge("requests_running") == 0.0
    assert "ttft" in tiny.histograms


def test_parse_page_counts_bad_lines_and_keeps_the_rest() -> None:
    text = FIXTURE.read_text() + "this is not a sample\nvllm:num_requests_running{model_name=\"tiny\"} abc\n"
    page = llmobs.parse_page(text)
    assert page.skipped == {"malformed": 1, "bad_value": 1}
    assert page.skipped_lines == 2
    assert list(page.models) == ["tiny"]


def test_a_page_that_is_not_vllm_has_no_models_and_names_what_is_missing() -> None:
    page = llmobs.parse_page("# TYPE up gauge\nup 1\n")
    assert page.models == {}
    assert "requests_running" in page.missing


def test_openmetrics_content_type() -> None:
    text = FIXTURE.read_text() + "# EOF\n"
    page = llmobs.parse_page(text, content_type="application/openmetrics-text; version=1.0.0; charset=utf-8")
    assert list(page.models) == ["tiny"] and page.skipped == {}


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from('vlm:_{}="#, \n\t0.1e+-InfNaTYPEHLOk\\'), max_size=300))
def test_parse_page_never_raises(text: str) -> None:
    page = llmobs.parse_page(text)
    assert all(n > 0 for n in page.skipped.values())


def test_parse_page_counts_what_it_read_but_could_not_use() -> None:
    """A histogram without its +Inf bucket, a bucket whose `le` is not a number and a NaN counter used to
    vanish with `skipped == {}` and nothing else said: now each is counted in `Page.dropped` under the
    reasons of llmobs_series_dropped_total."""
    lines = FIXTURE.read_text().split("\n")
    no_inf = "\n".join(line for line in lines
                       if not (line.startswith("vllm:time_to_first_token_seconds_bucket") and "+Inf" in line))
    page = llmobs.parse_page(no_inf)
    buckets = sum(line.startswith("vllm:time_to_first_token_seconds_bucket") for line in lines)
    assert "ttft" not in page.models["tiny"].histograms  # absent, not a guess
    assert page.dropped == {"bad_bucket": buckets - 1}
    bad_le = FIXTURE.read_text().replace('le="0.001"', 'le="abc"', 1)
    assert llmobs.parse_page(bad_le).dropped == {"bad_bucket": 1}
    nan = FIXTURE.read_text().replace('vllm:num_requests_running{engine="0",model_name="tiny"} 0.0',
                                      'vllm:num_requests_running{engine="0",model_name="tiny"} NaN')
    assert nan != FIXTURE.read_text()
    page = llmobs.parse_page(nan)
    assert page.dropped == {"implausible": 1} and math.isnan(page.models["tiny"].gauge("requests_running"))
    assert llmobs.parse_page(FIXTURE.read_text()).dropped == {}


@pytest.mark.parametrize("text", [b"vllm:num_requests_running 1\n", None, 42])
def test_parse_page_refuses_what_is_not_text(text: object) -> None:
    with pytest.raises(TypeError, match="parse_page reads the page's text, a str"):
        llmobs.parse_page(text)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="content_type"):
        llmobs.parse_page("", content_type=5)  # type: ignore[arg-type]


# --- SignalTracker ------------------------------------------------------------------------------------


def _page(finished: float, running: float = 3.0, model: str = "m") -> llmobs.Page:
    return llmobs.parse_page(
        "# TYPE vllm:request_success_total counter\n"
        f'vllm:request_success_total{{finished_reason="stop",model_name="{model}"}} {finished}\n'
        "# TYPE vllm:num_requests_running gauge\n"
        f'vllm:num_requests_running{{model_name="{model}"}} {running}\n')


def test_two_pages_make_signals() -> None:
    tracker = llmobs.SignalTracker("vllm-0", node="n1", gpu_model="L4")
    assert tracker.observe(_page(100), 0.0) == []  # a rate needs two pages
    [signals] = tracker.observe(_page(130, running=5), 15.0)
    assert signals.attribution == llmobs.Attribution("m", "vllm-0", "n1", "L4")
    assert signals.request_rate == pytest.approx(2.0)
    assert signals.finished_rate_by_reason == {"stop": pytest.approx(2.0)}
    assert signals.requests_running == 5
    assert signals.window_seconds == 15.0
    assert math.isnan(signals.ttft.quantiles[0.9])  # the page has no TTFT histogram


def test_a_restart_is_not_a_negative_rate() -> None:
    tracker = llmobs.SignalTracker("e", window_seconds=100)
    tracker.observe(_page(100), 0.0)
    tracker.observe(_page(130), 10.0)
    [signals] = tracker.observe(_page(5), 20.0)  # vLLM restarted: its counter starts again from 0
    assert signals.request_rate == pytest.approx((30 + 5) / 20)
    assert signals.totals["requests:stop"] == 135


def test_the_window_slides() -> None:
    tracker = llmobs.SignalTracker("e", window_seconds=20)
    for t, finished in [(0, 0), (10, 100), (20, 110), (30, 120)]:
        signals = tracker.observe(_page(finished), float(t))
    assert signals[0].request_rate == pytest.approx(1.0)  # the burst at t=10 has left the window
    assert signals[0].window_seconds == 20


def test_models_come_and_go() -> None:
    tracker = llmobs.SignalTracker("e")
    tracker.observe(_page(1, model="a"), 0.0)
    assert [s.attribution.model for s in tracker.observe(_page(2, model="a"), 1.0)] == ["a"]
    assert tracker.observe(llmobs.parse_page(""), 2.0) == []  # an empty page changes nothing
    assert tracker.models == ("a",)
    assert tracker.observe(_page(1, model="b"), 3.0) == []  # a page without `a`: `a` is forgotten
    assert tracker.models == ("b",)


def test_stale_and_implausible_input() -> None:
    tracker = llmobs.SignalTracker("e")
    tracker.observe(_page(10), 10.0)
    [signals] = tracker.observe(_page(20), 20.0)
    assert signals.request_rate == pytest.approx(1.0)
    [stale] = tracker.observe(_page(1000, running=9), 15.0)  # older than the last page: the last window stands
    assert stale.request_rate == pytest.approx(1.0) and stale.window_seconds == 10 and stale.requests_running == 3
    [signals] = tracker.observe(_page(30, running=-1), 30.0)
    assert math.isnan(signals.requests_running) and tracker.implausible_samples == 1
    with pytest.raises(ValueError, match="finite"):
        tracker.observe(_page(30), math.nan)
    with pytest.raises(ValueError, match="window_seconds"):
        llmobs.SignalTracker("e", window_seconds=0)
    with pytest.raises(TypeError, match=r"observe takes a Page \(llmobs.parse_page\(text\)\), not str"):
        tracker.observe("vllm:num_requests_running 1", 40.0)  # type: ignore[arg-type]


def test_after_a_scrape_gap_the_rate_is_the_windows_not_the_gaps() -> None:
    """Pages at 0, 1000 and 1010 s with a 60-s window: the last 10 s ran at 1 req/s, and the rate said 0.02
    (20 requests over the 1,010 s back to the page before the gap)."""
    tracker = llmobs.SignalTracker("e", window_seconds=60)
    tracker.observe(_page(0), 0.0)
    [after_gap] = tracker.observe(_page(10), 1000.0)
    assert after_gap.window_seconds == 1000.0  # one page since the gap: the gap's average, and it says so
    [signals] = tracker.observe(_page(20), 1010.0)
    assert signals.request_rate == pytest.approx(1.0) and signals.window_seconds == 10.0


# --- config and catalogue -----------------------------------------------------------------------------


def test_config_text_and_file(tmp_path: Path) -> None:
    config = llmobs.load_config_text("targets: [{url: 'http://10.0.0.7:8000/metrics'}]\n")
    assert isinstance(config, llmobs.LlmobsConfig)
    assert config.targets[0].url == "http://10.0.0.7:8000/metrics"
    with pytest.raises(llmobs.ConfigError, match=r"scrape\.interval_seconds"):
        llmobs.load_config_text("scrape: {interval_seconds: -1}")
    path = tmp_path / "llmobs.yaml"
    path.write_text("signals: {window_seconds: 30}\n")
    assert llmobs.load_config(path).signals.window_seconds == 30


def test_catalogue() -> None:
    assert all(isinstance(row, llmobs.MetricSpec) for row in llmobs.METRICS)
    row = llmobs.metric("llmobs_requests_waiting")
    assert row in llmobs.METRICS and row.signal_field == "requests_waiting" and row.type == "gauge"
    with pytest.raises(KeyError):
        llmobs.metric("vllm:num_requests_waiting")
    with pytest.raises(TypeError, match="a str, not NoneType"):
        llmobs.metric(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="YAML text must be a str or bytes"):
        llmobs.load_config_text(None)  # type: ignore[arg-type]


# --- Exporter -----------------------------------------------------------------------------------------


@pytest.fixture
def vllm_url() -> Iterator[str]:
    with FixturePageServer() as url:
        yield url


async def test_exporter_runs_for_the_block(vllm_url: str) -> None:
    config = llmobs.load_config_text(f"targets: [{{url: '{vllm_url}', name: vllm-0}}]\n"
                                     "scrape: {interval_seconds: 0.2}\nserver: {host: 127.0.0.1, port: 0}\n")
    exporter = llmobs.Exporter(config)
    assert not exporter.running
    async with exporter:
        assert exporter.running and exporter.port > 0
        [signals] = await exporter.wait_for_signals(timeout=20)
        assert signals.attribution.endpoint == "vllm-0" and signals.attribution.model == "tiny"
        assert [s.attribution for s in exporter.signals("tiny")] == [signals.attribution]
        assert exporter.signals("other") == ()
        assert exporter.state.targets[0].up
        reader, writer = await asyncio.open_connection("127.0.0.1", exporter.port)
        writer.write(b"GET /metrics HTTP/1.0\r\n\r\n")
        text = (await reader.read()).decode()
        writer.close()
        running = [line for line in text.splitlines() if line.startswith("llmobs_requests_running{")]
        assert len(running) == 1 and 'endpoint="vllm-0"' in running[0] and 'model="tiny"' in running[0]
        with pytest.raises(RuntimeError, match="already running"):
            await exporter.start()
        port = exporter.port
    assert not exporter.running
    with pytest.raises(RuntimeError, match="not running"):
        exporter.port  # noqa: B018
    with pytest.raises(OSError):  # the server is gone
        await asyncio.open_connection("127.0.0.1", port)


async def test_exporter_on_a_port_in_use_raises_instead_of_ending_the_program() -> None:
    """uvicorn calls sys.exit when it cannot bind: inside a user's event loop that SystemExit ended their
    program past any `except Exception`. It is an OSError now, and what had started is stopped."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = llmobs.load_config_text(f"server: {{host: 127.0.0.1, port: {port}}}\n")
        tasks_before = len(asyncio.all_tasks())
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            async with llmobs.Exporter(config):
                pass
        await asyncio.sleep(0)
        assert len(asyncio.all_tasks()) == tasks_before  # no scrape loop or server left running


def test_exporter_takes_a_config_not_a_dict() -> None:
    with pytest.raises(TypeError, match="Exporter takes an LlmobsConfig"):
        llmobs.Exporter({"targets": []})  # type: ignore[arg-type]


async def test_exporter_wait_times_out_without_targets() -> None:
    config = llmobs.load_config_text("scrape: {interval_seconds: 0.1}\nserver: {host: 127.0.0.1, port: 0}\n")
    async with llmobs.Exporter(config) as exporter:
        with pytest.raises(TimeoutError, match="no signals"):
            await exporter.wait_for_signals(timeout=0.3)

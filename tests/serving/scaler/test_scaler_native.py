"""The opt-in native engine: the C++ front end answers KEDA's unary calls from the table Python writes, and forwards
everything else. What a user relies on: the same answers as the Python engine (byte for byte, errors too),
served by the front end once the trigger is known, never from a table Python stopped writing, and a front end
that comes back on the same port when it dies. The KEDA sequence, streams, staleness and TLS run against
both engines in tests/serving/scaler/test_scaler_grpc.py and tests/serving/scaler/test_scaler_tls.py."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from llmobs.serving.scaler import ScalerConfig, ScalerHandle, serve_scaler
from llmobs.serving.scaler.cache import build_snapshot
from llmobs.serving.scaler.frontend import BINARY_NAME, build_table, canonical_key, locate_binary, read_stats
from llmobs.serving.scaler.proto import answers_pb2
from llmobs.serving.scaler.proto import externalscaler_pb2 as pb
from llmobs.serving.scaler.proto import externalscaler_pb2_grpc as pb_grpc
from llmobs.serving.scaler.triggers import TriggerRegistry
from llmobs.state import StateHolder
from tests.factories import make_signals, make_state, scraped_target
from tests.serving.scaler.test_scaler_grpc import publish, scaler_config

HORIZONS = ScalerConfig().horizons()
TRIGGERS = [  # a value, an error of each kind the table carries, selectors, non-ASCII metadata
    {"model": "m", "signal": "queue_depth", "target": "2", "activationTarget": "1"},
    {"model": "m", "signal": "kv_utilization", "aggregate": "max", "target": "0.8"},
    {"model": "m", "endpoint": "m-0", "signal": "requests_running"},
    {"model": "unknown-model"},
    {"model": "m", "signal": "forecast_request_rate", "horizon": "1m"},  # no forecaster: UNAVAILABLE
    {"model": "modèle-ü", "signal": "queue_depth"},
]


async def answers(port: int, meta: dict[str, str]) -> list[tuple[str, str]]:
    """(status, reply) of GetMetricSpec, GetMetrics, IsActive for one trigger, as strings to compare."""
    out = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.ExternalScalerStub(channel)
        r = pb.ScaledObjectRef(name="so", namespace="ns", scalerMetadata={"scalerAddress": "x:9401", **meta})
        calls = [lambda: stub.GetMetricSpec(r, timeout=3),
                 lambda: stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=r), timeout=3),
                 lambda: stub.IsActive(r, timeout=3)]
        for make in calls:
            try:
                out.append(("OK", str(await make())))
            except grpc.aio.AioRpcError as e:
                out.append((e.code().name, e.details() or ""))
    return out


def two_models(holder: StateHolder) -> None:
    now = time.time()
    holder.publish(make_state(make_signals("m", "m-0", requests_waiting=3, requests_running=2,
                                           kv_cache_utilization=0.5, kv_cache_utilization_max=0.5),
                              make_signals("modèle-ü", "u-0", requests_waiting=1),
                              targets=(scraped_target("m-0", now), scraped_target("u-0", now)), time=now))


async def front_end_counts(handle: ScalerHandle) -> int:
    await asyncio.sleep(1.2)  # the front end writes its counts every second
    assert handle.workdir is not None
    return sum(read_stats(handle.workdir / "stats.tsv").values())


async def test_same_answers_as_python_and_served_by_the_front_end_once_known() -> None:
    holder = StateHolder()
    two_models(holder)
    native = await serve_scaler(scaler_config("native", stale_after_intervals=100), holder, interval_seconds=0.1)
    python = await serve_scaler(scaler_config("aio", stale_after_intervals=100), holder, interval_seconds=0.1)
    try:
        first = [await answers(native.port, t) for t in TRIGGERS]  # unknown to the front end: forwarded
        assert await front_end_counts(native) == 0
        await asyncio.sleep(0.3)  # the next cache publish writes these triggers into the table
        # Metadata in another order: the front end's key is canonical, as Python's is.
        again = [await answers(native.port, dict(reversed(list(t.items())))) for t in TRIGGERS]
        reference = [await answers(python.port, t) for t in TRIGGERS]
        assert first == again == reference
        # Every call of the second round but the unknown model's: a model no endpoint serves is never
        # remembered (so made-up names cannot grow the registry) and stays forwarded.
        assert await front_end_counts(native) == 3 * (len(TRIGGERS) - 1)
        assert reference[0][1][0] == "OK" and "metricValueFloat: 3" in reference[0][1][1]
        assert {a[1][0] for a in reference} == {"OK", "NOT_FOUND", "UNAVAILABLE"}
    finally:
        await native.stop()
        await python.stop()


async def test_a_table_python_stopped_writing_is_not_trusted_and_a_corrupt_one_is_ignored() -> None:
    holder = StateHolder()
    publish(holder, 4)
    # A long interval: the refresher does not rewrite the table while the test replaces it.
    handle = await serve_scaler(scaler_config("native", stale_after_intervals=100), holder, interval_seconds=60)
    meta = {"model": "m", "signal": "queue_depth"}
    assert handle.workdir is not None
    table_path: Path = handle.workdir / "answers.pb"
    try:
        await answers(handle.port, meta)
        await handle.refresher.refresh_async()  # now in the table
        await asyncio.sleep(0.1)
        assert "metricValueFloat: 4" in (await answers(handle.port, meta))[1][1]
        served = await front_end_counts(handle)
        assert served == 3

        def forged(written_at: float) -> bytes:
            table = answers_pb2.AnswerTable(written_at=written_at, max_age_seconds=3, serving=True, version=99)
            key = canonical_key({"scalerAddress": "x:9401", **meta})
            table.answers.add(key=key, metric_name="llmobs-queue-depth-m", target=5, value=999, active=True,
                              valid_until=time.time() + 3600)
            return table.SerializeToString()

        table_path.write_bytes(forged(time.time() - 60))  # older than its max age: Python stopped writing
        await asyncio.sleep(0.1)
        assert "metricValueFloat: 4" in (await answers(handle.port, meta))[1][1]  # forwarded, not 999
        assert await front_end_counts(handle) == served + 1  # only GetMetricSpec, which is static

        table_path.write_bytes(b"\x0a\xff\xff garbage")  # unparseable: the previous table stays
        await asyncio.sleep(0.1)
        assert "metricValueFloat: 4" in (await answers(handle.port, meta))[1][1]
    finally:
        await handle.stop()


async def test_the_front_end_comes_back_on_the_same_port_when_it_dies() -> None:
    holder = StateHolder()
    publish(holder, 2)
    handle = await serve_scaler(scaler_config("native", stale_after_intervals=100), holder, interval_seconds=0.1)
    try:
        port = handle.port
        assert (await answers(port, {"model": "m"}))[1][0] == "OK"
        frontend = handle.frontend
        assert frontend is not None and frontend.pid is not None
        os.kill(frontend.pid, signal.SIGKILL)
        for _ in range(100):
            if frontend.restarts == 1:  # counted once the new process listens
                break
            await asyncio.sleep(0.05)
        assert frontend.restarts == 1 and frontend.port == port
        assert (await answers(port, {"model": "m"}))[1][0] == "OK"
    finally:
        await handle.stop()
    assert handle.workdir is not None and not handle.workdir.exists()  # socket, table, stats removed


def test_build_table_carries_values_errors_and_when_each_stops_being_valid() -> None:
    now = time.time()
    state = make_state(make_signals("m", "m-0", requests_waiting=3), make_signals("m", "m-1"),
                       targets=(scraped_target("m-0", now - 1), scraped_target("m-1", now - 5)), time=now - 1)
    snapshot = build_snapshot(state, stale_after=10, now=now)
    registry = TriggerRegistry(HORIZONS, lambda: {"m", "x"})  # "x": known (scaler.models) but not scraped
    for meta in ({"model": "m"}, {"model": "m", "endpoint": "m-1"}, {"model": "x"}):
        registry.lookup(meta)
    table = build_table(snapshot, registry.items(), now=now, max_age_seconds=3)
    by_key = {a.key: a for a in table.answers}
    whole = by_key[canonical_key({"model": "m"})]
    assert (whole.code, whole.value, whole.active) == (0, 3.0, True)
    assert whole.valid_until == pytest.approx(now - 5 + 10)  # m-1's data goes stale first: totals change then
    unknown = by_key[canonical_key({"model": "x"})]
    assert unknown.code == grpc.StatusCode.NOT_FOUND.value[0] and "not served" in unknown.message
    assert unknown.valid_until == pytest.approx(now + 3)
    assert table.serving and table.written_at == now and table.max_age_seconds == 3


def test_keys_are_canonical() -> None:
    assert canonical_key({"b": "2", "a": "é"}) == canonical_key({"a": "é", "b": "2"}) == "a\0é\0b\0002\0".encode()


def test_native_is_opt_in_and_says_how_to_build(caplog: pytest.LogCaptureFixture) -> None:
    assert ScalerConfig().engine == "aio"
    caplog.set_level(logging.WARNING, logger="llmobs.config")
    assert ScalerConfig.model_validate({"engine": "auto"}).engine == "aio"  # removed engines load as aio
    assert ScalerConfig.model_validate({"engine": "threads", "max_streams": 64}).engine == "aio"
    assert "no longer exists" in caplog.text

    async def native_without_binary() -> None:
        await serve_scaler(ScalerConfig(host="127.0.0.1", port=0, engine="native", frontend_binary="/nonexistent/x"),
                           StateHolder(), interval_seconds=1)

    with pytest.raises(RuntimeError, match="make native"):
        asyncio.run(native_without_binary())


async def test_garbage_requests_get_an_error_and_the_front_end_keeps_serving() -> None:
    holder = StateHolder()
    publish(holder, 2)
    handle = await serve_scaler(scaler_config("native", stale_after_intervals=100), holder, interval_seconds=0.1)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{handle.port}") as channel:
            for method in ("GetMetrics", "IsActive", "GetMetricSpec", "StreamIsActive"):
                path = f"/externalscaler.ExternalScaler/{method}"
                for body in (b"\xff\xff\xff\xff", b"\x0a\x05abc", b"\x00" * 100_000):
                    if method.startswith("Stream"):
                        call = channel.unary_stream(path, request_serializer=None, response_deserializer=None)
                        with pytest.raises(grpc.aio.AioRpcError) as e:
                            async for _ in call(body, timeout=3):
                                pass
                    else:
                        call = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
                        with pytest.raises(grpc.aio.AioRpcError) as e:
                            await call(body, timeout=3)
                    assert e.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT,
                                              grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.RESOURCE_EXHAUSTED
                                              ), (method, body[:8], e.value)  # the last: over 64 KiB
        assert handle.frontend is not None and handle.frontend.restarts == 0
        assert (await answers(handle.port, {"model": "m"}))[1][0] == "OK"
    finally:
        await handle.stop()


def test_the_front_end_exits_when_llmobs_is_killed(tmp_path: Path) -> None:
    """Killed without a chance to clean up (SIGKILL, OOM), llmobs must not leave KEDA's port held."""
    binary = locate_binary(BINARY_NAME)
    if binary is None:
        pytest.skip("the native front end is not built (make native)")
    launcher = ("import subprocess, sys, time\n"
                f"p = subprocess.Popen([{binary!r}, '--listen', '127.0.0.1:0', '--backend', 'unix:{tmp_path}/b.sock', "
                f"'--table', '{tmp_path}/t.pb', '--stats', '{tmp_path}/s.tsv'], stdout=subprocess.PIPE)\n"
                "print(p.pid, p.stdout.readline().decode().strip(), flush=True)\n"
                "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", launcher], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pid, word, _port = parent.stdout.readline().split()
    assert word == "listening"
    parent.kill()
    parent.wait()
    parent.stdout.close()
    stat = Path(f"/proc/{pid}/stat")
    for _ in range(100):
        if not stat.exists() or stat.read_text().split()[2] == "Z":  # exited (a zombie until init reaps it)
            return
        time.sleep(0.05)
    os.kill(int(pid), signal.SIGKILL)
    pytest.fail("the front end outlived the process that started it")


def test_a_killed_llmobs_leaves_no_answer_table_behind_after_the_next_start(tmp_path: Path) -> None:
    """A SIGKILLed llmobs cannot remove its native engine's folder (answer table, stats, socket); the next
    start does, so a restarting pod's small /tmp does not fill up. A live process's folder is left alone."""
    if locate_binary(BINARY_NAME) is None:
        pytest.skip("the native front end is not built (make native)")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    starter = ("import asyncio, sys, tempfile\n"
               "from llmobs.serving.scaler import ScalerConfig, serve_scaler\n"
               "from llmobs.state import StateHolder\n"
               "async def main():\n"
               "    h = await serve_scaler(ScalerConfig(enabled=True, host='127.0.0.1', port=0, engine='native'),\n"
               "                           StateHolder(), interval_seconds=0.2)\n"
               "    print(h.port, flush=True)\n"
               "    await asyncio.sleep(60)\n"
               "asyncio.run(main())\n")
    killed = subprocess.Popen([sys.executable, "-c", starter], stdout=subprocess.PIPE, text=True, env=env)
    assert killed.stdout is not None and killed.stdout.readline().strip().isdigit()
    left = list(tmp_path.glob("llmobs-scaler-*"))
    assert len(left) == 1 and (left[0] / "answers.pb").exists()
    killed.kill()
    killed.wait()
    killed.stdout.close()
    assert left[0].exists()  # SIGKILL: nothing could clean up
    alive = subprocess.Popen([sys.executable, "-c", starter], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert alive.stdout is not None and alive.stdout.readline().strip().isdigit()
        remaining = list(tmp_path.glob("llmobs-scaler-*"))
        assert left[0] not in remaining and len(remaining) == 1  # the dead one's gone, the live one's own stays
        later = subprocess.run([sys.executable, "-c", "from pathlib import Path\n"
                                "from llmobs.serving.scaler.server import remove_orphaned_workdirs\n"
                                f"print(remove_orphaned_workdirs(Path({str(tmp_path)!r})))"],
                               capture_output=True, text=True, env=env, check=True)
        assert later.stdout.strip() == "[]" and remaining[0].exists()  # a running llmobs keeps its folder
    finally:
        alive.kill()
        alive.wait()
        if alive.stdout is not None:
            alive.stdout.close()


async def test_a_failed_start_leaves_no_folder_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """KEDA's port already taken: the start fails with an error, and the native engine's folder is gone."""
    if locate_binary(BINARY_NAME) is None:
        pytest.skip("the native front end is not built (make native)")
    import socket
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = ScalerConfig(enabled=True, host="127.0.0.1", port=taken.getsockname()[1], engine="native")
        with pytest.raises(RuntimeError, match="cannot listen"):
            await serve_scaler(config, StateHolder(), interval_seconds=0.2)
    assert list(tmp_path.glob("llmobs-scaler-*")) == []

"""Telemetry to a real predictor, Prometheus counters, runtime mode, providers, start()."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from exec_testkit import RegistryServed, StartExecutor, tensor
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from mlos_common.bootstrap import ServerParts
from mlos_common.errors import FailedPrecondition, InvalidArgument
from mlos_executor import onnx_backend
from mlos_executor.client import ExecutorClient
from mlos_executor.config import ExecutorSettings
from mlos_executor.errors import ModelLoadFailed
from mlos_executor.onnx_backend import choose_providers
from mlos_executor.runtime_mode import detect_runtime_mode
from mlos_executor.server import SERVICE as EXECUTOR_SERVICE
from mlos_executor.server import start as start_executor_process
from mlos_executor.telemetry import ExecutorMetrics, telemetry_sink
from mlos_predictor.client import PredictorClient
from mlos_predictor.config import PredictorSettings
from mlos_predictor.server import start as start_predictor_process


@pytest.fixture
async def predictor_addr():
    settings = PredictorSettings(grpc_port=0, metrics_port=-1, http_port=-1)
    server, port, closers = await start_predictor_process(settings, ServerParts(), CollectorRegistry())
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(None)
    for close in closers:
        await close()


async def test_telemetry_reaches_predictor_and_prometheus(
    registry: RegistryServed, start_executor: StartExecutor, model_files, predictor_addr: str
):
    n = 7
    prom = CollectorRegistry()
    settings = ExecutorSettings(predictor_addr=predictor_addr, executor_id="exec-telemetry")
    sink, streamer = telemetry_sink(settings, ExecutorMetrics(prom))
    assert streamer is not None
    try:
        ex = await start_executor(sink=sink)
        mv = await registry.client.register("plus", model_files.plus_one)
        await ex.client.load("plus", mv.version, mv.sha256)
        batches = [np.ones((b, 3), dtype=np.float32) for b in range(1, n + 1)]
        for x in batches:
            await ex.client.execute("plus", mv.version, [tensor("X", x)], [])
        # a rejected request never reaches the runtime and is not an execution
        with pytest.raises(InvalidArgument):
            await ex.client.execute("plus", mv.version, [tensor("X", np.ones((1, 4), np.float32))], [])

        labels = {"model": "plus", "version": str(mv.version)}
        assert prom.get_sample_value("mlos_executor_executions_total", {**labels, "outcome": "ok"}) == n
        assert prom.get_sample_value("mlos_executor_executions_total", {**labels, "outcome": "error"}) is None
        assert prom.get_sample_value("mlos_executor_batch_elements_total", labels) == sum(range(1, n + 1))
        assert prom.get_sample_value("mlos_executor_compute_seconds_count", labels) == n

        async with PredictorClient(predictor_addr) as predictor:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            summary = None
            while True:
                summaries = await predictor.latency_summary("plus", mv.version)
                summary = summaries[0] if summaries else None
                if summary is not None and summary.count >= n:
                    break
                assert loop.time() < deadline, f"predictor saw {summary} after 10 s"
                await asyncio.sleep(0.05)
        assert summary.count == n
        assert summary.failures == 0
        assert summary.model_name == "plus"
        assert summary.mean_batch_size == pytest.approx(sum(range(1, n + 1)) / n)
        assert summary.p50_ms > 0
        assert streamer.dropped == 0
    finally:
        await streamer.close()


async def test_metrics_sink_without_predictor(registry, start_executor, model_files):
    prom = CollectorRegistry()
    sink, streamer = telemetry_sink(ExecutorSettings(predictor_addr=""), ExecutorMetrics(prom))
    assert streamer is None
    ex = await start_executor(sink=sink)
    mv = await registry.client.register("plus", model_files.plus_one)
    await ex.client.load("plus", mv.version, mv.sha256)
    for _ in range(3):
        await ex.client.execute("plus", mv.version, [tensor("X", np.ones((2, 3), np.float32))], [])
    labels = {"model": "plus", "version": str(mv.version), "outcome": "ok"}
    assert prom.get_sample_value("mlos_executor_executions_total", labels) == 3


# ---- runtime mode ----


def test_runtime_mode_file_instead_of_dir_is_userspace(tmp_path: Path):
    (tmp_path / "sys/module").mkdir(parents=True)
    (tmp_path / "sys/module/mlos_ml").write_text("")
    assert detect_runtime_mode(tmp_path).mode == "userspace"


def test_runtime_mode_default_matches_sys():
    # every mode from the parameter values: tests/executor/test_exec_hardware.py
    assert (detect_runtime_mode().mode == "userspace") == (not Path("/sys/module/mlos_ml").is_dir())


# ---- providers ----


def test_choose_providers_cpu_only(monkeypatch):
    monkeypatch.setattr(onnx_backend.ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert choose_providers("cpu") == ["CPUExecutionProvider"]
    assert choose_providers("auto") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_choose_providers_cuda_missing(monkeypatch):
    monkeypatch.setattr(onnx_backend.ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert choose_providers("auto") == ["CPUExecutionProvider"]
    assert choose_providers("cpu") == ["CPUExecutionProvider"]
    with pytest.raises(ModelLoadFailed, match="CUDAExecutionProvider"):
        choose_providers("cuda")


async def test_load_on_cuda_without_cuda_is_failed_precondition(registry, start_executor, model_files, monkeypatch):
    monkeypatch.setattr(onnx_backend.ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    ex = await start_executor(device="cuda")
    mv = await registry.client.register("plus", model_files.plus_one)
    with pytest.raises(FailedPrecondition, match="cuda"):
        await ex.client.load("plus", mv.version, mv.sha256)
    assert (await ex.client.status()).models == []


# ---- process start-up ----


async def test_start_sets_health_serving_and_serves(registry, model_files, tmp_path):
    settings = ExecutorSettings(
        grpc_port=0, metrics_port=-1, registry_addr=registry.addr, cache_dir=tmp_path / "start-cache",
        device="cpu", executor_id="exec-started",
    )
    server, port, closers = await start_executor_process(settings, ServerParts(), CollectorRegistry())
    await server.start()
    addr = f"127.0.0.1:{port}"
    try:
        async with aio.insecure_channel(addr) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for service in ("", EXECUTOR_SERVICE):
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
        async with ExecutorClient(addr) as client:
            status = await client.status()
            assert status.executor_id == "exec-started"
            assert "CPUExecutionProvider" in status.available_providers
            mv = await registry.client.register("plus", model_files.plus_one)
            await client.load("plus", mv.version, mv.sha256)
            x = np.zeros((2, 3), np.float32)
            reply = await client.execute("plus", mv.version, [tensor("X", x)], [])
            assert reply.outputs[0].name == "Y"
    finally:
        await server.stop(None)
        for close in closers:
            await close()


def test_auto_intra_op_threads_share_the_cpus_between_concurrent_runs() -> None:
    from mlos_executor.onnx_backend import auto_intra_op_threads

    assert auto_intra_op_threads(2, cpus=2) == 1  # this project's 2-core machines
    assert auto_intra_op_threads(2, cpus=16) == 8
    assert auto_intra_op_threads(4, cpus=2) == 1  # never zero
    assert auto_intra_op_threads(0, cpus=4) == 4


async def test_status_reports_the_thread_rule(start_executor) -> None:
    from mlos_executor.onnx_backend import auto_intra_op_threads
    from mlos_executor.threads import usable_cpus

    auto = await start_executor(execution_slots=2)
    status = await auto.client.status()
    assert (status.intra_op_threads, status.execution_slots) == (auto_intra_op_threads(2), 2)
    # Every usable CPU (more is refused at start-up), over 4 slots where the rule would give 1 on 2+ CPUs.
    fixed = await start_executor(intra_op_threads=usable_cpus(), execution_slots=4)
    status = await fixed.client.status()
    assert (status.intra_op_threads, status.execution_slots) == (usable_cpus(), 4)


async def test_tiny_runs_execute_inline_and_heavy_ones_on_a_worker_thread(registry, start_executor, model_files, demo_models):
    import numpy as np
    from exec_testkit import tensor

    # 5 ms: far above plus_one's ~20 us run even on a loaded host, far below 8 images of ocr_cls
    ex = await start_executor(inline_run_us=5000)
    plus = await registry.client.register("plus", model_files.plus_one)
    ocr = await registry.client.register("ocr", demo_models["ocr_cls"].path)
    for name, mv in (("plus", plus), ("ocr", ocr)):
        await ex.client.load(name, mv.version, mv.sha256)
    x = np.ones((2, 3), np.float32)
    for _ in range(5):
        await ex.client.execute("plus", plus.version, [tensor("X", x)], [])
    tiny = ex.core.get("plus", plus.version)
    assert 0 < tiny.mean_run_ns < ex.core.inline_run_ns
    # the first (cold) run is not counted, the second is measured on a worker thread, the rest inline
    assert tiny.inline_runs == 3
    images = demo_models["ocr_cls"].sample_inputs(batch=8)
    for _ in range(3):
        await ex.client.execute("ocr", ocr.version, [tensor("x", images["x"])], [])
    heavy = ex.core.get("ocr", ocr.version)
    assert heavy.mean_run_ns > ex.core.inline_run_ns and heavy.inline_runs == 0

    never = await start_executor(inline_run_us=0)
    await never.client.load("plus", plus.version, plus.sha256)
    for _ in range(3):
        await never.client.execute("plus", plus.version, [tensor("X", x)], [])
    assert never.core.get("plus", plus.version).inline_runs == 0


async def test_a_heavy_model_running_alone_gets_every_cpu(registry, start_executor, model_files):
    import asyncio

    import numpy as np
    import pytest
    from exec_testkit import tensor

    from mlos_executor.onnx_backend import auto_intra_op_threads

    if auto_intra_op_threads(1) <= auto_intra_op_threads(2):
        pytest.skip("a single usable CPU: there is nothing more to give a heavy model")
    # every measured run counts as heavy; no inline runs, so each run goes to a worker thread
    ex = await start_executor(heavy_run_ms=0.0, inline_run_us=0)
    light = await start_executor(heavy_run_ms=1e6, inline_run_us=0)
    mv = await registry.client.register("plus", model_files.plus_one)
    x = np.ones((2, 3), np.float32)
    for executor in (ex, light):
        await executor.client.load("plus", mv.version, mv.sha256)
        for _ in range(3):
            await executor.client.execute("plus", mv.version, [tensor("X", x)], [])
    heavy = ex.core.get("plus", mv.version)
    for _ in range(200):  # the wide session is built in the background (bounded: 10 s)
        if heavy.wide is not None:
            break
        await asyncio.sleep(0.05)
    assert heavy.wide_threads == ex.core.heavy_threads == auto_intra_op_threads(1) > heavy.threads
    before = heavy.wide_runs
    reply = await ex.client.execute("plus", mv.version, [tensor("X", x)], [])  # alone: the wide session
    np.testing.assert_array_equal(np.frombuffer(reply.outputs[0].raw, np.float32).reshape(2, 3), x + 1)
    assert heavy.wide_runs == before + 1
    replies = await asyncio.gather(*(ex.client.execute("plus", mv.version, [tensor("X", x * i)], []) for i in range(4)))
    for i, reply in enumerate(replies):  # concurrent runs: right answers whichever session ran them
        np.testing.assert_array_equal(np.frombuffer(reply.outputs[0].raw, np.float32).reshape(2, 3), x * i + 1)
    [status] = (await ex.client.status()).models
    assert (status.intra_op_threads, status.wide_intra_op_threads) == (heavy.threads, heavy.wide_threads)
    assert status.wide_runs == heavy.wide_runs
    assert light.core.get("plus", mv.version).wide is None

"""The executor with a real predictor: memory and health samples arriving there, footprints it
predicts, prefetch on its workload forecast, and the background loops of a started executor."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from exec_testkit import RegistryServed, StartExecutor, tensor
from predictor_testkit import Running, linear_onnx, poll, serve_engine
from prometheus_client import CollectorRegistry

from mlos.predictor.v1 import predictor_pb2
from mlos_common.bootstrap import ServerParts
from mlos_common.errors import ResourceExhausted
from mlos_executor.budget import MB
from mlos_executor.client import ExecutorClient
from mlos_executor.config import ExecutorSettings
from mlos_executor.server import start as start_executor_process
from mlos_executor.telemetry import ExecutorMetrics, ExecutorTelemetry
from mlos_predictor.client import PredictorClient, TelemetryStreamer
from mlos_predictor.engine import build_engine
from mlos_predictor.kinds import SPECS
from mlos_predictor.models import ModelCard, OnnxModel


@contextlib.asynccontextmanager
async def started_executor(
    registry: RegistryServed, predictor: Running, tmp_path: Path, **settings: float
) -> AsyncIterator[tuple[str, CollectorRegistry]]:
    """An executor as its process starts it (`server.start`: background loops included), with the
    real registry and predictor; yields its address and its Prometheus registry."""
    prom = CollectorRegistry()
    config = ExecutorSettings(
        grpc_port=0, metrics_port=-1, registry_addr=registry.addr, predictor_addr=predictor.addr,
        cache_dir=tmp_path / "cache", device="cpu", unix_link=False, **settings,
    )
    server, port, closers = await start_executor_process(config, ServerParts(), prom)
    await server.start()
    try:
        yield f"127.0.0.1:{port}", prom
    finally:
        await server.stop(None)
        for close in closers:
            await close()


async def test_memory_and_health_samples_reach_a_real_predictor(
    registry: RegistryServed, start_executor: StartExecutor, model_files, predictor: Running
) -> None:
    prom = CollectorRegistry()
    telemetry = ExecutorTelemetry(ExecutorSettings(predictor_addr=predictor.addr, executor_id="exec-samples"),
                                  ExecutorMetrics(prom))
    streamer = telemetry.streamer
    assert streamer is not None
    try:
        ex = await start_executor(sink=telemetry.execution, on_memory_sample=telemetry.memory,
                                  predictor_addr=predictor.addr)
        mv = await registry.client.register("plus", model_files.plus_one)
        await ex.client.load_model("plus", mv.version, mv.sha256, max_batch_size=8)
        for _ in range(3):
            await ex.client.execute("plus", mv.version, [tensor("X", np.ones((2, 3), np.float32))], [])
        telemetry.health_sample(ex.core)
        assert prom.get_sample_value("mlos_executor_telemetry_samples_total", {"kind": "memory"}) == 2
        assert prom.get_sample_value("mlos_executor_telemetry_samples_total", {"kind": "health"}) == 1

        async with PredictorClient(predictor.addr) as client:
            async def arrived() -> bool:
                [memory] = await client.model_info("memory")
                failure = await client.scores("failure")
                return memory.rows_available == 2 and [s.entity for s in failure.scores] == ["exec-samples"]

            await poll(arrived, 10, "the predictor to hold 2 memory rows and follow the executor's health")
            [score] = (await client.scores("failure")).scores
            assert score.features[0] == 0.0  # error_rate: 3 executions, none failed
    finally:
        await streamer.close()
    stats = streamer.stats()
    assert (stats.offered, stats.dropped, stats.acked, stats.rejected) == (6, 0, 6, 0)  # 3 records + 3 samples


async def test_a_started_executor_sends_health_and_reads_the_forecast_in_the_background(
    registry: RegistryServed, predictor: Running, tmp_path
) -> None:
    async with started_executor(registry, predictor, tmp_path, health_interval_s=0.05, prefetch_interval_s=0.05) as (
        _, prom
    ):
        def count(name: str, labels: dict[str, str]) -> float:
            return prom.get_sample_value(name, labels) or 0.0

        async def looped() -> bool:
            polls = sum(count("mlos_executor_prefetch_polls_total", {"outcome": o}) for o in ("ok", "no_forecast"))
            return count("mlos_executor_telemetry_samples_total", {"kind": "health"}) >= 2 and polls >= 2

        await poll(looped, 10, "two health samples and two forecast reads")
        assert count("mlos_executor_memory_budget_bytes", {}) > 0  # the default: 80 % of MemTotal


async def test_the_same_load_fits_on_the_prior_and_not_on_a_trained_model_that_predicts_more(
    registry: RegistryServed, start_executor: StartExecutor, model_files
) -> None:
    engine = build_engine()
    served = await serve_engine(engine)
    try:
        ex = await start_executor(memory_budget_mb=100, predictor_addr=served.addr)
        mv = await registry.client.register("plus", model_files.plus_one)
        reply = await ex.client.load_model("plus", mv.version, mv.sha256, max_batch_size=8)
        assert reply.model.memory_predicted_bytes / MB == pytest.approx(8.0, abs=0.01)  # the prior: 8 MB + a trifle
        assert reply.model.memory_predicted_by == f"the predictor at {served.addr}, the memory kind's documented prior"
        assert await ex.client.unload("plus", mv.version)

        spec = SPECS["memory"]  # a trained memory model (a real ONNX graph) that predicts 500 MB for anything
        engine.slots["memory"].swap(OnnxModel(spec, linear_onnx(spec, [0.0] * spec.width, bias=500.0)),
                                    ModelCard("memory", source="trained", version=7))
        with pytest.raises(ResourceExhausted) as err:
            await ex.client.load_model("plus", mv.version, mv.sha256, max_batch_size=8)
        assert f"500.0 MB (by the predictor at {served.addr}, its trained memory model v7)" in err.value.message
        assert (await ex.client.status()).models == []
    finally:
        await served.server.stop(None)


async def test_prefetch_loads_the_model_with_forecast_traffic_and_not_the_quiet_one(
    registry: RegistryServed, predictor: Running, model_files, tmp_path
) -> None:
    await registry.client.register("busy", model_files.plus_one)
    await registry.client.register("quiet", model_files.two_outputs)
    now_ms = int(time.time() * 1000)
    async with TelemetryStreamer(predictor.addr) as scheduler_side:  # what the front door reports per window
        scheduler_side.offer(predictor_pb2.RateSample(model_name="busy", unix_ms=now_ms, window_s=10, requests=50))
        scheduler_side.offer(predictor_pb2.RateSample(model_name="quiet", unix_ms=now_ms, window_s=10, requests=1))
    async with started_executor(registry, predictor, tmp_path, prefetch_interval_s=0.05, prefetch_min_rate=0.5) as (
        addr, prom
    ):
        def polls() -> float:
            return prom.get_sample_value("mlos_executor_prefetch_polls_total", {"outcome": "ok"}) or 0.0

        async with PredictorClient(predictor.addr) as client:
            forecasts = {s.entity: s.prediction.value for s in (await client.scores("workload")).scores}
        assert forecasts["busy"] >= 0.5 > forecasts["quiet"], forecasts  # 5 vs 0.1 requests/s last window
        async with ExecutorClient(addr) as executor:
            async def busy_loaded() -> bool:
                return [m.model.name for m in (await executor.status()).models] == ["busy"]

            await poll(busy_loaded, 10, "the prefetch of the model with forecast traffic")
            seen = polls()

            async def two_more_polls() -> bool:
                return polls() >= seen + 2

            await poll(two_more_polls, 10, "two more forecast reads")
            status = await executor.status()
        assert [m.model.name for m in status.models] == ["busy"]  # never the quiet one
        assert status.models[0].memory_predicted_by.startswith(f"the predictor at {predictor.addr}")  # through the budget
        assert prom.get_sample_value("mlos_executor_prefetches_total", {"outcome": "loaded"}) == 1

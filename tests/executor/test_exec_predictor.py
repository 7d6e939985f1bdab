"""The executor with a real predictor: memory and health samples on the telemetry stream, and the
background loops (health, prefetch) of a started executor."""

from __future__ import annotations

import numpy as np
from exec_testkit import RegistryServed, StartExecutor, tensor
from predictor_testkit import Running, poll
from prometheus_client import CollectorRegistry

from mlos_common.bootstrap import ServerParts
from mlos_executor.config import ExecutorSettings
from mlos_executor.server import start as start_executor_process
from mlos_executor.telemetry import ExecutorMetrics, ExecutorTelemetry


async def test_memory_and_health_samples_travel_to_a_real_predictor(
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
        for _ in range(2):
            telemetry.health_sample(ex.core)
        assert prom.get_sample_value("mlos_executor_telemetry_samples_total", {"kind": "memory"}) == 2
        assert prom.get_sample_value("mlos_executor_telemetry_samples_total", {"kind": "health"}) == 2

        async def all_sent() -> bool:
            return streamer.stats().sent == 3 + 2 + 2

        await poll(all_sent, 10, "the records and samples to be written into the predictor's stream")
    finally:
        await streamer.close()
    stats = streamer.stats()
    assert (stats.offered, stats.dropped, stats.rejected) == (7, 0, 0)
    assert stats.acked == 3  # the predictor acknowledges execution records; samples went in the same stream


async def test_a_started_executor_sends_health_and_reads_the_forecast_in_the_background(
    registry: RegistryServed, predictor: Running, tmp_path
) -> None:
    prom = CollectorRegistry()
    settings = ExecutorSettings(
        grpc_port=0, metrics_port=-1, registry_addr=registry.addr, predictor_addr=predictor.addr,
        cache_dir=tmp_path / "cache", device="cpu", unix_link=False, health_interval_s=0.05, prefetch_interval_s=0.05,
    )
    server, _, closers = await start_executor_process(settings, ServerParts(), prom)
    await server.start()

    def count(name: str, labels: dict[str, str]) -> float:
        return prom.get_sample_value(name, labels) or 0.0

    async def looped() -> bool:
        polls = sum(count("mlos_executor_prefetch_polls_total", {"outcome": o}) for o in ("ok", "no_forecast"))
        return count("mlos_executor_telemetry_samples_total", {"kind": "health"}) >= 2 and polls >= 2

    try:
        await poll(looped, 10, "two health samples and two forecast reads")
    finally:
        await server.stop(None)
        for close in closers:
            await close()
    assert count("mlos_executor_memory_budget_bytes", {}) > 0  # the default: 80 % of MemTotal

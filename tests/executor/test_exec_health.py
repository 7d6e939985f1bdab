"""Health per interval (the failure kind's input): counts, latency drift, uptime; and the sample
built from a real executor's core."""

from __future__ import annotations

import pytest
from exec_testkit import RegistryServed, StartExecutor, tensor
from prometheus_client import CollectorRegistry

from mlos_executor.config import ExecutorSettings
from mlos_executor.core import ExecutionSample
from mlos_executor.health import MIN_RUNS, HealthMonitor
from mlos_executor.telemetry import ExecutorMetrics, ExecutorTelemetry


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def run(monitor: HealthMonitor, ms: float, n: int = 1, ok: bool = True, batch: int = 1, model: str = "m") -> None:
    for _ in range(n):
        monitor.record(ExecutionSample(model, 1, batch, int(ms * 1e6), ok))


def test_counts_window_and_uptime_per_interval() -> None:
    clock = Clock()
    monitor = HealthMonitor(clock)
    run(monitor, 2.0, n=8)
    run(monitor, 2.0, n=2, ok=False)
    clock.now_s += 1.5
    first = monitor.snapshot()
    assert (first.executions, first.errors, first.window_s, first.uptime_s) == (10, 2, 1.5, 1.5)
    clock.now_s += 1.0
    second = monitor.snapshot()  # a new interval: nothing ran
    assert (second.executions, second.errors, second.window_s, second.uptime_s) == (0, 0, 1.0, 2.5)
    assert second.latency_drift == 1.0


def test_drift_is_one_when_steady_and_rises_when_runs_slow_down() -> None:
    monitor = HealthMonitor(Clock())
    run(monitor, 2.0, n=MIN_RUNS - 1)
    assert monitor.latency_drift() == 1.0  # too few runs to tell
    run(monitor, 2.0, n=50)
    assert monitor.snapshot().latency_drift == pytest.approx(1.0)
    run(monitor, 6.0, n=5)  # three times slower now
    drift = monitor.snapshot().latency_drift
    assert 2.0 < drift < 3.0, drift
    run(monitor, 2.0, n=60)
    assert monitor.snapshot().latency_drift == pytest.approx(1.0, abs=0.1)  # back to steady


def test_drift_compares_each_batch_size_with_itself() -> None:
    monitor = HealthMonitor(Clock())
    run(monitor, 1.0, n=20, batch=1)
    run(monitor, 8.0, n=20, batch=8)  # bigger batches take longer: not a drift
    assert monitor.snapshot().latency_drift == pytest.approx(1.0)


async def test_health_sample_from_a_real_executor(
    registry: RegistryServed, start_executor: StartExecutor, model_files
) -> None:
    import numpy as np

    telemetry = ExecutorTelemetry(ExecutorSettings(executor_id="exec-health"), ExecutorMetrics(CollectorRegistry()))
    ex = await start_executor(sink=telemetry.execution, memory_budget_mb=256)
    mv = await registry.client.register("plus", model_files.plus_one)
    await ex.client.load("plus", mv.version, mv.sha256)
    for _ in range(4):
        await ex.client.execute("plus", mv.version, [tensor("X", np.ones((2, 3), np.float32))], [])
    sample = telemetry.health_sample(ex.core)
    assert (sample.executor_id, sample.executions, sample.errors, sample.loaded_models) == ("exec-health", 4, 0, 1)
    assert sample.memory_budget_bytes == 256 << 20 and sample.rss_bytes > 0 and sample.uptime_s > 0
    assert telemetry.health_sample(ex.core).executions == 0  # the next interval starts empty

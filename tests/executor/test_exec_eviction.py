"""LRU eviction through a real executor server with a small budget: the least recently used idle
model goes, a model with work in flight never does, a load that cannot fit even after evicting
every idle model is refused RESOURCE_EXHAUSTED and evicts nothing; evictions in Status and metrics.

The models hold a 4 MiB table each (ONNX Runtime keeps it once). Their counted footprints vary
with the allocator (4 MiB at least: the file's size is the floor), so the last model's size is
chosen from what Status reports: its predicted footprint (the documented prior, computed from the
file) leaves room for it only once the intended models are gone, with half a model of margin.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest
from exec_testkit import ExecutorServed, RegistryServed, StartExecutor, save, table_model, tensor
from prometheus_client import CollectorRegistry
from test_exec_budget import prior_mb

from mlos_common.errors import FailedPrecondition, ResourceExhausted
from mlos_executor.budget import MB
from mlos_executor.config import ExecutorSettings
from mlos_executor.eviction import Candidate, choose_victims
from mlos_executor.telemetry import ExecutorMetrics

BUDGET_MB = 64
ROWS = 1024  # x 1024 FP32 = 4 MiB


def sized_model(path: Path, predicted_mb: float) -> Path:
    """A table model whose predicted footprint (at batch 1) is within 0.01 MB under `predicted_mb`."""
    row_mb = 1.5 * 4096 / MB  # what one more row of 1024 FP32 adds to the prediction
    rows = int((predicted_mb - 8.0) / row_mb)
    for _ in range(3):
        save(table_model(rows, seed=rows), path)
        over = prior_mb(path, 1) - predicted_mb
        if -0.01 < over <= 0:
            return path
        rows -= int(np.ceil(over / row_mb)) if over > 0 else -int(-over // row_mb)
    raise AssertionError(f"no table of the size predicted at {predicted_mb:.2f} MB")


async def loaded(registry: RegistryServed, ex: ExecutorServed, name: str, path: Path) -> None:
    mv = await registry.client.register(name, path)
    await ex.client.load(name, mv.version, mv.sha256)


async def request(ex: ExecutorServed, name: str, rows: list[int]) -> np.ndarray:
    reply = await ex.client.execute(name, 1, [tensor("X", np.array(rows, np.int64))], [])
    return np.frombuffer(reply.outputs[0].raw, np.float32).reshape(len(rows), 1024)


async def footprints(ex: ExecutorServed) -> dict[str, float]:
    return {m.model.name: m.memory_bytes / MB for m in (await ex.client.status()).models}


async def two_loaded(registry: RegistryServed, start_executor: StartExecutor, tmp_path: Path,
                     **settings) -> tuple[ExecutorServed, ExecutorMetrics]:
    metrics = ExecutorMetrics(CollectorRegistry())
    ex = await start_executor(memory_budget_mb=BUDGET_MB, inline_run_us=0, execution_slots=1,
                              on_evict=metrics.evicted, **settings)
    metrics.watch_memory(ex.core)
    for i, name in enumerate(("a", "b")):
        await loaded(registry, ex, name, save(table_model(ROWS, seed=i), tmp_path / f"{name}.onnx"))
    return ex, metrics


class HeldPool:
    """Occupies the executor's only execution slot until released, so a request sent meanwhile is
    in flight (accepted, queued for the worker thread) for as long as the test wants."""

    def __init__(self, ex: ExecutorServed) -> None:
        self._gate = threading.Event()
        ex.core._pool.submit(self._gate.wait)

    def release(self) -> None:
        self._gate.set()


async def in_flight(ex: ExecutorServed, name: str) -> None:
    for _ in range(500):  # each turn is a Status round trip, not a sleep
        if any(m.model.name == name and m.busy for m in (await ex.client.status()).models):
            return
    raise AssertionError(f"{name} never showed work in flight")


def test_victims_are_the_least_recently_used_idle_models_and_none_when_not_enough() -> None:
    old, mid, new = (Candidate((n, 1), t, 0, 10 * MB) for n, t in (("old", 1), ("mid", 2), ("new", 3)))
    busy_old = Candidate(("busy", 1), 0, 2, 50 * MB)
    assert choose_victims([new, busy_old, old, mid], 15 * MB) == [old, mid]
    assert choose_victims([new, old], 0) == []
    assert choose_victims([busy_old, old], 20 * MB) is None  # the busy one never counts


async def test_the_least_recently_used_model_is_evicted_and_reloads_on_request(
    registry: RegistryServed, start_executor: StartExecutor, tmp_path: Path
) -> None:
    ex, metrics = await two_loaded(registry, start_executor, tmp_path)
    first = await request(ex, "a", [3])  # a was loaded first but used last: b is the LRU
    used = await footprints(ex)
    await loaded(registry, ex, "c", sized_model(tmp_path / "c.onnx", BUDGET_MB - used["a"] - used["b"] / 2))
    status = await ex.client.status()
    assert sorted(m.model.name for m in status.models) == ["a", "c"]
    assert status.evictions == 1
    [e] = status.recent_evictions
    assert (e.model.name, e.for_model.name, e.reason) == ("b", "c", "memory_budget")
    assert e.memory_bytes == int(used["b"] * MB)
    assert status.memory_free_bytes == status.memory_budget_bytes - status.memory_used_bytes
    registry_ = metrics.registry
    assert registry_.get_sample_value("mlos_executor_evictions_total", {"model": "b", "reason": "memory_budget"}) == 1
    assert registry_.get_sample_value("mlos_executor_model_memory_bytes", {"model": "b", "version": "1"}) is None
    assert registry_.get_sample_value("mlos_executor_model_memory_bytes", {"model": "a", "version": "1"}) == int(
        used["a"] * MB)
    with pytest.raises(FailedPrecondition, match="not loaded"):  # what the scheduler reloads on
        await request(ex, "b", [0])
    np.testing.assert_array_equal(await request(ex, "a", [3]), first)  # the survivor answers as before


async def test_a_model_with_a_request_in_flight_is_never_evicted(
    registry: RegistryServed, start_executor: StartExecutor, tmp_path: Path
) -> None:
    ex, _ = await two_loaded(registry, start_executor, tmp_path)
    expected = await request(ex, "a", [1, 2])
    await request(ex, "b", [0])  # a is now the least recently used
    used = await footprints(ex)
    held = HeldPool(ex)
    pending = asyncio.ensure_future(request(ex, "a", [1, 2]))
    await in_flight(ex, "a")
    await loaded(registry, ex, "c", sized_model(tmp_path / "c.onnx", BUDGET_MB - used["a"] - used["b"] / 2))
    status = await ex.client.status()
    assert sorted(m.model.name for m in status.models) == ["a", "c"]  # b went although a was older
    assert [e.model.name for e in status.recent_evictions] == ["b"]
    held.release()
    np.testing.assert_array_equal(await pending, expected)


async def test_a_load_that_cannot_fit_after_evicting_every_idle_model_is_refused_and_evicts_nothing(
    registry: RegistryServed, start_executor: StartExecutor, tmp_path: Path
) -> None:
    ex, _ = await two_loaded(registry, start_executor, tmp_path)
    used = await footprints(ex)
    held = HeldPool(ex)
    pending = asyncio.ensure_future(request(ex, "a", [5]))
    await in_flight(ex, "a")
    need = BUDGET_MB - used["a"] + used["b"] / 2  # more than evicting b would free
    path = sized_model(tmp_path / "big.onnx", need)
    mv = await registry.client.register("big", path)
    with pytest.raises(ResourceExhausted) as err:
        await ex.client.load("big", mv.version, mv.sha256)
    message = err.value.message
    for part in (f"{prior_mb(path, 1):.1f} MB", f"({BUDGET_MB:.1f} MB", "evicting every idle model would free only",
                 f"{used['b']:.1f} MB", "not evictable, work in flight: a v1", "MLOS_EXECUTOR_MEMORY_BUDGET_MB"):
        assert part in message, (part, message)
    status = await ex.client.status()
    assert sorted(m.model.name for m in status.models) == ["a", "b"] and status.evictions == 0
    held.release()
    await pending


async def test_bad_budgets_are_refused_naming_the_setting() -> None:
    from mlos_executor.budget import budget_bytes

    with pytest.raises(ValueError, match="MLOS_EXECUTOR_MEMORY_BUDGET_MB=-5 is negative"):
        budget_bytes(-5, 8 << 30)
    with pytest.raises(ValueError, match="MLOS_EXECUTOR_MEMORY_BUDGET_MB=9000 is more than this host's memory"):
        budget_bytes(9000, 8 << 30)
    assert ExecutorSettings(memory_budget_mb=0).memory_budget_mb == 0  # 0 stays "no budget"

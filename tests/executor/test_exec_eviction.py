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
import logging
import threading
from pathlib import Path

import numpy as np
import pytest
from exec_testkit import ExecutorServed, RegistryServed, StartExecutor, save, tensor
from gen_testkit import GenStream, file_fetcher
from memory_testkit import prior_mb, sized_model, table_model
from prometheus_client import CollectorRegistry

from mlos.common.v1 import tensor_pb2
from mlos_common.bootstrap import ServerParts
from mlos_common.errors import FailedPrecondition, ResourceExhausted
from mlos_executor.budget import MB
from mlos_executor.config import ExecutorSettings
from mlos_executor.eviction import Candidate, Evictor, choose_victims
from mlos_executor.llama_models import GenerationModel
from mlos_executor.server import registry_fetcher
from mlos_executor.telemetry import ExecutorMetrics

BUDGET_MB = 64
ROWS = 1024  # x 1024 FP32 = 4 MiB


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


def test_a_load_measured_over_its_prediction_trims_idle_models_or_says_it_cannot(caplog) -> None:
    unloaded: list[tuple[str, int]] = []
    held = [Candidate(("old", 1), 1, 0, 10 * MB), Candidate(("busy", 1), 0, 1, 30 * MB)]
    evictor = Evictor(lambda loading: [c for c in held if c.key not in unloaded and c.key != loading], unloaded.append)
    evictor.trim(("new", 1), 0)
    assert unloaded == []
    evictor.trim(("new", 1), 5 * MB)
    assert unloaded == [("old", 1)] and [(e.key, e.reason) for e in evictor.recent] == [(("old", 1), "over_budget")]
    with caplog.at_level(logging.WARNING, logger="mlos_executor.eviction"):
        evictor.trim(("new", 1), 5 * MB)
    assert "new v1 took more memory than predicted: the models are 5.0 MB over" in caplog.text
    assert "not evictable, work in flight: busy v1 30.0 MB (1 in flight)" in caplog.text and evictor.evictions == 1


async def test_the_least_recently_used_model_is_evicted_and_reloads_on_request(
    registry: RegistryServed, start_executor: StartExecutor, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mlos_executor.eviction")
    ex, metrics = await two_loaded(registry, start_executor, tmp_path)
    first = await request(ex, "a", [3])  # a was loaded first but used last: b is the LRU
    used = await footprints(ex)
    await loaded(registry, ex, "c", sized_model(tmp_path / "c.onnx", BUDGET_MB - used["a"] - used["b"] / 2))
    status = await ex.client.status()
    e, *trimmed = status.recent_evictions
    assert (e.model.name, e.for_model.name, e.reason) == ("b", "c", "memory_budget")
    assert e.memory_bytes == int(used["b"] * MB)
    # c may measure more than its prediction; then a (idle) goes too, to get back under the budget
    assert [(t.model.name, t.reason) for t in trimmed] in ([], [("a", "over_budget")])
    assert sorted(m.model.name for m in status.models) == (["c"] if trimmed else ["a", "c"])
    assert status.evictions == 1 + len(trimmed)
    if status.memory_used_bytes > status.memory_budget_bytes:  # c measured (RSS, under load) so far over its
        # prediction that evicting idle a could not get back under the budget: a is kept and the log says why
        assert not trimmed and "evicting every idle model would free only" in caplog.text
    assert status.memory_free_bytes == max(0, status.memory_budget_bytes - status.memory_used_bytes)
    registry_ = metrics.registry
    assert registry_.get_sample_value("mlos_executor_evictions_total", {"model": "b", "reason": "memory_budget"}) == 1
    assert registry_.get_sample_value("mlos_executor_model_memory_bytes", {"model": "b", "version": "1"}) is None
    assert registry_.get_sample_value("mlos_executor_model_memory_bytes", {"model": "a", "version": "1"}) == (
        None if trimmed else int(used["a"] * MB))  # a trimmed after c's load is gone from the metric too
    with pytest.raises(FailedPrecondition, match="not loaded"):  # what the scheduler reloads on
        await request(ex, "b", [0])
    if not trimmed:
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
    assert [e.model.name for e in status.recent_evictions] == ["b"]  # a stays even when c measured more
    held.release()
    np.testing.assert_array_equal(await pending, expected)


async def test_a_generation_model_with_an_open_generation_is_never_evicted(
    registry: RegistryServed, start_executor: StartExecutor, tmp_path: Path
) -> None:
    from mlos_cli.gguf_models import write_tiny_llama

    fetch = file_fetcher({"tiny": write_tiny_llama(tmp_path / "tiny.gguf", seed=0)},
                         registry_fetcher(ExecutorSettings(registry_addr=registry.addr), ServerParts()))
    ex = await start_executor(fetch=fetch, memory_budget_mb=BUDGET_MB, inline_run_us=0)
    config = tensor_pb2.ModelServingConfig(context_length=128, contexts=1, chunk_tokens=4, threads=1)
    await ex.client.load_model("tiny", 1, "", generation=config, task="generate")  # the least recently used
    await loaded(registry, ex, "a", save(table_model(ROWS, seed=0), tmp_path / "a.onnx"))
    used = await footprints(ex)
    model = ex.core.get("tiny", 1).model
    assert isinstance(model, GenerationModel)
    gate = threading.Event()
    model.scheduler._thread.submit(gate.wait)  # the generation waits for the model's thread: open, not done
    stream = GenStream(ex.addr)
    try:
        await stream.start(1, "tiny", prompt=b"the cat", max_tokens=8, temperature=0.0)
        await in_flight(ex, "tiny")
        await loaded(registry, ex, "c", sized_model(tmp_path / "c.onnx", BUDGET_MB - used["tiny"] - used["a"] / 2))
        status = await ex.client.status()
        assert sorted(m.model.name for m in status.models) == ["c", "tiny"]
        assert [e.model.name for e in status.recent_evictions] == ["a"]
        gate.set()
        results = await stream.finished(1)
        assert results[-1].chunk.final and results[-1].chunk.finish_reason == "length"
    finally:
        gate.set()
        await stream.close()


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

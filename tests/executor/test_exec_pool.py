"""The output buffer pool (MLOS_EXECUTOR_MEMORY_POOL) through a real executor server: outputs are
identical with it on and off (demo models and a batched toy), buffers are reused (hits in Status and
metrics), and a buffer still referenced is never handed to another run, concurrent or later."""

from __future__ import annotations

import asyncio

import numpy as np
from exec_testkit import RegistryServed, StartExecutor, decoded, save, tensor, wide_model
from prometheus_client import CollectorRegistry

from mlos_cli.status import executor_lines
from mlos_executor.telemetry import ExecutorMetrics


async def outputs_with(pool: bool, registry: RegistryServed, start_executor: StartExecutor, demo_models,
                       runs: int = 3) -> tuple[list[dict[str, np.ndarray]], object]:
    # No heavy-model second session: on a loaded host ocr_cls could earn one in one executor and not the
    # other, and a session with more threads may sum in another order (and learns its own layouts).
    ex = await start_executor(memory_pool=pool, warmup_runs=0, heavy_run_ms=1e9)
    answers = []
    for name in ("iris", "ocr_cls"):
        model = demo_models[name]
        mv = await registry.client.register(name, model.path)
        await ex.client.load_model(name, mv.version, mv.sha256, max_batch_size=8)
        for seed in range(runs):  # the first run of a shape learns its layout, the later ones reuse buffers
            feeds = model.sample_inputs(4, seed)
            reply = await ex.client.execute(name, mv.version, [tensor(k, v) for k, v in feeds.items()], [])
            answers.append(decoded(reply))
    return answers, await ex.client.status()


async def test_outputs_identical_pool_on_and_off(registry: RegistryServed, start_executor: StartExecutor,
                                                 demo_models) -> None:
    plain, status_off = await outputs_with(False, registry, start_executor, demo_models)
    pooled, status_on = await outputs_with(True, registry, start_executor, demo_models)
    assert len(plain) == len(pooled) == 6
    for a, b in zip(plain, pooled, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    assert not status_off.memory_pool.enabled
    pool = status_on.memory_pool
    assert pool.enabled and pool.hits >= 3 and pool.allocations == pool.misses > 0  # a hit per output of run 3
    assert 0 < pool.held_bytes <= pool.allocated_bytes
    # `mlos status` shows it (and nothing when it is off)
    assert f"memory pool: {pool.hits} hits, {pool.misses} misses" in "\n".join(executor_lines("x", status_on))
    assert "memory pool" not in "\n".join(executor_lines("x", status_off))


async def test_live_buffers_never_shared(registry: RegistryServed, start_executor: StartExecutor, tmp_path) -> None:
    """Many concurrent requests with distinct inputs each get their own answer; and an output kept by
    its caller (in process) is not overwritten by later runs of the same shape."""
    ex = await start_executor(memory_pool=True, warmup_runs=0, execution_slots=2, inline_run_us=0)
    mv = await registry.client.register("wide", save(wide_model(4096), tmp_path / "wide.onnx"))
    await ex.client.load_model("wide", mv.version, mv.sha256, max_batch_size=8)
    xs = [np.full((4, 4096), i, dtype=np.float32) for i in range(24)]
    replies = await asyncio.gather(*(ex.client.execute("wide", mv.version, [tensor("X", x)], []) for x in xs))
    for x, reply in zip(xs, replies, strict=True):
        np.testing.assert_array_equal(decoded(reply)["Y"], x + 1)

    kept = [await ex.core.execute("wide", mv.version, {"X": x}, []) for x in xs[:3]]
    for x, (outputs, _) in zip(xs[:3], kept, strict=True):
        np.testing.assert_array_equal(outputs[0][1], x + 1)  # not overwritten by the runs after it
    held = {id(outputs[0][1]) for outputs, _ in kept}
    assert len(held) == 3
    del kept
    before = ex.core.pool.hits
    await ex.core.execute("wide", mv.version, {"X": xs[0]}, [])
    assert ex.core.pool.hits == before + 1  # released buffers are reused


async def test_pool_metrics(registry: RegistryServed, start_executor: StartExecutor, tmp_path) -> None:
    ex = await start_executor(memory_pool=True, warmup_runs=0)
    prom = CollectorRegistry()
    ExecutorMetrics(prom).watch_pool(ex.core)
    mv = await registry.client.register("wide", save(wide_model(16), tmp_path / "wide.onnx"))
    await ex.client.load_model("wide", mv.version, mv.sha256, max_batch_size=8)
    for _ in range(3):
        await ex.client.execute("wide", mv.version, [tensor("X", np.ones((2, 16), np.float32))], [])
    assert prom.get_sample_value("mlos_executor_pool_hits_total") == 1  # run 1 learns, 2 allocates, 3 reuses
    assert prom.get_sample_value("mlos_executor_pool_allocations_total") == 1
    assert prom.get_sample_value("mlos_executor_pool_held_bytes") == 2 * 16 * 4

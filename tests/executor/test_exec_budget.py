"""The memory budget through a real executor server: loads refused RESOURCE_EXHAUSTED or accepted
on the predicted footprint, measured footprints in Status, MemorySamples per warm-up batch size."""

from __future__ import annotations

import pytest
from exec_testkit import RegistryServed, StartExecutor, save, weights_model, wide_model
from memory_testkit import prior_mb
from predictor_testkit import free_port

from mlos_common.errors import FailedPrecondition, ResourceExhausted
from mlos_executor.budget import MB
from mlos_executor.memory import memory_facts
from mlos_executor.memory_guard import MemoryMeasurement


async def test_tight_budget_refuses_a_load_that_a_large_one_accepts(
    registry: RegistryServed, start_executor: StartExecutor, model_files
) -> None:
    mv = await registry.client.register("plus", model_files.plus_one)
    predicted = prior_mb(model_files.plus_one, 1)  # ~8 MB: the prior's fixed cost
    tight = await start_executor(memory_budget_mb=1)
    with pytest.raises(ResourceExhausted) as err:
        await tight.client.load("plus", mv.version, mv.sha256)
    message = err.value.message
    for part in ("'plus' v1", f"{predicted:.1f} MB", "documented prior, computed locally (no predictor configured)",
                 "1.0 MB", "0.0 MB used", "MLOS_EXECUTOR_MEMORY_BUDGET_MB"):
        assert part in message, (part, message)
    status = await tight.client.status()
    assert status.models == [] and status.memory_used_bytes == 0 and status.memory_budget_bytes == 1 * MB

    large = await start_executor(memory_budget_mb=1024)
    await large.client.load("plus", mv.version, mv.sha256)
    status = await large.client.status()
    [model] = status.models
    assert status.memory_budget_bytes == 1024 * MB and status.rss_bytes > 0
    assert model.memory_predicted_bytes == int(predicted * MB)
    assert "no predictor configured" in model.memory_predicted_by
    assert status.memory_used_bytes == model.memory_bytes  # the measurement replaced the prediction
    assert large.core.memory.budget.held[("plus", mv.version)].measured


async def test_the_same_model_fits_at_a_small_batch_and_not_at_a_large_one(
    registry: RegistryServed, start_executor: StartExecutor, tmp_path
) -> None:
    path = save(wide_model(256 * 1024), tmp_path / "wide.onnx")  # 1 MiB in and 1 MiB out per item
    mv = await registry.client.register("wide", path)
    small, large = prior_mb(path, 1), prior_mb(path, 64)
    assert small < 100 < large  # 16 MB vs 520 MB predicted
    ex = await start_executor(memory_budget_mb=100)
    with pytest.raises(ResourceExhausted, match=f"{large:.1f} MB"):
        await ex.client.load_model("wide", mv.version, mv.sha256, max_batch_size=64)
    reply = await ex.client.load_model("wide", mv.version, mv.sha256, max_batch_size=1)
    assert reply.model.memory_predicted_bytes == int(small * MB)


async def test_a_budget_between_two_models_predictions(
    registry: RegistryServed, start_executor: StartExecutor, model_files, tmp_path
) -> None:
    heavy_path = save(weights_model(2048), tmp_path / "heavy.onnx")  # 16 MiB of weights
    heavy = await registry.client.register("heavy", heavy_path)
    plus = await registry.client.register("plus", model_files.plus_one)
    assert prior_mb(model_files.plus_one, 1) < 20 < prior_mb(heavy_path, 1)
    ex = await start_executor(memory_budget_mb=20)
    with pytest.raises(ResourceExhausted, match="'heavy' v1"):
        await ex.client.load("heavy", heavy.version, heavy.sha256)
    await ex.client.load("plus", plus.version, plus.sha256)
    assert [m.model.name for m in (await ex.client.status()).models] == ["plus"]


async def test_failed_loads_and_unloads_give_the_memory_back(
    registry: RegistryServed, start_executor: StartExecutor, model_files
) -> None:
    ex = await start_executor(memory_budget_mb=512)
    bad = await registry.client.register("bad", model_files.unrunnable)
    with pytest.raises(FailedPrecondition):
        await ex.client.load("bad", bad.version, bad.sha256)
    budget = ex.core.memory.budget
    assert budget.used_bytes == 0 and not budget.pending
    mv = await registry.client.register("plus", model_files.plus_one)
    await ex.client.load("plus", mv.version, mv.sha256)
    assert (await ex.client.status()).memory_used_bytes == budget.used_bytes
    assert await ex.client.unload("plus", mv.version)
    assert budget.used_bytes == 0 and (await ex.client.status()).memory_used_bytes == 0


async def test_without_a_reachable_predictor_the_local_prior_answers_and_says_why(
    registry: RegistryServed, start_executor: StartExecutor, model_files
) -> None:
    mv = await registry.client.register("plus", model_files.plus_one)
    ex = await start_executor(memory_budget_mb=1, predictor_addr=f"127.0.0.1:{free_port()}")  # nothing listens
    with pytest.raises(ResourceExhausted) as err:
        await ex.client.load("plus", mv.version, mv.sha256)
    assert "documented prior, computed locally (the predictor" in err.value.message, err.value.message


async def test_a_memory_sample_per_warmup_batch_size(
    registry: RegistryServed, start_executor: StartExecutor, model_files
) -> None:
    samples: list[MemoryMeasurement] = []
    ex = await start_executor(on_memory_sample=samples.append)
    mv = await registry.client.register("plus", model_files.plus_one)
    await ex.client.load_model("plus", mv.version, mv.sha256, max_batch_size=8)
    facts = memory_facts(model_files.plus_one)
    assert [(s.model_name, s.model_version, s.batch_size, s.facts) for s in samples] == [
        ("plus", mv.version, 1, facts), ("plus", mv.version, 8, facts)
    ]
    off = await start_executor(on_memory_sample=samples.append, warmup_runs=0)
    await off.client.load_model("plus", mv.version, mv.sha256, max_batch_size=8)
    assert len(samples) == 2  # no warm-up: no run at a batch size to attribute the memory to
    assert off.core.get("plus", mv.version).memory is not None  # the load's footprint is still measured

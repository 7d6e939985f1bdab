"""Warm-up at load through a real executor server: timings in LoadModelResponse.warmup, none when
off or impossible, never counted as executions; telemetry reports the rows of a batch."""

from __future__ import annotations

import logging

import numpy as np
from exec_testkit import RegistryServed, StartExecutor, save, string_identity_model, tensor

from mlos_executor.core import ExecutionSample


async def test_demo_model_warmup_timed_at_batch_1_and_max(registry: RegistryServed, start_executor: StartExecutor,
                                                           demo_models) -> None:
    samples: list[ExecutionSample] = []
    ex = await start_executor(sink=samples.append)
    mv = await registry.client.register("ocr_cls", demo_models["ocr_cls"].path)
    reply = await ex.client.load_model("ocr_cls", mv.version, mv.sha256, max_batch_size=4)
    assert [(w.batch_size, w.runs) for w in reply.warmup] == [(1, 3), (4, 3)]
    for w in reply.warmup:
        assert 0 < w.mean_ms <= w.max_ms < 10_000
    assert samples == [] and reply.model.executions == 0  # warm-up runs are not executions
    again = await ex.client.load_model("ocr_cls", mv.version, mv.sha256, max_batch_size=4)
    assert list(again.warmup) == list(reply.warmup)  # already loaded: the load's timings, no new runs

    x = np.zeros((2, 3, 48, 192), dtype=np.float32)
    await ex.client.execute("ocr_cls", mv.version, [tensor("x", x)], [])
    assert [(s.batch_size, s.ok) for s in samples] == [(2, True)]


async def test_a_warmup_plan_runs_its_batch_sizes(registry: RegistryServed, start_executor: StartExecutor,
                                                  demo_models) -> None:
    """The registry's warm-up plan (serving config warmup_batch_sizes) replaces batch 1 and max; a
    load-time max_batch_size below a planned size leaves that size out."""
    from mlos.common.v1 import tensor_pb2

    ex = await start_executor()
    mv = await registry.client.register("ocr_cls", demo_models["ocr_cls"].path)
    plan = tensor_pb2.ModelServingConfig(warmup_batch_sizes=[2, 6, 3])
    reply = await ex.client.load_model("ocr_cls", mv.version, mv.sha256, max_batch_size=4, generation=plan)
    assert [(w.batch_size, w.runs) for w in reply.warmup] == [(2, 3), (3, 3)]


async def test_warmup_off(registry: RegistryServed, start_executor: StartExecutor, model_files) -> None:
    ex = await start_executor(warmup_runs=0)
    mv = await registry.client.register("plus", model_files.plus_one)
    reply = await ex.client.load_model("plus", mv.version, mv.sha256, max_batch_size=8)
    assert list(reply.warmup) == []


async def test_time_cap_stops_after_one_timed_run(registry: RegistryServed, start_executor: StartExecutor,
                                                  model_files) -> None:
    ex = await start_executor(warmup_runs=50, warmup_max_s=1e-9)
    mv = await registry.client.register("plus", model_files.plus_one)
    reply = await ex.client.load_model("plus", mv.version, mv.sha256, max_batch_size=8)
    assert [(w.batch_size, w.runs) for w in reply.warmup] == [(1, 1)]


async def test_no_config_batch_1_only_and_unbatched_rows(registry: RegistryServed, start_executor: StartExecutor,
                                                         model_files) -> None:
    samples: list[ExecutionSample] = []
    ex = await start_executor(sink=samples.append)
    mv = await registry.client.register("plus", model_files.plus_one)
    reply = await ex.client.load_model("plus", mv.version, mv.sha256)  # no config: the signature decides
    assert [w.batch_size for w in reply.warmup] == [1]
    x = np.ones((5, 3), dtype=np.float32)
    await ex.client.execute("plus", mv.version, [tensor("X", x)], [])
    # loaded again with max_batch_size 0: no batch dimension, so one request = one row
    await ex.client.load_model("plus", mv.version, mv.sha256, max_batch_size=0)
    await ex.client.execute("plus", mv.version, [tensor("X", x)], [])
    assert [s.batch_size for s in samples] == [5, 1]


async def test_bytes_inputs_skip_warmup_and_say_so(registry: RegistryServed, start_executor: StartExecutor,
                                                     tmp_path, caplog) -> None:
    ex = await start_executor()
    mv = await registry.client.register("strs", save(string_identity_model(), tmp_path / "strs.onnx"))
    with caplog.at_level(logging.INFO, logger="mlos_executor.core"):
        reply = await ex.client.load_model("strs", mv.version, mv.sha256, max_batch_size=8)
    assert list(reply.warmup) == []
    assert f"warm-up of strs v{mv.version} skipped: input 'X' is BYTES, which cannot be synthesised" in caplog.text


async def test_model_failing_on_zeros_skips_warmup_and_loads(registry: RegistryServed, start_executor: StartExecutor,
                                                             demo_models, caplog) -> None:
    ex = await start_executor()
    mv = await registry.client.register("silero_vad", demo_models["silero_vad"].path)
    with caplog.at_level(logging.INFO, logger="mlos_executor.core"):
        reply = await ex.client.load_model("silero_vad", mv.version, mv.sha256, max_batch_size=0)
    assert list(reply.warmup) == [] and reply.model.sha256 == mv.sha256
    assert "skipped: a run at batch 1 on zeros failed: onnxruntime INVALID_ARGUMENT" in caplog.text

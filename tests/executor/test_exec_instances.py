"""Instances, threads and batch splitting through a real executor server: a model's serving config
`instance_count` and `threads` shape its sessions (reported in Status), out-of-range values are
INVALID_ARGUMENT naming the field (at start-up for the executor's own setting), and a batch larger
than the model's max batch size reaches ONNX Runtime only in pieces of that size."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from exec_testkit import RegistryServed, StartExecutor, decoded, tensor
from pydantic import ValidationError

from mlos.common.v1 import tensor_pb2
from mlos_common.errors import InvalidArgument
from mlos_executor.config import ExecutorSettings
from mlos_executor.threads import MAX_INSTANCES, usable_cpus


def serving(**fields) -> tensor_pb2.ModelServingConfig:
    return tensor_pb2.ModelServingConfig(**fields)


async def test_instances_and_threads_from_serving_config(registry: RegistryServed, start_executor: StartExecutor,
                                                         model_files) -> None:
    ex = await start_executor(warmup_runs=0, inline_run_us=0)
    mv = await registry.client.register("plus", model_files.plus_one)
    reply = await ex.client.load_model("plus", mv.version, mv.sha256, max_batch_size=8,
                                       generation=serving(instance_count=3, threads=1))
    assert (reply.model.instances, reply.model.intra_op_threads) == (3, 1)
    assert len(ex.core.get("plus", mv.version).model.sessions) == 3
    xs = [np.full((2, 3), i, np.float32) for i in range(12)]
    replies = await asyncio.gather(*(ex.client.execute("plus", mv.version, [tensor("X", x)], []) for x in xs))
    for x, r in zip(xs, replies, strict=True):
        np.testing.assert_array_equal(decoded(r)["Y"], x + 1)
    status = await ex.client.status()
    assert [(m.instances, m.executions) for m in status.models] == [(3, 12)]


@pytest.mark.parametrize(("fields", "words"), [
    ({"threads": 4096}, "serving config threads 4096 must be between 1 and the executor's usable CPUs"),
    ({"instance_count": MAX_INSTANCES + 1}, f"serving config instance_count {MAX_INSTANCES + 1} must be between 1"),
])
async def test_out_of_range_instances_or_threads_refused(registry: RegistryServed, start_executor: StartExecutor,
                                                         model_files, fields: dict, words: str) -> None:
    ex = await start_executor(warmup_runs=0)
    mv = await registry.client.register("plus", model_files.plus_one)
    with pytest.raises(InvalidArgument) as err:
        await ex.client.load_model("plus", mv.version, mv.sha256, max_batch_size=8, generation=serving(**fields))
    assert words in err.value.message
    assert list((await ex.client.status()).models) == []  # nothing loaded, still serving


@pytest.mark.parametrize("threads", [-1, usable_cpus() + 1])
def test_executor_threads_beyond_the_host_refused_at_start_up(threads: int) -> None:
    with pytest.raises(ValidationError, match="intra_op_threads .* must be between 0 .* usable CPUs"):
        ExecutorSettings(intra_op_threads=threads)


async def test_batch_larger_than_max_runs_in_pieces(registry: RegistryServed, start_executor: StartExecutor,
                                                   model_files) -> None:
    # The pool records the shape of every output ONNX Runtime produced: it shows the pieces.
    ex = await start_executor(warmup_runs=0, memory_pool=True)
    mv = await registry.client.register("plus", model_files.plus_one)
    await ex.client.load_model("plus", mv.version, mv.sha256, max_batch_size=2)
    x = np.arange(15, dtype=np.float32).reshape(5, 3)
    for _ in range(2):  # the second time, pieces go into pooled buffers
        reply = await ex.client.execute("plus", mv.version, [tensor("X", x)], [])
        np.testing.assert_array_equal(decoded(reply)["Y"], x + 1)
    runner = ex.core.get("plus", mv.version).model.runner
    assert runner is not None
    rows_run = {shape[0] for (_, shape, _), *_ in runner.layouts}
    assert rows_run == {2, 1}

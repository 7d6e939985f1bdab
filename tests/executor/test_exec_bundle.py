"""An ONNX model with external data, registered as a folder, served by a real executor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from bundle_testkit import external_data_model, ort_outputs
from exec_testkit import ExecutorServed, RegistryServed, StartExecutor, tensor

from mlos_common.bundle import MANIFEST
from mlos_common.tensors import array_from_raw


async def test_external_data_model_is_unpacked_and_matches_onnxruntime(
    registry: RegistryServed, executor: ExecutorServed, tmp_path: Path
) -> None:
    model_file = external_data_model(tmp_path / "affine", side=32)
    mv = await registry.client.register("affine", model_file.parent)
    loaded = await executor.client.load("affine", mv.version, mv.sha256)
    assert loaded.sha256 == mv.sha256
    unpacked = executor.cache_dir / f"{mv.sha256}.d"
    assert sorted(p.name for p in unpacked.iterdir()) == [MANIFEST, "model.onnx", "weights.bin"]

    x = np.random.default_rng(2).standard_normal((4, 32)).astype(np.float32)
    reply = await executor.client.execute("affine", mv.version, [tensor("X", x)], [])
    [out] = reply.outputs
    served = array_from_raw(out.name, out.datatype, out.shape, out.raw)
    np.testing.assert_array_equal(served, ort_outputs(model_file, x))


async def test_a_restarted_executor_reuses_the_unpacked_bundle(
    registry: RegistryServed, start_executor: StartExecutor, tmp_path: Path
) -> None:
    model_file = external_data_model(tmp_path / "affine")
    mv = await registry.client.register("affine", model_file.parent)
    cache = tmp_path / "shared-cache"
    first = await start_executor(cache_dir=cache)
    await first.client.load("affine", mv.version, mv.sha256)
    second = await start_executor(cache_dir=cache)
    await second.client.load("affine", mv.version, mv.sha256)
    assert first.fetches == [("affine", mv.version)] and second.fetches == []  # verified cache hit
    x = np.ones((1, 16), np.float32)
    reply = await second.client.execute("affine", mv.version, [tensor("X", x)], [])
    out = reply.outputs[0]
    np.testing.assert_array_equal(array_from_raw(out.name, out.datatype, out.shape, out.raw), ort_outputs(model_file, x))

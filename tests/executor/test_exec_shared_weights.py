"""Shared weights through a real executor server: three models built on one 64 MB base (same W,
different heads) answer exactly as their own files say, and with MLOS_EXECUTOR_SHARED_WEIGHTS on
the later loads take a small fraction of the memory they take with it off (the executor's own RSS,
from Status, before and after each load: the loaded model's memory_bytes is floored at its file
size for the budget, so it cannot show sharing); Status and metrics report the bytes held once
and saved."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import onnx
import pytest
from exec_testkit import RegistryServed, StartExecutor, decoded, save, shared_base_model, tensor
from onnx import numpy_helper

from mlos.common.v1 import tensor_pb2
from mlos_cli.status import executor_lines

SIDE = 4096  # W is 4096 x 4096 FP32 = 64 MB
BASE_BYTES = SIDE * SIDE * 4


@pytest.fixture(scope="module")
def based_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("based")
    return [save(shared_base_model(SIDE, seed), d / f"based{seed}.onnx") for seed in (1, 2, 3)]


X = np.random.default_rng(7).standard_normal((2, SIDE)).astype(np.float32)


@pytest.fixture(scope="module")
def expected(based_files: list[Path]) -> list[np.ndarray]:
    """Each file's answer to X, computed before any measurement (its 64 MB are freed again)."""
    answers = []
    for path in based_files:
        w, b = (numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer)
        answers.append(X @ w + b)
    return answers


def _trim() -> None:
    """Hands freed heap back to the OS (glibc), so RSS reads what is live."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)


async def load_three(registry: RegistryServed, start_executor: StartExecutor, files: list[Path],
                     expected: list[np.ndarray], shared: bool):
    ex = await start_executor(shared_weights=shared, warmup_runs=0, memory_budget_mb=0)
    # Registered first: the in-process registry's reading of the 64 MB files is over (and its
    # freed heap handed back with malloc_trim) before any RSS is read, so one load's growth is not
    # blurred by memory the registry gives back meanwhile (seen once: -76 MB).
    versions = [await registry.client.register(f"based{i}", path) for i, path in enumerate(files)]
    grown = []
    for i, mv in enumerate(versions):
        _trim()
        before = (await ex.client.status()).rss_bytes
        await ex.client.load_model(f"based{i}", mv.version, mv.sha256, max_batch_size=4)
        _trim()
        grown.append((await ex.client.status()).rss_bytes - before)
    for i, want in enumerate(expected):
        out = await ex.client.execute(f"based{i}", 1, [tensor("X", X)], [])
        np.testing.assert_allclose(decoded(out)["Y"], want, rtol=1e-3, atol=1e-2)
    return ex, grown


async def test_shared_base_held_once(registry: RegistryServed, start_executor: StartExecutor, based_files,
                                     expected) -> None:
    off, grown_off = await load_three(registry, start_executor, based_files, expected, shared=False)
    status_off = await off.client.status()
    assert not status_off.shared_weights.enabled
    on, grown_on = await load_three(registry, start_executor, based_files, expected, shared=True)
    # Each load without sharing holds its own 64 MB; with it, the 2nd and 3rd add little.
    assert min(grown_off[1:]) > 0.8 * BASE_BYTES, grown_off
    assert sum(grown_on[1:]) < 0.3 * sum(grown_off[1:]), (grown_on, grown_off)
    assert sum(grown_on) < 0.6 * sum(grown_off), (grown_on, grown_off)
    status = await on.client.status()
    stats = status.shared_weights
    assert stats.enabled and stats.initializers == 1 and stats.reused == 2
    assert stats.held_bytes == BASE_BYTES and stats.saved_bytes == 2 * BASE_BYTES
    assert [m.shared_weight_bytes for m in status.models] == [BASE_BYTES] * 3
    assert "shared weights: 1 initializer(s), 64.0 MB held once, 128.0 MB saved" in "\n".join(executor_lines("x", status))


async def test_unloaded_models_release_their_share(registry: RegistryServed, start_executor: StartExecutor,
                                                   based_files) -> None:
    ex = await start_executor(shared_weights=True, shared_weights_min_bytes=1024, warmup_runs=0)
    for i, path in enumerate(based_files[:2]):
        mv = await registry.client.register(f"based{i}", path)
        await ex.client.load_model(f"based{i}", mv.version, mv.sha256, max_batch_size=4)
    assert (await ex.client.status()).shared_weights.saved_bytes == BASE_BYTES
    await ex.client.unload("based0", 1)
    stats = (await ex.client.status()).shared_weights
    assert stats.saved_bytes == 0 and stats.held_bytes == BASE_BYTES + SIDE * 4  # W once, one head


async def test_instances_share_their_weights(registry: RegistryServed, start_executor: StartExecutor,
                                             tmp_path: Path) -> None:
    side = 256
    ex = await start_executor(shared_weights=True, shared_weights_min_bytes=1024, warmup_runs=0)
    mv = await registry.client.register("small", save(shared_base_model(side, 1), tmp_path / "small.onnx"))
    reply = await ex.client.load_model("small", mv.version, mv.sha256, max_batch_size=4,
                                       generation=tensor_pb2.ModelServingConfig(instance_count=3))
    assert reply.model.instances == 3
    stats = (await ex.client.status()).shared_weights
    assert stats.held_bytes == side * side * 4 + side * 4  # W and B, once for three sessions
    assert stats.saved_bytes == 2 * stats.held_bytes

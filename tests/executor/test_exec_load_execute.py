"""Loading through the real registry, executing batches, errors, unload, concurrency."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from exec_testkit import ExecutorServed, RegistryServed, StartExecutor, decoded, tensor

from mlos_common.errors import FailedPrecondition, InvalidArgument, NotFound
from mlos_executor.runtime_mode import detect_runtime_mode

EXPECTED_MODE = detect_runtime_mode().mode  # "userspace" unless /sys/module/mlos_ml exists


def ort_run(path: Path, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(outputs, feeds)


async def still_serving(ex: ExecutorServed, name: str, version: int) -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    reply = await ex.client.execute(name, version, [tensor("X", x)], [])
    np.testing.assert_array_equal(decoded(reply)["Y"], x + 1)


# ---- load via the registry ----


async def test_load_status_execute_matches_onnxruntime(registry: RegistryServed, executor: ExecutorServed, model_files):
    mv = await registry.client.register("plus", model_files.plus_one)
    loaded = await executor.client.load("plus", mv.version, mv.sha256)
    assert loaded.sha256 == mv.sha256
    assert list(loaded.providers) == ["CPUExecutionProvider"]

    status = await executor.client.status()
    assert status.runtime_mode == EXPECTED_MODE
    if not Path("/sys/module/mlos_ml").exists():
        assert status.runtime_mode == "userspace"
    [m] = status.models
    assert (m.model.name, m.model.version, m.sha256) == ("plus", mv.version, mv.sha256)
    assert list(m.providers) == ["CPUExecutionProvider"]
    assert [(s.name, s.datatype, list(s.shape)) for s in m.inputs] == [("X", "FP32", [-1, 3])]
    assert (executor.cache_dir / f"{mv.sha256}.onnx").is_file()

    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    reply = await executor.client.execute("plus", mv.version, [tensor("X", x)], [])
    out = decoded(reply)
    [expected] = ort_run(model_files.plus_one, {"X": x})
    np.testing.assert_array_equal(out["Y"], expected)
    np.testing.assert_allclose(out["Y"], x + 1, rtol=1e-6)
    assert reply.compute_ns > 0
    status = await executor.client.status()
    assert status.models[0].executions == 1
    assert status.in_flight == 0


async def test_iris_demo_model_matches_onnxruntime(registry, executor, demo_models):
    iris = demo_models.get("iris")
    if iris is None:
        pytest.skip("iris demo model unavailable (scikit-learn/skl2onnx missing)")
    mv = await registry.client.register("iris", iris.path)
    await executor.client.load("iris", mv.version, mv.sha256)
    feeds = iris.sample_inputs(batch=16)
    reply = await executor.client.execute("iris", mv.version, [tensor(k, v) for k, v in feeds.items()], [])
    out = decoded(reply)
    session = ort.InferenceSession(str(iris.path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    for name, expected in zip(names, session.run(None, feeds)):
        np.testing.assert_array_equal(out[name], expected)
    assert out[names[0]].shape[0] == 16


async def test_output_names_subset(registry, executor, model_files):
    mv = await registry.client.register("two", model_files.two_outputs)
    await executor.client.load("two", mv.version, mv.sha256)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    reply = await executor.client.execute("two", mv.version, [tensor("X", x)], ["NEG"])
    assert [t.name for t in reply.outputs] == ["NEG"]
    np.testing.assert_array_equal(decoded(reply)["NEG"], -x)
    reply = await executor.client.execute("two", mv.version, [tensor("X", x)], ["NEG", "SUM"])
    assert [t.name for t in reply.outputs] == ["NEG", "SUM"]
    np.testing.assert_array_equal(decoded(reply)["SUM"], x + x)
    reply = await executor.client.execute("two", mv.version, [tensor("X", x)], [])
    assert sorted(t.name for t in reply.outputs) == ["NEG", "SUM"]


async def test_int64_model(registry, executor, model_files):
    mv = await registry.client.register("int", model_files.int64_double)
    await executor.client.load("int", mv.version, mv.sha256)
    a = np.array([[1, -2], [3, 1 << 40]], dtype=np.int64)
    reply = await executor.client.execute("int", mv.version, [tensor("A", a)], [])
    [out] = reply.outputs
    assert out.datatype == "INT64"
    np.testing.assert_array_equal(decoded(reply)["B"], a * 2)


async def test_load_twice_is_idempotent(registry, executor, model_files):
    mv = await registry.client.register("plus", model_files.plus_one)
    first = await executor.client.load("plus", mv.version, mv.sha256)
    core_model = executor.core.models[("plus", mv.version)]
    second = await executor.client.load("plus", mv.version, mv.sha256)
    again_no_sha = await executor.client.load("plus", mv.version, "")
    assert executor.core.models[("plus", mv.version)] is core_model
    assert executor.fetches == [("plus", mv.version)]
    assert first.sha256 == second.sha256 == again_no_sha.sha256 == mv.sha256
    assert len((await executor.client.status()).models) == 1


async def test_concurrent_loads_fetch_once(registry, executor, model_files):
    mv = await registry.client.register("plus", model_files.plus_one)
    replies = await asyncio.gather(*(executor.client.load("plus", mv.version, mv.sha256) for _ in range(4)))
    assert {r.sha256 for r in replies} == {mv.sha256}
    assert executor.fetches == [("plus", mv.version)]


# ---- digests and the cache ----


async def test_wrong_sha256_fails_and_leaves_nothing(registry, executor, model_files):
    mv = await registry.client.register("plus", model_files.plus_one)
    wrong = "0" * 64
    with pytest.raises(FailedPrecondition, match="digest"):
        await executor.client.load("plus", mv.version, wrong)
    leftovers = [p.name for p in executor.cache_dir.iterdir()]
    assert leftovers == [], leftovers
    assert (await executor.client.status()).models == []
    # the right digest still works afterwards
    await executor.client.load("plus", mv.version, mv.sha256)
    await still_serving(executor, "plus", mv.version)


async def test_corrupt_cache_file_is_refetched(registry, executor, model_files, caplog):
    mv = await registry.client.register("plus", model_files.plus_one)
    await executor.client.load("plus", mv.version, mv.sha256)
    assert await executor.client.unload("plus", mv.version) is True
    cached = executor.cache_dir / f"{mv.sha256}.onnx"
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cached.write_bytes(bytes(data))

    with caplog.at_level(logging.WARNING, logger="mlos_executor.core"):
        loaded = await executor.client.load("plus", mv.version, mv.sha256)
    assert loaded.sha256 == mv.sha256
    assert executor.fetches == [("plus", mv.version)] * 2
    assert any("corrupt" in r.getMessage() for r in caplog.records)
    assert cached.read_bytes() == model_files.plus_one.read_bytes()
    await still_serving(executor, "plus", mv.version)


async def test_intact_cache_file_is_not_refetched(registry, executor, model_files):
    mv = await registry.client.register("plus", model_files.plus_one)
    await executor.client.load("plus", mv.version, mv.sha256)
    await executor.client.unload("plus", mv.version)
    await executor.client.load("plus", mv.version, mv.sha256)
    assert executor.fetches == [("plus", mv.version)]
    await still_serving(executor, "plus", mv.version)


# ---- errors ----


async def test_unknown_model_is_not_found(executor):
    with pytest.raises(NotFound):
        await executor.client.load("nope", 1, "")
    assert [p for p in executor.cache_dir.iterdir()] == []
    assert (await executor.client.status()).models == []


async def test_execute_not_loaded_names_model(registry, executor, model_files):
    x = np.zeros((1, 3), dtype=np.float32)
    with pytest.raises(FailedPrecondition, match="'ghost'"):
        await executor.client.execute("ghost", 3, [tensor("X", x)], [])


async def test_invalid_requests_are_invalid_argument(registry, executor, model_files):
    from mlos.common.v1 import tensor_pb2

    mv = await registry.client.register("plus", model_files.plus_one)
    v = mv.version
    await executor.client.load("plus", v, mv.sha256)

    bad_requests = {
        "dtype": ([tensor("X", np.zeros((2, 3), dtype=np.float64))], [], "FP32"),
        "int dtype": ([tensor("X", np.zeros((2, 3), dtype=np.int64))], [], "FP32"),
        "shape": ([tensor("X", np.zeros((2, 4), dtype=np.float32))], [], "shape"),
        "rank": ([tensor("X", np.zeros((6,), dtype=np.float32))], [], "shape"),
        "raw size": ([tensor_pb2.Tensor(name="X", datatype="FP32", shape=[2, 3], raw=b"\0" * 20)], [], ""),
        "unknown input": ([tensor("Z", np.zeros((2, 3), dtype=np.float32))], [], "'Z'"),
        "missing input": ([], [], "X"),
        "unknown output": ([tensor("X", np.zeros((2, 3), dtype=np.float32))], ["NOPE"], "NOPE"),
    }
    for what, (inputs, outputs, needle) in bad_requests.items():
        with pytest.raises(InvalidArgument) as err:
            await executor.client.execute("plus", v, inputs, outputs)
        assert needle in str(err.value), (what, str(err.value))
        await still_serving(executor, "plus", v)
    status = await executor.client.status()
    assert status.in_flight == 0


async def test_model_onnxruntime_cannot_run(registry, executor, model_files):
    mv = await registry.client.register("broken", model_files.unrunnable)
    with pytest.raises(FailedPrecondition, match="onnxruntime could not load") as err:
        await executor.client.load("broken", mv.version, mv.sha256)
    assert "Type Error" in str(err.value) and "Add" in str(err.value), str(err.value)
    assert (await executor.client.status()).models == []
    # the executor is fine
    good = await registry.client.register("plus", model_files.plus_one)
    await executor.client.load("plus", good.version, good.sha256)
    await still_serving(executor, "plus", good.version)


async def test_random_bytes_artifact_fails_cleanly(start_executor: StartExecutor, tmp_path):
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(np.random.default_rng(1).bytes(4096))

    async def fetch(name: str, version: int, dest: Path):
        import hashlib

        target = dest / ".incoming-garbage"
        target.write_bytes(garbage.read_bytes())
        return target, hashlib.sha256(target.read_bytes()).hexdigest()

    ex = await start_executor(fetch=fetch)
    with pytest.raises(FailedPrecondition, match="onnxruntime"):
        await ex.client.load("garbage", 1, "")
    status = await ex.client.status()
    assert status.models == []
    assert status.executor_id == ex.settings.executor_id


# ---- unload ----


async def test_unload_then_execute_fails(registry, executor, model_files):
    mv = await registry.client.register("plus", model_files.plus_one)
    await executor.client.load("plus", mv.version, mv.sha256)
    await still_serving(executor, "plus", mv.version)
    assert await executor.client.unload("plus", mv.version) is True
    assert await executor.client.unload("plus", mv.version) is False
    with pytest.raises(FailedPrecondition, match="not loaded"):
        await executor.client.execute("plus", mv.version, [tensor("X", np.zeros((1, 3), np.float32))], [])
    assert (await executor.client.status()).models == []


async def test_unload_lets_batch_in_flight_finish(registry, executor, demo_models):
    ocr = demo_models.get("ocr_cls")
    if ocr is None:
        pytest.skip("ocr_cls demo model unavailable (rapidocr-onnxruntime missing)")
    mv = await registry.client.register("ocr", ocr.path)
    await executor.client.load("ocr", mv.version, mv.sha256)
    feeds = ocr.sample_inputs(batch=32)
    inputs = [tensor(k, v) for k, v in feeds.items()]
    call = asyncio.create_task(executor.client.execute("ocr", mv.version, inputs, []))
    # wait (bounded) until the batch is really running inside the core, then unload
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while executor.core.in_flight == 0 and not call.done():
        assert loop.time() < deadline, "the batch never started"
        await asyncio.sleep(0.001)
    started_in_flight = not call.done()
    assert await executor.client.unload("ocr", mv.version) is True
    reply = await call
    out = decoded(reply)
    session = ort.InferenceSession(str(ocr.path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    for name, expected in zip(names, session.run(None, feeds)):
        np.testing.assert_allclose(out[name], expected, rtol=1e-5, atol=1e-6)
    assert started_in_flight, "batch finished before unload; the test proved nothing"
    with pytest.raises(FailedPrecondition):
        await executor.client.execute("ocr", mv.version, inputs, [])


# ---- concurrency ----


async def test_concurrent_executes(registry, executor, model_files):
    mv = await registry.client.register("two", model_files.two_outputs)
    await executor.client.load("two", mv.version, mv.sha256)
    rng = np.random.default_rng(7)
    xs = [rng.standard_normal((i + 1, 4)).astype(np.float32) for i in range(8)]
    replies = await asyncio.gather(
        *(executor.client.execute("two", mv.version, [tensor("X", x)], []) for x in xs)
    )
    for x, reply in zip(xs, replies):
        out = decoded(reply)
        np.testing.assert_array_equal(out["SUM"], x + x)
        np.testing.assert_array_equal(out["NEG"], -x)
    status = await executor.client.status()
    assert status.in_flight == 0
    [m] = status.models
    assert m.in_flight == 0
    assert m.executions == 8

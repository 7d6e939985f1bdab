"""Tensors between the front door and a co-located executor by shared memory, through real servers.

Two models built here with the onnx helper API (y = x + 1 on FP32): `addb` batches ([batch, n]),
`addu` does not ([2, n]). Large tensors must travel by ref (the link's counters say how many
bytes went which way), small ones inline, and `executor_shm=off` sends everything inline; the
answers equal in-process ONNX Runtime either way.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import pytest_asyncio
from onnx import TensorProto, helper
from sched_testkit import Stack, assert_matches, infer_request, ort_run, response_arrays, running_stack

from mlos.inference import grpc_service_pb2 as pb
from mlos_executor.link import WorkLink

pytestmark = pytest.mark.asyncio(loop_scope="session")

BIG = 256 * 1024  # floats per row: 1 MiB, well above the 64 KiB threshold
REGION, BYTE_SIZE = "shared_memory_region", "shared_memory_byte_size"


def add_one(path: Path, dims: list) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    graph = helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "add", [x], [y], [one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


async def register_models(stack: Stack, root: Path) -> None:
    await stack.registry.register("addb", add_one(root / "addb.onnx", ["batch", "n"]))
    await stack.registry.register("addu", add_one(root / "addu.onnx", [2, "n"]))
    for name in ("addb", "addu"):
        await stack.stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name=name), timeout=60)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def on_stack(stack: Stack, tmp_path_factory) -> Stack:
    await register_models(stack, tmp_path_factory.mktemp("linkshm-on"))
    return stack


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def off_stack(tmp_path_factory, demo):
    root = tmp_path_factory.mktemp("linkshm-off")
    async with running_stack(root, demo, load=(), executor_shm="off") as s:
        await register_models(s, root)
        yield s


def link_of(stack: Stack) -> WorkLink:
    return stack.core.executors[0].client.link


async def warm(stack: Stack) -> None:
    """One small request: opens the stream, whose first reply settles the shared memory offer."""
    resp = await stack.stub.ModelInfer(infer_request("addb", {"x": np.zeros((1, 4), np.float32)}), timeout=30)
    np.testing.assert_array_equal(response_arrays(resp)["y"], np.ones((1, 4), np.float32))


async def run_mixed(stack: Stack) -> None:
    """Concurrent requests (merged batches), an unbatched model, big and small: all equal x + 1."""
    rng = np.random.default_rng(7)
    xs = [rng.standard_normal((i % 3 + 1, BIG // 4 if i % 2 else 8)).astype(np.float32) for i in range(6)]
    same_n = [x for x in xs if x.shape[1] == BIG // 4]
    reqs = [infer_request("addb", {"x": x}, id=str(i)) for i, x in enumerate(same_n)]
    xu = rng.standard_normal((2, BIG)).astype(np.float32)
    reqs.append(infer_request("addu", {"x": xu}, id="u"))
    answers = await asyncio.gather(*(stack.stub.ModelInfer(r, timeout=60) for r in reqs))
    for x, resp in zip([*same_n, xu], answers, strict=True):
        np.testing.assert_allclose(response_arrays(resp)["y"], x + 1, rtol=0, atol=0)


async def classifier_matches_onnxruntime(stack: Stack) -> int:
    """rapidocr's direction classifier (110 KB per row, above the threshold), concurrent requests
    merged into batches: each answer equals the model run in process. Returns the input bytes."""
    ocr = stack.models["ocr_cls"]
    feeds = [ocr.sample_inputs(batch=i + 1, seed=i) for i in range(3)]
    answers = await asyncio.gather(*(stack.stub.ModelInfer(infer_request("ocr_cls", f), timeout=60) for f in feeds))
    for f, resp in zip(feeds, answers, strict=True):
        assert_matches(response_arrays(resp), ort_run(ocr, f))
    return sum(a.nbytes for f in feeds for a in f.values())


async def test_classifier_equals_onnxruntime_with_the_arena_on(on_stack: Stack) -> None:
    await warm(on_stack)
    link = link_of(on_stack)
    before = link.counters.bytes_by_shm_sent
    nbytes = await classifier_matches_onnxruntime(on_stack)
    assert link.counters.bytes_by_shm_sent - before == nbytes


async def test_classifier_equals_onnxruntime_with_the_arena_off(off_stack: Stack) -> None:
    await warm(off_stack)
    await classifier_matches_onnxruntime(off_stack)
    assert link_of(off_stack).counters.bytes_by_shm_sent == 0


async def test_large_tensors_travel_by_shared_memory_and_match(on_stack: Stack) -> None:
    await warm(on_stack)
    link = link_of(on_stack)
    assert link.shm is not None and link.shm.ready, link.shm and link.shm.error
    before = (link.counters.bytes_by_shm_sent, link.counters.bytes_by_shm_received)
    await run_mixed(on_stack)
    sent = link.counters.bytes_by_shm_sent - before[0]
    received = link.counters.bytes_by_shm_received - before[1]
    total = (1 + 3 + 2) * BIG + 2 * BIG * 4  # rows x bytes of the batched requests + the unbatched one
    assert sent == total and received == total
    metric = on_stack.metrics.get_sample_value(
        "mlos_executor_link_bytes_total", {"executor": link.addr, "path": "shm", "direction": "sent"}
    )
    assert metric == link.counters.bytes_by_shm_sent
    assert link.shm.arena.used_bytes == 0, "inputs of finished work must be freed"


async def test_small_tensors_stay_inline(on_stack: Stack) -> None:
    await warm(on_stack)
    link = link_of(on_stack)
    before = (link.counters.bytes_by_shm_sent, link.counters.bytes_inline_sent)
    await on_stack.stub.ModelInfer(infer_request("addb", {"x": np.ones((2, 16), np.float32)}), timeout=30)
    assert link.counters.bytes_by_shm_sent == before[0]
    assert link.counters.bytes_inline_sent - before[1] == 2 * 16 * 4


async def test_off_sends_everything_inline_and_matches(off_stack: Stack) -> None:
    await warm(off_stack)
    link = link_of(off_stack)
    assert link.shm is None
    await run_mixed(off_stack)
    assert link.counters.bytes_by_shm_sent == link.counters.bytes_by_shm_received == 0
    assert link.counters.bytes_inline_sent > 6 * BIG


async def test_client_regions_pass_through_to_the_executor(on_stack: Stack, shm_object) -> None:
    """Input read and output written by the executor in the client's own regions: no copy here."""
    await warm(on_stack)
    link = link_of(on_stack)
    x = np.random.default_rng(3).standard_normal((2, BIG)).astype(np.float32)
    in_key, in_handle = shm_object(x.nbytes + 64)
    out_key, out_handle = shm_object(x.nbytes + 128)
    in_handle.buf[64 : 64 + x.nbytes] = x.tobytes()
    for name, key, offset, size in (("lin", in_key, 64, x.nbytes), ("lout", out_key, 128, x.nbytes)):
        await on_stack.stub.SystemSharedMemoryRegister(
            pb.SystemSharedMemoryRegisterRequest(name=name, key=key, offset=offset, byte_size=size), timeout=10
        )
    try:
        req = pb.ModelInferRequest(model_name="addu")
        t = req.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
        t.parameters[REGION].string_param, t.parameters[BYTE_SIZE].int64_param = "lin", x.nbytes
        o = req.outputs.add(name="y")
        o.parameters[REGION].string_param, o.parameters[BYTE_SIZE].int64_param = "lout", x.nbytes
        before = (link.counters.bytes_by_shm_sent, link.counters.bytes_by_shm_received, link.counters.bytes_inline_sent)
        written = on_stack.shm.bytes_written
        resp = await on_stack.stub.ModelInfer(req, timeout=30)
        assert resp.raw_output_contents == [b""]
        got = np.frombuffer(bytes(out_handle.buf[128 : 128 + x.nbytes]), np.float32).reshape(x.shape)
        np.testing.assert_array_equal(got, x + 1)
        assert link.counters.bytes_by_shm_sent - before[0] == x.nbytes
        assert link.counters.bytes_by_shm_received - before[1] == x.nbytes
        assert link.counters.bytes_inline_sent == before[2]
        assert on_stack.shm.bytes_written - written == x.nbytes
        assert link.shm.arena.used_bytes == 0  # the client's bytes never entered the arena
        assert on_stack.shm.leases_held() == 0
    finally:
        await on_stack.stub.SystemSharedMemoryUnregister(pb.SystemSharedMemoryUnregisterRequest(), timeout=10)


async def test_too_small_output_window_fails_with_both_sizes(on_stack: Stack, shm_object) -> None:
    await warm(on_stack)
    x = np.ones((2, BIG), np.float32)
    out_key, _ = shm_object(x.nbytes)
    await on_stack.stub.SystemSharedMemoryRegister(
        pb.SystemSharedMemoryRegisterRequest(name="small", key=out_key, byte_size=x.nbytes), timeout=10
    )
    try:
        req = infer_request("addu", {"x": x})
        o = req.outputs.add(name="y")
        o.parameters[REGION].string_param, o.parameters[BYTE_SIZE].int64_param = "small", x.nbytes // 2
        with pytest.raises(Exception) as err:
            await on_stack.stub.ModelInfer(req, timeout=30)
        assert err.value.code().name == "INVALID_ARGUMENT"
        assert f"({x.nbytes // 2} bytes) should be at least {x.nbytes} bytes" in err.value.details()
        await warm(on_stack)  # the stream goes on
    finally:
        await on_stack.stub.SystemSharedMemoryUnregister(pb.SystemSharedMemoryUnregisterRequest(), timeout=10)


async def test_no_arena_name_is_left_in_dev_shm(on_stack: Stack) -> None:
    """Both arenas' names go as soon as both ends mapped them (a crash leaves nothing)."""
    await warm(on_stack)
    pid = os.getpid()  # executor and scheduler run in this process here
    assert not [n for n in os.listdir("/dev/shm") if n.startswith((f"mlos-sched-{pid}-", f"mlos-exec-{pid}-"))]

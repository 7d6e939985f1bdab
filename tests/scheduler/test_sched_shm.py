"""System shared memory through the real stack: raw protobuf requests, regions made by Python."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import pytest_asyncio
from grpc import aio
from sched_testkit import Stack, assert_matches, expect_error, infer_request, ort_run, response_arrays, still_serves

from mlos.inference import grpc_service_pb2 as pb

pytestmark = pytest.mark.asyncio(loop_scope="session")

REGION, OFFSET, BYTE_SIZE = "shared_memory_region", "shared_memory_offset", "shared_memory_byte_size"


def place(tensor, region: str, byte_size: int, offset: int = 0) -> None:
    tensor.parameters[REGION].string_param = region
    tensor.parameters[BYTE_SIZE].int64_param = byte_size
    if offset:
        tensor.parameters[OFFSET].int64_param = offset


async def register(stack: Stack, name: str, key: str, byte_size: int, offset: int = 0) -> None:
    await stack.stub.SystemSharedMemoryRegister(
        pb.SystemSharedMemoryRegisterRequest(name=name, key=key, offset=offset, byte_size=byte_size), timeout=10
    )


async def rpc_error(call, request) -> aio.AioRpcError:
    with pytest.raises(aio.AioRpcError) as err:
        await call(request, timeout=10)
    return err.value


@pytest_asyncio.fixture(loop_scope="session")
async def clean(stack: Stack):
    """Every test starts and ends with no region registered."""
    await stack.stub.SystemSharedMemoryUnregister(pb.SystemSharedMemoryUnregisterRequest(), timeout=10)
    yield
    await stack.stub.SystemSharedMemoryUnregister(pb.SystemSharedMemoryUnregisterRequest(), timeout=10)
    assert len(stack.shm) == 0


def iris_shm_request(x: np.ndarray) -> pb.ModelInferRequest:
    """X from region "in"; label and probabilities into region "out" at offsets 0 and 256."""
    req = pb.ModelInferRequest(model_name="iris", id="shm-1")
    place(req.inputs.add(name="X", datatype="FP32", shape=list(x.shape)), "in", x.nbytes)
    place(req.outputs.add(name="label"), "out", 256)
    place(req.outputs.add(name="probabilities"), "out", 256, offset=256)
    return req


async def test_inputs_and_outputs_by_region_match_onnxruntime(stack: Stack, shm_object, clean) -> None:
    iris = stack.models["iris"]
    feeds = iris.sample_inputs(batch=5, seed=3)
    x = feeds["X"]
    in_key, in_handle = shm_object(4096)
    out_key, out_handle = shm_object(8192)
    in_handle.buf[100 : 100 + x.nbytes] = x.tobytes()
    await register(stack, "in", in_key, x.nbytes, offset=100)  # a region that starts inside the object
    await register(stack, "out", out_key, 512, offset=4096)
    read_before = stack.metrics.get_sample_value("mlos_shm_read_bytes_total")
    written_before = stack.metrics.get_sample_value("mlos_shm_written_bytes_total")

    resp = await stack.stub.ModelInfer(iris_shm_request(x), timeout=30)

    assert [o.name for o in resp.outputs] == ["label", "probabilities"]
    assert list(resp.raw_output_contents) == [b"", b""]  # one entry per output, as Triton sends
    label, probs = resp.outputs
    assert label.parameters[REGION].string_param == "out" and label.parameters[BYTE_SIZE].int64_param == 256
    assert probs.parameters[OFFSET].int64_param == 256
    got = {
        "label": np.frombuffer(out_handle.buf[4096 : 4096 + 5 * 8], dtype=np.int64).copy().reshape(label.shape),
        "probabilities": np.frombuffer(out_handle.buf[4352 : 4352 + 5 * 12], dtype=np.float32)
        .copy()
        .reshape(probs.shape),
    }
    assert_matches(got, ort_run(iris, feeds))
    assert stack.metrics.get_sample_value("mlos_shm_read_bytes_total") - read_before == x.nbytes
    assert stack.metrics.get_sample_value("mlos_shm_written_bytes_total") - written_before == 5 * 8 + 5 * 12
    assert stack.metrics.get_sample_value("mlos_shm_regions") == 2


async def test_mixed_raw_and_shared_memory_tensors(stack: Stack, shm_object, clean) -> None:
    """silero_vad: `state` from a region, `input` and `sr` raw; one output by region, one raw."""
    silero = stack.models["silero_vad"]
    feeds = silero.sample_inputs(seed=5)
    feeds["state"] = np.random.default_rng(5).standard_normal(feeds["state"].shape).astype(np.float32)
    key, handle = shm_object(4096)
    state = feeds["state"]
    handle.buf[: state.nbytes] = state.tobytes()
    await register(stack, "s", key, 4096)
    req = infer_request("silero_vad", {"input": feeds["input"], "sr": feeds["sr"]}, outputs=["output"])
    req.inputs.insert(1, pb.ModelInferRequest.InferInputTensor(name="state", datatype="FP32", shape=state.shape))
    place(req.inputs[1], "s", state.nbytes)
    place(req.outputs.add(name="stateN"), "s", state.nbytes, offset=2048)

    resp = await stack.stub.ModelInfer(req, timeout=30)

    want = ort_run(silero, feeds)
    out = {o.name: o for o in resp.outputs}
    got = response_arrays(pb.ModelInferResponse(outputs=[out["output"]], raw_output_contents=[
        resp.raw_output_contents[list(out).index("output")]]))
    got["stateN"] = np.frombuffer(handle.buf[2048 : 2048 + state.nbytes], np.float32).copy().reshape(state.shape)
    assert_matches(got, want)


async def test_stream_infer_with_shared_memory(stack: Stack, shm_object, clean) -> None:
    iris = stack.models["iris"]
    feeds = iris.sample_inputs(batch=2, seed=8)
    in_key, in_handle = shm_object(4096)
    out_key, out_handle = shm_object(4096)
    in_handle.buf[: feeds["X"].nbytes] = feeds["X"].tobytes()
    await register(stack, "in", in_key, 4096)
    await register(stack, "out", out_key, 4096)

    async def requests():
        yield iris_shm_request(feeds["X"])

    replies = [r async for r in stack.stub.ModelStreamInfer(requests(), timeout=30)]
    assert len(replies) == 1 and not replies[0].error_message
    probs = np.frombuffer(out_handle.buf[256 : 256 + 24], np.float32).copy().reshape(2, 3)
    assert np.allclose(probs, ort_run(iris, feeds)["probabilities"], atol=1e-5)


async def test_status_and_unregister(stack: Stack, shm_object, clean) -> None:
    key, _ = shm_object(4096)
    await register(stack, "a", key, 1024)
    await register(stack, "b", key, 1024, offset=1024)
    status = await stack.stub.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest(), timeout=10)
    assert set(status.regions) == {"a", "b"}
    b = status.regions["b"]
    assert (b.name, b.key, b.offset, b.byte_size) == ("b", key, 1024, 1024)
    one = await stack.stub.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest(name="a"), timeout=10)
    assert list(one.regions) == ["a"]
    await stack.stub.SystemSharedMemoryUnregister(pb.SystemSharedMemoryUnregisterRequest(name="a"), timeout=10)
    err = await rpc_error(stack.stub.SystemSharedMemoryStatus, pb.SystemSharedMemoryStatusRequest(name="a"))
    assert err.code() == grpc.StatusCode.NOT_FOUND and "'a'" in err.details()
    metadata = await stack.stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=10)
    assert "system_shared_memory" in metadata.extensions
    assert "cuda_shared_memory" not in metadata.extensions


@pytest.mark.parametrize(
    "key,offset,byte_size,code,words",
    [
        ("/../etc/passwd", 0, 16, grpc.StatusCode.INVALID_ARGUMENT, "one name"),
        ("/a/b", 0, 16, grpc.StatusCode.INVALID_ARGUMENT, "one name"),
        ("", 0, 16, grpc.StatusCode.INVALID_ARGUMENT, "one name"),
        ("/mlos-no-such-object", 0, 16, grpc.StatusCode.NOT_FOUND, "no POSIX shared memory object"),
        (None, 0, 4097, grpc.StatusCode.INVALID_ARGUMENT, "exceeds the object's size"),
        (None, 4000, 200, grpc.StatusCode.INVALID_ARGUMENT, "exceeds the object's size"),
        (None, 0, 0, grpc.StatusCode.INVALID_ARGUMENT, "must be positive"),
    ],
)
async def test_bad_register_then_good(stack: Stack, shm_object, clean, key, offset, byte_size, code, words) -> None:
    real, _ = shm_object(4096)
    request = pb.SystemSharedMemoryRegisterRequest(name="r", key=real if key is None else key, offset=offset,
                                                   byte_size=byte_size)
    err = await rpc_error(stack.stub.SystemSharedMemoryRegister, request)
    assert err.code() == code and words in err.details(), err.details()
    await register(stack, "r", real, 4096)
    status = await stack.stub.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest(name="r"), timeout=10)
    assert status.regions["r"].byte_size == 4096


async def test_register_twice_and_empty_name(stack: Stack, shm_object, clean) -> None:
    key, _ = shm_object(4096)
    await register(stack, "r", key, 64)
    err = await rpc_error(stack.stub.SystemSharedMemoryRegister,
                          pb.SystemSharedMemoryRegisterRequest(name="r", key=key, byte_size=64))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    err = await rpc_error(stack.stub.SystemSharedMemoryRegister,
                          pb.SystemSharedMemoryRegisterRequest(name="", key=key, byte_size=64))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    await register(stack, "r2", key, 64)


def _bad_requests(x: np.ndarray) -> dict[str, tuple[pb.ModelInferRequest, grpc.StatusCode, str]]:
    def req(**override) -> pb.ModelInferRequest:
        r = iris_shm_request(x)
        for where, key, value in override.get("params", []):
            tensor = r.inputs[0] if where == "in" else r.outputs[1]
            if value is None:
                del tensor.parameters[key]
            elif isinstance(value, str):
                tensor.parameters[key].string_param = value
            else:
                tensor.parameters[key].int64_param = value
        if override.get("contents"):
            r.inputs[0].contents.fp32_contents.extend([1.0] * x.size)
        if override.get("raw"):
            r.raw_input_contents.append(x.tobytes())
        return r

    invalid = grpc.StatusCode.INVALID_ARGUMENT
    return {
        "unknown input region": (req(params=[("in", REGION, "nope")]), grpc.StatusCode.NOT_FOUND, "'nope'"),
        "unknown output region": (req(params=[("out", REGION, "nope")]), grpc.StatusCode.NOT_FOUND, "'nope'"),
        "size not datatype x shape": (req(params=[("in", BYTE_SIZE, x.nbytes - 4)]), invalid, "needs"),
        "window past region": (req(params=[("in", OFFSET, 4)]), invalid, "exceeds the region"),
        "negative offset": (req(params=[("in", OFFSET, -8)]), invalid, "must not be negative"),
        "byte size missing": (req(params=[("in", BYTE_SIZE, None)]), invalid, "must be specified along"),
        "offset without region": (req(params=[("in", REGION, None)]), invalid, "without"),
        "region not a string": (req(params=[("in", REGION, 7)]), invalid, "expected string_param"),
        "byte size not int64": (req(params=[("in", BYTE_SIZE, "16")]), invalid, "expected int64_param"),
        "contents too": (req(contents=True), invalid, "unexpected 'contents'"),
        "raw entry for shm input": (req(raw=True), invalid, "raw_input_contents has 1 entries for 0 inputs"),
        "output region too small": (
            req(params=[("out", BYTE_SIZE, 8)]), invalid, "output 'probabilities' (8 bytes) should be at least 60",
        ),
        "output window past region": (req(params=[("out", OFFSET, 500)]), invalid, "exceeds the region"),
    }


async def iris_regions(stack: Stack, shm_object, batch: int) -> tuple[np.ndarray, str]:
    """Registers "in" holding iris inputs of `batch` rows and an empty "out"; returns X and in's key."""
    x = stack.models["iris"].sample_inputs(batch=batch, seed=batch)["X"]
    in_key, in_handle = shm_object(4096)
    out_key, _ = shm_object(4096)
    in_handle.buf[: x.nbytes] = x.tobytes()
    await register(stack, "in", in_key, x.nbytes)
    await register(stack, "out", out_key, 512)
    return x, in_key


@pytest.mark.parametrize("kind", list(_bad_requests(np.zeros((5, 4), np.float32))))
async def test_bad_shared_memory_infer_then_good(stack: Stack, shm_object, clean, kind: str) -> None:
    x, _ = await iris_regions(stack, shm_object, 5)
    request, code, words = _bad_requests(x)[kind]
    details = await expect_error(stack, request, code)
    assert words in details, details
    assert stack.shm.leases_held() == 0, "a failed request kept its lease"
    resp = await stack.stub.ModelInfer(iris_shm_request(x), timeout=30)
    assert list(resp.raw_output_contents) == [b"", b""]
    await still_serves(stack)


async def test_unregistered_region_then_good(stack: Stack, shm_object, clean) -> None:
    x, in_key = await iris_regions(stack, shm_object, 1)
    await stack.stub.SystemSharedMemoryUnregister(pb.SystemSharedMemoryUnregisterRequest(name="in"), timeout=10)
    await expect_error(stack, iris_shm_request(x), grpc.StatusCode.NOT_FOUND)
    await register(stack, "in", in_key, x.nbytes)
    await stack.stub.ModelInfer(iris_shm_request(x), timeout=30)


async def test_cuda_shared_memory_says_it_needs_a_gpu_executor(stack: Stack) -> None:
    calls = [
        (stack.stub.CudaSharedMemoryRegister,
         pb.CudaSharedMemoryRegisterRequest(name="g", raw_handle=b"\0" * 64, device_id=0, byte_size=64)),
        (stack.stub.CudaSharedMemoryStatus, pb.CudaSharedMemoryStatusRequest()),
        (stack.stub.CudaSharedMemoryUnregister, pb.CudaSharedMemoryUnregisterRequest(name="g")),
    ]
    for call, request in calls:
        err = await rpc_error(call, request)
        assert err.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "CUDA shared memory needs a GPU executor" in err.details()
    await still_serves(stack)

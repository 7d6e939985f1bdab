"""Bad requests get the right status, and the server keeps serving after each one."""

from __future__ import annotations

import asyncio
import time
import tracemalloc

import grpc
import numpy as np
import pytest
from sched_testkit import (
    Stack,
    assert_matches,
    expect_error,
    infer_request,
    ort_run,
    response_arrays,
    still_serves,
)

from mlos.inference import grpc_service_pb2 as pb

pytestmark = pytest.mark.asyncio(loop_scope="session")


def iris_req(batch: int = 1) -> pb.ModelInferRequest:
    return infer_request("iris", {"X": np.ones((batch, 4), np.float32)})


async def test_unknown_model_is_not_found(stack: Stack) -> None:
    msg = await expect_error(stack, iris_req().__class__(model_name="no_such_model"), grpc.StatusCode.NOT_FOUND)
    assert "no_such_model" in msg
    await still_serves(stack)


async def test_unknown_version_is_not_found(stack: Stack) -> None:
    req = iris_req()
    req.model_version = "7"
    await expect_error(stack, req, grpc.StatusCode.NOT_FOUND)
    await still_serves(stack)


@pytest.mark.parametrize("version", ["abc", "-1", "0"])
async def test_malformed_version_is_invalid(stack: Stack, version: str) -> None:
    req = iris_req()
    req.model_version = version
    msg = await expect_error(stack, req, grpc.StatusCode.INVALID_ARGUMENT)
    assert version in msg
    await still_serves(stack)


async def test_empty_model_name_is_invalid(stack: Stack) -> None:
    await expect_error(stack, pb.ModelInferRequest(), grpc.StatusCode.INVALID_ARGUMENT)
    await still_serves(stack)


async def test_wrong_datatype_names_the_input(stack: Stack) -> None:
    req = infer_request("iris", {"X": np.ones((1, 4), np.float64)})
    msg = await expect_error(stack, req, grpc.StatusCode.INVALID_ARGUMENT)
    assert "'X'" in msg and "FP32" in msg and "FP64" in msg
    await still_serves(stack)


async def test_wrong_fixed_dim_is_invalid(stack: Stack) -> None:
    req = infer_request("ocr_cls", {"x": np.ones((1, 4, 48, 192), np.float32)})
    msg = await expect_error(stack, req, grpc.StatusCode.INVALID_ARGUMENT)
    assert "'x'" in msg
    await still_serves(stack)


async def test_wrong_rank_is_invalid(stack: Stack) -> None:
    req = infer_request("ocr_cls", {"x": np.ones((1, 3, 48), np.float32)})
    await expect_error(stack, req, grpc.StatusCode.INVALID_ARGUMENT)
    await still_serves(stack)


@pytest.mark.parametrize("delta", [-4, 4])
async def test_raw_length_off_by_four_is_invalid(stack: Stack, delta: int) -> None:
    req = iris_req(2)
    raw = req.raw_input_contents[0]
    req.raw_input_contents[0] = raw[:delta] if delta < 0 else raw + b"\0" * delta
    msg = await expect_error(stack, req, grpc.StatusCode.INVALID_ARGUMENT)
    assert "32 bytes" in msg
    await still_serves(stack)


async def test_huge_claimed_shape_is_rejected_without_allocating(stack: Stack) -> None:
    req = pb.ModelInferRequest(model_name="iris")
    req.inputs.add(name="X", datatype="FP32", shape=[2**62, 4])
    req.raw_input_contents.append(b"\0" * 16)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        await expect_error(stack, req, grpc.StatusCode.INVALID_ARGUMENT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"peak {peak} bytes while rejecting a hostile shape"
    await still_serves(stack)


async def test_huge_claimed_shape_in_typed_contents_is_rejected(stack: Stack) -> None:
    req = pb.ModelInferRequest(model_name="iris")
    t = req.inputs.add(name="X", datatype="FP32", shape=[2**62, 4])
    t.contents.fp32_contents.extend([0.0] * 4)
    await expect_error(stack, req, grpc.StatusCode.INVALID_ARGUMENT)
    await still_serves(stack)


async def test_missing_input_is_invalid(stack: Stack) -> None:
    feeds = stack.models["silero_vad"].sample_inputs()
    del feeds["sr"]
    msg = await expect_error(stack, infer_request("silero_vad", feeds), grpc.StatusCode.INVALID_ARGUMENT)
    assert "sr" in msg
    await still_serves(stack)


async def test_duplicate_input_is_invalid(stack: Stack) -> None:
    req = iris_req()
    req.inputs.add(name="X", datatype="FP32", shape=[1, 4])
    req.raw_input_contents.append(req.raw_input_contents[0])
    msg = await expect_error(stack, req, grpc.StatusCode.INVALID_ARGUMENT)
    assert "twice" in msg
    await still_serves(stack)


async def test_unknown_input_is_invalid(stack: Stack) -> None:
    req = iris_req()
    req.inputs.add(name="Y", datatype="FP32", shape=[1, 4])
    req.raw_input_contents.append(req.raw_input_contents[0])
    msg = await expect_error(stack, req, grpc.StatusCode.INVALID_ARGUMENT)
    assert "'Y'" in msg
    await still_serves(stack)


async def test_raw_count_differs_from_inputs_is_invalid(stack: Stack) -> None:
    req = infer_request("silero_vad", stack.models["silero_vad"].sample_inputs())
    del req.raw_input_contents[-1]
    msg = await expect_error(stack, req, grpc.StatusCode.INVALID_ARGUMENT)
    assert "raw_input_contents" in msg
    await still_serves(stack)


async def test_raw_and_typed_contents_together_is_invalid(stack: Stack) -> None:
    req = iris_req()
    req.inputs[0].contents.fp32_contents.extend([1.0] * 4)
    msg = await expect_error(stack, req, grpc.StatusCode.INVALID_ARGUMENT)
    assert "'X'" in msg
    await still_serves(stack)


async def test_typed_value_count_mismatch_is_invalid(stack: Stack) -> None:
    req = pb.ModelInferRequest(model_name="iris")
    t = req.inputs.add(name="X", datatype="FP32", shape=[2, 4])
    t.contents.fp32_contents.extend([1.0] * 7)
    await expect_error(stack, req, grpc.StatusCode.INVALID_ARGUMENT)
    await still_serves(stack)


async def test_batch_over_max_batch_size_is_invalid(stack: Stack) -> None:
    msg = await expect_error(stack, iris_req(9), grpc.StatusCode.INVALID_ARGUMENT)
    assert "max_batch_size 8" in msg
    resp = await stack.stub.ModelInfer(iris_req(8), timeout=30)  # the limit itself is fine
    assert list(resp.outputs[0].shape)[0] == 8
    await still_serves(stack)


async def test_batch_zero_is_invalid(stack: Stack) -> None:
    await expect_error(stack, iris_req(0), grpc.StatusCode.INVALID_ARGUMENT)
    await still_serves(stack)


async def test_unknown_requested_output_is_invalid(stack: Stack) -> None:
    req = infer_request("iris", {"X": np.ones((1, 4), np.float32)}, outputs=["label", "nope"])
    msg = await expect_error(stack, req, grpc.StatusCode.INVALID_ARGUMENT)
    assert "nope" in msg
    await still_serves(stack)


async def test_shared_memory_input_of_unknown_region_is_not_found(stack: Stack) -> None:
    req = pb.ModelInferRequest(model_name="iris")
    t = req.inputs.add(name="X", datatype="FP32", shape=[1, 4])
    t.parameters["shared_memory_region"].string_param = "region0"
    t.parameters["shared_memory_byte_size"].int64_param = 16
    await expect_error(stack, req, grpc.StatusCode.NOT_FOUND)
    await still_serves(stack)


async def test_bad_parameter_types_are_invalid(stack: Stack) -> None:
    req = iris_req()
    req.parameters["timeout"].string_param = "soon"
    await expect_error(stack, req, grpc.StatusCode.INVALID_ARGUMENT)
    req = iris_req()
    req.parameters["priority"].int64_param = -1
    await expect_error(stack, req, grpc.StatusCode.INVALID_ARGUMENT)
    await still_serves(stack)


async def test_timeout_parameter_of_one_microsecond(stack: Stack) -> None:
    req = infer_request("ocr_cls", stack.models["ocr_cls"].sample_inputs(batch=4))
    req.parameters["timeout"].int64_param = 1
    start = time.perf_counter()
    await expect_error(stack, req, grpc.StatusCode.DEADLINE_EXCEEDED)  # the client set no deadline
    assert time.perf_counter() - start < 5.0  # prompt, not after a queue of batches
    await still_serves(stack)


async def test_generous_timeout_parameter_is_fine(stack: Stack) -> None:
    iris = stack.models["iris"]
    feeds = iris.sample_inputs(batch=1)
    req = infer_request("iris", feeds)
    req.parameters["timeout"].int64_param = 10_000_000
    req.parameters["priority"].int64_param = 1
    assert_matches(response_arrays(await stack.stub.ModelInfer(req, timeout=30)), ort_run(iris, feeds))


async def test_nearly_spent_grpc_deadline(stack: Stack) -> None:
    req = infer_request("ocr_cls", stack.models["ocr_cls"].sample_inputs(batch=8))
    start = time.perf_counter()
    await expect_error(stack, req, grpc.StatusCode.DEADLINE_EXCEEDED, timeout=0.0005)
    assert time.perf_counter() - start < 5.0  # prompt, not after a queue of batches
    await asyncio.sleep(0.05)  # let the server side settle
    await still_serves(stack)


async def test_server_side_spent_deadline_never_reaches_the_executor(stack: Stack) -> None:
    """The gRPC deadline as the servicer sees it (time_remaining) becomes the request's deadline."""
    from mlos_common.errors import DeadlineExceeded
    from mlos_scheduler import convert

    loop = asyncio.get_running_loop()
    msg = infer_request("ocr_cls", stack.models["ocr_cls"].sample_inputs(batch=2))
    loaded = stack.executor_core.models[("ocr_cls", 1)]
    before = loaded.executions
    request = convert.infer_request(msg, 0.0, loop.time())
    with pytest.raises(DeadlineExceeded):
        await stack.core.infer(request)
    assert loaded.executions == before
    await still_serves(stack)

"""BYTES tensors through real ONNX string models, both encodings, and the runtime's own errors."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
from sched_testkit import Stack, infer_request, response_arrays
from test_sched_errors import expect_error, still_serves

from mlos.inference import grpc_service_pb2 as pb
from mlos_scheduler.convert import stream_error

pytestmark = pytest.mark.asyncio(loop_scope="session")

TEXTS = [b"abc", b"", b"a\x00b", "héllo wörld ✓".encode(), b"x" * 3000]


def strings(*items: bytes) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = list(items)
    return out


def typed_request(model: str, inputs: dict[str, list[bytes]]) -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name=model)
    for name, values in inputs.items():
        t = req.inputs.add(name=name, datatype="BYTES", shape=[len(values)])
        t.contents.bytes_contents.extend(values)
    return req


async def test_identity_raw_round_trips_bytes(stack: Stack) -> None:
    resp = await stack.stub.ModelInfer(infer_request("str_identity", {"x": strings(*TEXTS)}), timeout=30)
    assert resp.outputs[0].datatype == "BYTES" and list(resp.outputs[0].shape) == [len(TEXTS)]
    assert list(response_arrays(resp)["y"]) == TEXTS


async def test_identity_typed_bytes_contents_round_trips(stack: Stack) -> None:
    resp = await stack.stub.ModelInfer(typed_request("str_identity", {"x": TEXTS}), timeout=30)
    assert list(response_arrays(resp)["y"]) == TEXTS


async def test_string_concat(stack: Stack) -> None:
    feeds = {"a": strings(b"foo", "é".encode(), b""), "b": strings(b"bar", b"!", b"z")}
    resp = await stack.stub.ModelInfer(infer_request("str_concat", feeds), timeout=30)
    assert list(response_arrays(resp)["y"]) == [b"foobar", "é!".encode(), b"z"]


async def test_concurrent_string_requests_batch_and_split(stack: Stack) -> None:
    sent = [[f"r{i}-{j}".encode() * (i + 1) for j in range(i % 3 + 1)] for i in range(8)]
    replies = await asyncio.gather(
        *(stack.stub.ModelInfer(infer_request("str_identity", {"x": strings(*s)}), timeout=30) for s in sent)
    )
    assert [list(response_arrays(r)["y"]) for r in replies] == sent


async def test_string_to_number(stack: Stack) -> None:
    resp = await stack.stub.ModelInfer(infer_request("str_to_float", {"x": strings(b"1.5", b"-2")}), timeout=30)
    assert np.array_equal(response_arrays(resp)["y"], np.array([1.5, -2.0], np.float32))


@pytest.mark.parametrize("typed", [False, True])
async def test_runtime_failure_carries_the_runtime_message(stack: Stack, typed: bool) -> None:
    req = typed_request("str_to_float", {"x": [b"abc"]}) if typed else infer_request(
        "str_to_float", {"x": strings(b"abc")})
    msg = await expect_error(stack, req, grpc.StatusCode.INVALID_ARGUMENT)
    assert "onnxruntime" in msg and "Cast" in msg, msg
    assert "RuntimeException" not in msg and ".cc" not in msg and "/" not in msg, msg
    await still_serves(stack)


@pytest.mark.parametrize("typed", [False, True])
async def test_non_utf8_bytes_are_refused_clearly(stack: Stack, typed: bool) -> None:
    items = [b"ok", b"\xff\xfe"]
    req = typed_request("str_identity", {"x": items}) if typed else infer_request("str_identity", {"x": strings(*items)})
    msg = await expect_error(stack, req, grpc.StatusCode.INVALID_ARGUMENT)
    assert "'x'" in msg and "element 1" in msg and "UTF-8" in msg, msg
    await still_serves(stack)


async def test_huge_bytes_shape_with_tiny_body_is_invalid(stack: Stack) -> None:
    req = pb.ModelInferRequest(model_name="str_identity")
    req.inputs.add(name="x", datatype="BYTES", shape=[2**31])
    req.raw_input_contents.append(b"\x00\x00\x00\x00")
    msg = await expect_error(stack, req, grpc.StatusCode.INVALID_ARGUMENT)
    assert "'x'" in msg and "at least" in msg, msg
    await still_serves(stack)


async def test_typed_integer_out_of_range_is_invalid(stack: Stack) -> None:
    req = pb.ModelInferRequest(model_name="iris")
    t = req.inputs.add(name="X", datatype="UINT8", shape=[1])
    t.contents.uint_contents.append(300)
    msg = await expect_error(stack, req, grpc.StatusCode.INVALID_ARGUMENT)
    assert "'X'" in msg and "UINT8" in msg, msg
    await still_serves(stack)


async def test_stream_answers_every_request_around_bad_ones(stack: Stack) -> None:
    overflow = pb.ModelInferRequest(model_name="iris", id="overflow")
    t = overflow.inputs.add(name="X", datatype="UINT8", shape=[1])
    t.contents.uint_contents.append(300)
    not_utf8 = infer_request("str_identity", {"x": strings(b"\xff")}, id="not-utf8")
    cast_fails = infer_request("str_to_float", {"x": strings(b"abc")}, id="cast")
    good = [infer_request("str_identity", {"x": strings(f"g{i}".encode())}, id=f"g{i}") for i in range(4)]
    sent = [good[0], overflow, good[1], not_utf8, cast_fails, good[2], good[3]]

    async def gen():
        for r in sent:
            yield r

    call = stack.stub.ModelStreamInfer(gen(), timeout=30)
    replies = {r.infer_response.id: r async for r in call}
    assert sorted(replies) == sorted(r.id for r in sent)
    for bad in ("overflow", "not-utf8", "cast"):
        assert replies[bad].error_message.startswith("INVALID_ARGUMENT: "), replies[bad].error_message
    for i in range(4):
        r = replies[f"g{i}"]
        assert not r.error_message and list(response_arrays(r.infer_response)["y"]) == [f"g{i}".encode()]
    assert await call.code() == grpc.StatusCode.OK


async def test_stream_error_text_for_unexpected_exceptions() -> None:
    assert stream_error(OverflowError("secret detail")) == "INTERNAL: internal error in ModelStreamInfer: OverflowError"


@pytest.mark.parametrize(
    "raw, words",
    [
        (b"\x03\x00\x00\x00ab\x00\x00\x00", "ends inside element 1"),      # 3 bytes, then a cut prefix
        (b"\x01\x00\x00\x00abc\x01\x00", "runs past the end"),            # second length is huge
        (b"\x01\x00\x00\x00a\x00\x00\x00\x00zz", "trailing bytes"),         # 2 elements + junk
    ],
)
async def test_a_malformed_bytes_request_fails_alone_at_admission(stack: Stack, raw: bytes, words: str) -> None:
    """Its layout is checked before it can join a batch, so partners sent at once still succeed."""
    bad = pb.ModelInferRequest(model_name="str_identity")
    bad.inputs.add(name="x", datatype="BYTES", shape=[2])
    bad.raw_input_contents.append(raw)
    good = [infer_request("str_identity", {"x": strings(b"ok", str(i).encode())}) for i in range(4)]
    results = await asyncio.gather(
        *(stack.stub.ModelInfer(r, timeout=30) for r in [good[0], good[1], bad, good[2], good[3]]),
        return_exceptions=True,
    )
    err = results.pop(2)
    assert isinstance(err, grpc.aio.AioRpcError) and err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in err.details() and "'x'" in err.details()
    for i, resp in enumerate(results):
        assert list(response_arrays(resp)["y"]) == [b"ok", str(i).encode()]

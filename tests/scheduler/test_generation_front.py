"""A generation model at the gRPC front door, served for real (conftest's `llama`: the tiny llama
GGUF on llama.cpp behind the real executor): ModelInfer answers the whole text, ModelStreamInfer
a response per chunk with triton_final_response as Triton's decoupled models do (or an empty
final response when asked), requests on one stream go on around a failing one, a client that
cancels its call stops its generation on the executor, and bad input is named."""

from __future__ import annotations

import asyncio
import json

import grpc
import numpy as np
import pytest
from generation_sched_testkit import collect, remote, request
from sched_testkit import Stack, expect_error, infer_request, response_arrays, still_serves

from mlos.inference import grpc_service_pb2 as pb
from mlos_common.tensors import encode_bytes

pytestmark = pytest.mark.asyncio(loop_scope="session")

PROMPT = b"the quick brown fox"
MAX_TOKENS = 12                    # TINY makes 4 tokens a chunk: 3 chunks at least
GREEDY = {"max_tokens": MAX_TOKENS, "temperature": 0, "seed": 7}
FINAL = "triton_final_response"


def generate_msg(
    request_id: str, stream: bool | None = None, sampling: dict | str | None = None, prompt: bytes = PROMPT, **params
) -> pb.ModelInferRequest:
    """A ModelInferRequest for "tiny" as Triton's LLM clients send it; `params` are request parameters."""
    msg = pb.ModelInferRequest(model_name="tiny", id=request_id)
    msg.inputs.add(name="text_input", datatype="BYTES", shape=[1])
    msg.raw_input_contents.append(encode_bytes(np.array([prompt], dtype=object)))
    if stream is not None:
        msg.inputs.add(name="stream", datatype="BOOL", shape=[1])
        msg.raw_input_contents.append(bytes([stream]))
    if sampling is not None:
        source = sampling if isinstance(sampling, str) else json.dumps(sampling)
        msg.inputs.add(name="sampling_parameters", datatype="BYTES", shape=[1])
        msg.raw_input_contents.append(encode_bytes(np.array([source.encode()], dtype=object)))
    for key, value in params.items():
        field = "bool_param" if isinstance(value, bool) else "int64_param"
        setattr(msg.parameters[key], field, value)
    return msg


async def reference(llama: Stack, max_tokens: int = MAX_TOKENS) -> bytes:
    """The text Scheduler.generate itself makes for PROMPT (greedy, so the same every time)."""
    return b"".join(c.text for c in await collect(llama, request(PROMPT, model="tiny", max_tokens=max_tokens)))


def tiny_stats(status):
    """The executor's GenerationStats of "tiny" in its Status answer."""
    (model,) = [m for m in status.models if m.model.name == "tiny"]
    return model.generation


def text_of(response: pb.ModelInferResponse) -> bytes:
    (out,) = response.outputs
    assert (out.name, out.datatype, list(out.shape)) == ("text_output", "BYTES", [1])
    return response_arrays(response)["text_output"][0]


async def stream_until_final(llama: Stack, *msgs: pb.ModelInferRequest) -> dict[str, list[pb.ModelStreamInferResponse]]:
    """Sends `msgs` on one ModelStreamInfer call; the replies by request id until each id had its
    final response or an error."""
    call = llama.stub.ModelStreamInfer(iter(msgs), timeout=60)
    got: dict[str, list] = {m.id: [] for m in msgs}
    open_ids = set(got)
    async for reply in call:
        rid = reply.infer_response.id
        got[rid].append(reply)
        if reply.error_message or reply.infer_response.parameters[FINAL].bool_param:
            open_ids.discard(rid)
        if not open_ids:
            break
    call.cancel()
    return got


async def test_model_infer_answers_the_whole_text(llama: Stack) -> None:
    response = await llama.stub.ModelInfer(generate_msg("u1", sampling=GREEDY), timeout=60)
    assert (response.model_name, response.model_version, response.id) == ("tiny", "1", "u1")
    assert text_of(response) == await reference(llama) and FINAL not in response.parameters
    streamed = await llama.stub.ModelInfer(generate_msg("u2", True, GREEDY), timeout=60)  # a unary call has one answer
    assert text_of(streamed) == await reference(llama)


async def test_stream_answers_a_response_per_chunk_the_last_final(llama: Stack) -> None:
    replies = (await stream_until_final(llama, generate_msg("s1", True, GREEDY)))["s1"]
    assert len(replies) >= 3 and not any(r.error_message for r in replies)
    assert [r.infer_response.parameters[FINAL].bool_param for r in replies] == [False] * (len(replies) - 1) + [True]
    assert all(r.infer_response.id == "s1" for r in replies)
    assert b"".join(text_of(r.infer_response) for r in replies) == await reference(llama)


async def test_empty_final_response_when_asked(llama: Stack) -> None:
    msg = generate_msg("e1", True, GREEDY, triton_enable_empty_final_response=True)
    *chunks, end = (await stream_until_final(llama, msg))["e1"]
    assert not end.infer_response.outputs and end.infer_response.parameters[FINAL].bool_param
    assert end.infer_response.id == "e1"
    assert not any(r.infer_response.parameters[FINAL].bool_param for r in chunks)
    assert b"".join(text_of(r.infer_response) for r in chunks) == await reference(llama)


async def test_stream_false_on_the_stream_is_one_final_response(llama: Stack) -> None:
    (reply,) = (await stream_until_final(llama, generate_msg("w1", False, GREEDY)))["w1"]
    assert reply.infer_response.parameters[FINAL].bool_param
    assert text_of(reply.infer_response) == await reference(llama)


async def test_a_failing_request_on_the_stream_leaves_the_others_alone(llama: Stack) -> None:
    iris = llama.models["iris"]
    feeds = iris.sample_inputs(batch=1, seed=3)
    got = await stream_until_final(
        llama,
        generate_msg("good", True, GREEDY),
        generate_msg("long", True, GREEDY, prompt=b"the cat " * 200),       # over the context: the executor says so
        generate_msg("json", True, "{max_tokens: 3}"),                      # refused at the door
        generate_msg("late", True, GREEDY, first_token_timeout=1),          # 1 us to the first token
    )
    assert b"".join(text_of(r.infer_response) for r in got["good"]) == await reference(llama)
    assert got["long"][-1].error_message.startswith("INVALID_ARGUMENT") and "text_input" in got["long"][-1].error_message
    (bad,) = got["json"]
    assert bad.error_message.startswith("INVALID_ARGUMENT: sampling_parameters is not valid JSON")
    assert bad.infer_response.id == "json"
    assert got["late"][-1].error_message.startswith("DEADLINE_EXCEEDED"), got["late"][-1].error_message
    tensor = await llama.stub.ModelInfer(infer_request("iris", feeds), timeout=30)  # tensor models as before
    assert response_arrays(tensor)["label"].shape == (1,)


async def test_cancelling_the_call_stops_the_generation_on_the_executor(llama: Stack) -> None:
    labels = {"model": "tiny", "version": "1", "priority": "2"}
    before = llama.metrics.get_sample_value("mlos_generation_cancellations_total", labels) or 0
    call = llama.stub.ModelStreamInfer(iter([generate_msg("c1", True, {"max_tokens": 200, "temperature": 0})]))
    first = await call.read()
    assert not first.error_message and not first.infer_response.parameters[FINAL].bool_param
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call.read()
    assert await call.code() == grpc.StatusCode.CANCELLED
    # the cancel left before this one's work, and the executor ends a cancelled generation within a step
    await reference(llama, max_tokens=3)
    stats = tiny_stats(await remote(llama).client.status())
    assert stats.cancelled >= 1 and stats.active == 0
    assert llama.metrics.get_sample_value("mlos_generation_cancellations_total", labels) == before + 1


@pytest.mark.parametrize("msg,words", [
    (infer_request("tiny", {"X": np.zeros((1, 4), np.float32)}), ["has no input 'X'", "text_input"]),
    (generate_msg("b", sampling={"temperature": 9}), ["sampling_parameters.temperature must be in [0, 5], got 9"]),
    (generate_msg("b", sampling={"max_tokens": 257}), ["sampling_parameters.max_tokens must be in [1, 256], got 257"]),
    (generate_msg("b", prompt=b"\xc3("), ["'text_input' is not valid UTF-8", "byte offset 0"]),
    (generate_msg("b", triton_enable_empty_final_response=1), ["'triton_enable_empty_final_response'", "boolean"]),
])
async def test_bad_generation_requests_are_named(llama: Stack, msg: pb.ModelInferRequest, words: list[str]) -> None:
    message = await expect_error(llama, msg, grpc.StatusCode.INVALID_ARGUMENT)
    for w in words:
        assert w in message, message
    await still_serves(llama)


async def test_config_and_metadata_over_grpc(llama: Stack) -> None:
    config = (await llama.stub.ModelConfig(pb.ModelConfigRequest(name="tiny"), timeout=10)).config
    assert config.model_transaction_policy.decoupled and config.backend == "llamacpp"
    meta = await llama.stub.ModelMetadata(pb.ModelMetadataRequest(name="tiny"), timeout=10)
    assert [i.name for i in meta.inputs] == ["text_input", "stream", "sampling_parameters"]


async def test_the_timeout_parameter_reaches_the_generation(llama: Stack) -> None:
    message = await expect_error(llama, generate_msg("d1", sampling=GREEDY, timeout=1), grpc.StatusCode.DEADLINE_EXCEEDED)
    assert message
    await reference(llama, max_tokens=3)
    assert tiny_stats(await remote(llama).client.status()).active == 0

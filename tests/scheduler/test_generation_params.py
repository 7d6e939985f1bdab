"""generation_params: a generation model's request (inputs, sampling_parameters JSON, request
parameters) -> GenerateRequest. Pure: every kind of bad input is one case, refused with
INVALID_ARGUMENT naming the field; the good forms give the values asked for."""

from __future__ import annotations

import json
import struct

import pytest
from text_testkit import CONTEXT, flag, llama, text

from mlos.inference import grpc_service_pb2 as pb
from mlos_common.errors import InvalidArgument
from mlos_common.shm import ShmSpan
from mlos_scheduler import generation_params as gp
from mlos_scheduler.domain import InferRequest, ModelInfo, Sampling, Tensor
from mlos_scheduler.errors import BadRequest
from mlos_scheduler.request_params import MAX_TIMEOUT_US


def request(*inputs: Tensor, outputs: tuple[str, ...] = ()) -> InferRequest:
    return InferRequest("tiny", "", "req-1", list(inputs), list(outputs), priority=2, timeout_us=5_000, deadline=12.5)


def sampling_request(obj_or_text) -> InferRequest:
    source = obj_or_text if isinstance(obj_or_text, bytes) else json.dumps(obj_or_text).encode()
    return request(text(gp.TEXT_INPUT, b"Hello"), text(gp.SAMPLING, source))


def params(**values: pb.InferParameter) -> dict[str, pb.InferParameter]:
    return dict(values)


def refused(req: InferRequest, *words: str, model: ModelInfo | None = None, parameters=None) -> str:
    with pytest.raises(InvalidArgument) as info:
        gp.generate_request(model or llama(), req, parameters or {})
    assert info.value.code == "INVALID_ARGUMENT"
    for w in words:
        assert w in info.value.message, info.value.message
    return info.value.message


# ---- good requests ----


def test_prompt_alone_takes_the_defaults_and_the_request_fields() -> None:
    g = gp.generate_request(llama(), request(text(gp.TEXT_INPUT, "Grüß dich".encode())), {})
    assert g.prompt == "Grüß dich".encode()
    assert g.sampling == Sampling()
    assert (g.model, g.version, g.id, g.stream) == ("tiny", "", "req-1", False)
    assert (g.priority, g.timeout_us, g.deadline, g.first_token_timeout_us, g.empty_final) == (2, 5_000, 12.5, 0, False)


def test_every_sampling_key_and_parameter_reaches_the_request() -> None:
    source = json.dumps({"max_tokens": CONTEXT, "temperature": 0, "top_p": 0.9, "top_k": 40,
                         "seed": (1 << 64) - 1, "stop": ["\n", "END"]}).encode()
    req = request(text(gp.TEXT_INPUT, b"Hi"), flag(1), text(gp.SAMPLING, source), outputs=(gp.TEXT_OUTPUT,))
    g = gp.generate_request(llama(), req, params(
        first_token_timeout=pb.InferParameter(uint64_param=250_000),
        triton_enable_empty_final_response=pb.InferParameter(bool_param=True),
    ))
    assert g.sampling == Sampling(max_tokens=CONTEXT, temperature=0.0, top_p=0.9, top_k=40, seed=(1 << 64) - 1,
                                  stop=("\n", "END"))
    assert g.stream and g.empty_final and g.first_token_timeout_us == 250_000


def test_a_single_stop_string_and_blank_sampling_text() -> None:
    assert gp.generate_request(llama(), sampling_request({"stop": "###"}), {}).sampling.stop == ("###",)
    assert gp.generate_request(llama(), sampling_request(b"  \n"), {}).sampling == Sampling()
    assert gp.generate_request(llama(), request(text(gp.TEXT_INPUT, b"x"), flag(0)), {}).stream is False


def test_prompt_may_be_shaped_1x1() -> None:
    assert gp.generate_request(llama(), request(text(gp.TEXT_INPUT, b"x", shape=(1, 1))), {}).prompt == b"x"


def test_context_limit_comes_from_the_serving_config_else_the_file_else_the_field() -> None:
    assert gp.context_limit(llama(64, (("context_length", "2048"),))) == 64
    assert gp.context_limit(llama(0, (("context_length", "2048"),))) == 2048
    assert gp.context_limit(llama(0, (("context_length", "many"),))) == gp.MAX_TOKENS_CAP
    assert gp.context_limit(llama(0)) == gp.MAX_TOKENS_CAP
    over_file = sampling_request({"max_tokens": 2049})
    refused(over_file, "sampling_parameters.max_tokens must be in [1, 2048], got 2049",
            model=llama(0, (("context_length", "2048"),)))


# ---- inputs ----


def test_text_input_is_required() -> None:
    refused(request(flag(1)), "needs input 'text_input'")


def test_text_input_must_be_utf8_and_the_offset_is_named() -> None:
    refused(request(text(gp.TEXT_INPUT, b"ok \xff\xfe")), "input 'text_input'", "UTF-8", "byte offset 3")


def test_text_input_lone_surrogate_bytes_are_not_utf8() -> None:
    refused(request(text(gp.TEXT_INPUT, "a\ud800".encode("utf-8", "surrogatepass"))), "'text_input'", "byte offset 1")


def test_text_input_must_be_bytes() -> None:
    refused(request(Tensor(gp.TEXT_INPUT, "FP32", (1,), b"\0" * 4)), "input 'text_input' must be BYTES, got FP32")


def test_text_input_must_hold_one_element() -> None:
    two = Tensor(gp.TEXT_INPUT, "BYTES", (2,), struct.pack("<I", 1) + b"a" + struct.pack("<I", 1) + b"b")
    refused(request(two), "input 'text_input' must hold one element", "[2]")


def test_text_input_with_a_broken_bytes_layout() -> None:
    refused(request(Tensor(gp.TEXT_INPUT, "BYTES", (1,), struct.pack("<I", 99) + b"short")), "'text_input'", "99")


def test_stream_must_be_bool() -> None:
    refused(request(text(gp.TEXT_INPUT, b"x"), Tensor(gp.STREAM, "INT32", (1,), b"\1\0\0\0")),
            "input 'stream' must be BOOL, got INT32")


def test_stream_byte_must_be_0_or_1() -> None:
    refused(request(text(gp.TEXT_INPUT, b"x"), flag(7)), "input 'stream'", "0 or 1, got 7")


def test_stream_must_hold_one_byte() -> None:
    refused(request(text(gp.TEXT_INPUT, b"x"), Tensor(gp.STREAM, "BOOL", (1,), b"\1\1")), "input 'stream'", "1 byte")


def test_tensor_inputs_on_a_generation_model_name_the_input_and_the_accepted_ones() -> None:
    refused(request(text(gp.TEXT_INPUT, b"x"), Tensor("X", "FP32", (1, 4), b"\0" * 16)),
            "has no input 'X'", "['text_input', 'stream', 'sampling_parameters']")


def test_an_input_given_twice() -> None:
    refused(request(text(gp.TEXT_INPUT, b"x"), text(gp.TEXT_INPUT, b"y")), "input 'text_input' is given twice")


def test_outputs_other_than_text_output() -> None:
    refused(request(text(gp.TEXT_INPUT, b"x"), outputs=("logits",)), "no outputs ['logits']", "text_output")


def test_text_output_in_shared_memory() -> None:
    req = request(text(gp.TEXT_INPUT, b"x"), outputs=(gp.TEXT_OUTPUT,))
    req.output_windows = {gp.TEXT_OUTPUT: ShmSpan("/k", 0, 64)}
    refused(req, "'text_output'", "shared memory")


# ---- sampling_parameters ----

BAD_SAMPLING = [
    (b'{"max_tokens": 5', ["sampling_parameters is not valid JSON"]),
    (b"[1, 2]", ["sampling_parameters must be a JSON object, got list"]),
    (b'"greedy"', ["must be a JSON object, got str"]),
    (b'{"max_tokens": 5, "max_tokens": 6}', ["key 'max_tokens' twice"]),
    (b'{"temperature": NaN}', ["NaN is not a JSON number"]),
    (b'{"temperature": -Infinity}', ["-Infinity is not a JSON number"]),
    (b'{"temperature": 1e999}', ["sampling_parameters.temperature must be a finite number"]),
    (b"[" * 100_000 + b"]" * 100_000, ["not valid JSON"]),
    ({"beam_width": 4}, ["unknown keys ['beam_width']", "max_tokens"]),
    ({"max_tokens": True}, ["sampling_parameters.max_tokens must be an integer, got true"]),
    ({"max_tokens": 3.0}, ["sampling_parameters.max_tokens must be an integer, got 3.0"]),
    ({"max_tokens": "8"}, ["sampling_parameters.max_tokens must be an integer"]),
    ({"max_tokens": 0}, ["sampling_parameters.max_tokens must be in [1, 128], got 0"]),
    ({"max_tokens": CONTEXT + 1}, [f"sampling_parameters.max_tokens must be in [1, {CONTEXT}], got {CONTEXT + 1}"]),
    ({"temperature": -0.1}, ["sampling_parameters.temperature must be in [0, 5], got -0.1"]),
    ({"temperature": 5.5}, ["sampling_parameters.temperature must be in [0, 5], got 5.5"]),
    ({"temperature": False}, ["sampling_parameters.temperature must be a number, got false"]),
    ({"temperature": 10 ** 400}, ["sampling_parameters.temperature must be a finite number"]),
    ({"top_p": 0}, ["sampling_parameters.top_p must be in (0, 1], got 0"]),
    ({"top_p": 1.5}, ["sampling_parameters.top_p must be in (0, 1], got 1.5"]),
    ({"top_p": None}, ["sampling_parameters.top_p must be a number, got null"]),
    ({"top_k": -1}, ["sampling_parameters.top_k must be in [0,", "got -1"]),
    ({"top_k": 2.5}, ["sampling_parameters.top_k must be an integer"]),
    ({"seed": -1}, ["sampling_parameters.seed must be in [0, 18446744073709551615], got -1"]),
    ({"seed": 1 << 64}, ["sampling_parameters.seed must be in", str(1 << 64)]),
    ({"stop": 5}, ["sampling_parameters.stop must be a string or a list of strings, got 5"]),
    ({"stop": ["a"] * 9}, ["sampling_parameters.stop holds at most 8 strings, got 9"]),
    ({"stop": [""]}, ["sampling_parameters.stop[0] must have 1 to 256 characters, got 0"]),
    ({"stop": ["ok", "x" * 257]}, ["sampling_parameters.stop[1] must have 1 to 256 characters, got 257"]),
    ({"stop": ["ok", 3]}, ["sampling_parameters.stop[1] must be a string, got 3"]),
    (b'{"stop": "\xff"}', ["input 'sampling_parameters' is not valid UTF-8", "byte offset 10"]),
]


@pytest.mark.parametrize("source,words", BAD_SAMPLING, ids=[str(i) for i in range(len(BAD_SAMPLING))])
def test_bad_sampling_parameters_are_named(source, words) -> None:
    refused(sampling_request(source), *words)


def test_sampling_parameters_must_hold_one_element() -> None:
    refused(request(text(gp.TEXT_INPUT, b"x"), text(gp.SAMPLING, b"{}", shape=(1, 2))),
            "input 'sampling_parameters' must hold one element")


def test_sampling_keys_from_rest_parameters_are_named_as_such() -> None:
    with pytest.raises(BadRequest, match=r"parameters\.top_p must be in \(0, 1\], got 2"):
        gp.sampling({"top_p": 2}, llama(), where="parameters")


# ---- request parameters ----

BAD_PARAMS = [
    ("first_token_timeout", pb.InferParameter(string_param="1s"), "parameter 'first_token_timeout' must be an integer"),
    ("first_token_timeout", pb.InferParameter(int64_param=-1), "parameter 'first_token_timeout' must not be negative"),
    ("first_token_timeout", pb.InferParameter(int64_param=MAX_TIMEOUT_US + 1),
     f"parameter 'first_token_timeout' must be at most {MAX_TIMEOUT_US}"),
    ("triton_enable_empty_final_response", pb.InferParameter(int64_param=1),
     "parameter 'triton_enable_empty_final_response' must be a boolean"),
]


@pytest.mark.parametrize("name,value,words", BAD_PARAMS)
def test_bad_generation_parameters_are_named(name, value, words) -> None:
    refused(request(text(gp.TEXT_INPUT, b"x")), words, parameters={name: value})

"""Generation responses at the front door: text_output BYTES [1] with the decoupled final flag
when asked, and the REST generate extension's body as the infer message it becomes."""

from __future__ import annotations

import numpy as np
import pytest
from text_testkit import llama

from mlos.inference import grpc_service_pb2 as pb
from mlos_common.errors import InvalidArgument
from mlos_common.tensors import array_from_raw
from mlos_scheduler import convert, generation_convert, generation_door
from mlos_scheduler.rest_generate import generate_message


def text_of(response: pb.ModelInferResponse) -> bytes:
    (out,) = response.outputs
    assert (out.name, out.datatype, list(out.shape)) == ("text_output", "BYTES", [1])
    return bytes(array_from_raw(out.name, out.datatype, tuple(out.shape), response.raw_output_contents[0])[0])


def test_text_responses_carry_the_final_flag_only_when_asked() -> None:
    m = llama()
    unary = generation_convert.text_response(m, "r1", "héllo".encode())
    assert text_of(unary) == "héllo".encode() and unary.id == "r1" and unary.model_version == "1"
    assert "triton_final_response" not in unary.parameters
    for final in (False, True):
        r = generation_convert.text_response(m, "r2", b"", final)
        assert text_of(r) == b"" and r.parameters["triton_final_response"].bool_param is final
    end = generation_convert.empty_final_response(m, "r3")
    assert not end.outputs and not end.raw_output_contents and end.id == "r3"
    assert end.parameters["triton_final_response"].bool_param is True


def test_text_result_is_an_ordinary_bytes_tensor() -> None:
    result = generation_door.text_result(llama(), "r", b"abc")
    response = convert.infer_response(result)
    assert array_from_raw("t", "BYTES", (1,), response.raw_output_contents[0]).tolist() == [b"abc"]


# ---- REST generate extension bodies ----


def test_generate_body_becomes_the_infer_message() -> None:
    body = {"id": "g1", "text_input": "Hi", "stream": True, "sampling_parameters": '{"seed": 3}',
            "parameters": {"priority": 2, "first_token_timeout": 5000}}
    msg, sampling = generate_message(body, "tiny", "")
    assert sampling == {} and msg.id == "g1"
    assert [(t.name, t.datatype, list(t.shape)) for t in msg.inputs] == [
        ("text_input", "BYTES", [1]), ("stream", "BOOL", [1]), ("sampling_parameters", "BYTES", [1])]
    assert msg.raw_input_contents[1] == b"\x01"
    assert array_from_raw("s", "BYTES", (1,), msg.raw_input_contents[2]).tolist() == [b'{"seed": 3}']
    assert msg.parameters["priority"].int64_param == 2 and msg.parameters["first_token_timeout"].int64_param == 5000


def test_generate_sampling_keys_may_come_in_parameters() -> None:
    msg, sampling = generate_message({"text_input": "Hi", "parameters": {"temperature": 0, "stream": False}}, "m", "")
    assert sampling == {"temperature": 0}
    assert [t.name for t in msg.inputs] == ["text_input", "stream"] and "temperature" not in msg.parameters


@pytest.mark.parametrize("body,words", [
    ({"text_input": "x", "prompt": "y"}, ["unknown fields ['prompt']", "text_input"]),
    ({}, ["text_input must be a string"]),
    ({"text_input": ["x"]}, ["text_input must be a string"]),
    ({"text_input": "x", "id": 3}, ["id must be a string"]),
    ({"text_input": "x", "stream": "yes"}, ["stream must be true or false"]),
    ({"text_input": "x", "parameters": {"stream": 1}}, ["stream must be true or false"]),
    ({"text_input": "x", "sampling_parameters": {"seed": 1}}, ["sampling_parameters must be a string"]),
    ({"text_input": "x", "sampling_parameters": "{}", "parameters": {"seed": 1}}, ["['seed']", "give them once"]),
    ({"text_input": "x", "parameters": [1]}, ["parameters must be a JSON object"]),
    ({"text_input": "x", "parameters": {"priority": [1]}}, ["parameter 'priority'"]),
])
def test_bad_generate_bodies_are_named(body, words) -> None:
    with pytest.raises(InvalidArgument) as info:
        generate_message(body, "tiny", "")
    for w in words:
        assert w in info.value.message, info.value.message


def test_a_lone_surrogate_travels_as_bytes_to_the_utf8_check() -> None:
    msg, _ = generate_message({"text_input": "a\ud800"}, "tiny", "")
    raw = np.frombuffer(msg.raw_input_contents[0], np.uint8)
    assert raw.tobytes()[4:] == "a\ud800".encode("utf-8", "surrogatepass")

"""The front door's routing between tensor models and generation models, on the real stack:
text inputs sent to an ONNX model are refused naming the input and the model's inputs (gRPC and
REST), the generate extension refuses tensor models, and JSON text that is not valid Unicode
reaches the model's checks instead of failing the server."""

from __future__ import annotations

import json

import grpc
import httpx
import numpy as np
import pytest
from sched_testkit import Stack, expect_error, still_serves

from mlos.inference import grpc_service_pb2 as pb
from mlos_common.tensors import encode_bytes

pytestmark = pytest.mark.asyncio(loop_scope="session")


def prompt_request(model: str) -> pb.ModelInferRequest:
    msg = pb.ModelInferRequest(model_name=model)
    msg.inputs.add(name="text_input", datatype="BYTES", shape=[1])
    msg.raw_input_contents.append(encode_bytes(np.array([b"Hello"], dtype=object)))
    return msg


async def test_text_input_to_an_onnx_model_names_the_input_and_the_models_inputs(stack: Stack) -> None:
    message = await expect_error(stack, prompt_request("iris"), grpc.StatusCode.INVALID_ARGUMENT)
    assert "has no input 'text_input'" in message and "['X']" in message, message
    await still_serves(stack)


async def test_text_input_to_an_onnx_model_over_rest(http: httpx.AsyncClient) -> None:
    body = {"inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [1], "data": ["Hello"]}]}
    resp = await http.post("/v2/models/iris/infer", json=body)
    assert resp.status_code == 400 and "'text_input'" in resp.json()["error"] and "['X']" in resp.json()["error"]


@pytest.mark.parametrize("route", ["generate", "generate_stream"])
async def test_generate_extension_refuses_a_tensor_model(http: httpx.AsyncClient, route: str) -> None:
    resp = await http.post(f"/v2/models/iris/{route}", json={"text_input": "Hello"})
    assert resp.status_code == 400, resp.text
    assert "model 'iris' does not generate text" in resp.json()["error"] and "/v2/models/iris/infer" in resp.json()["error"]


async def test_generate_extension_on_an_unknown_model_is_404(http: httpx.AsyncClient) -> None:
    resp = await http.post("/v2/models/no_such_llm/generate", json={"text_input": "Hello"})
    assert resp.status_code == 404, resp.text


async def test_generate_extension_bad_body_is_400(http: httpx.AsyncClient) -> None:
    resp = await http.post("/v2/models/iris/generate", content=b'{"text_input": ')
    assert resp.status_code == 400 and "not valid JSON" in resp.json()["error"]


async def test_a_lone_surrogate_in_json_text_is_the_models_business_not_a_500(http: httpx.AsyncClient) -> None:
    body = json.dumps({"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1], "data": ["a\ud800"]}]})
    resp = await http.post("/v2/models/str_identity/infer", content=body.encode())
    assert resp.status_code == 400, resp.text
    assert "input 'x'" in resp.json()["error"] and "not UTF-8" in resp.json()["error"]

"""Request parameters `priority`, `timeout` and `best_effort`: every bad kind is refused with
INVALID_ARGUMENT naming the parameter, over gRPC (unary and stream) and REST, and the server keeps
serving; the good forms reach the scheduler's request."""

from __future__ import annotations

import asyncio
import json

import grpc
import httpx
import numpy as np
import pytest
from sched_testkit import Stack, expect_error, infer_request, still_serves

from mlos.inference import grpc_service_pb2 as pb
from mlos_scheduler import convert
from mlos_scheduler.errors import BadRequest
from mlos_scheduler.request_params import MAX_PRIORITY, MAX_TIMEOUT_US, RequestParams, parse

pytestmark = pytest.mark.asyncio(loop_scope="session")

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


def with_param(name: str, field: str | None, value=None) -> pb.ModelInferRequest:
    req = infer_request("iris", {"X": np.array([IRIS_ROW], np.float32)})
    if field is None:
        req.parameters[name].SetInParent()  # present, no value
    else:
        setattr(req.parameters[name], field, value)
    return req


BAD_GRPC = [
    ("priority", "bool_param", True, "integer"),
    ("priority", "double_param", 1.0, "integer"),
    ("priority", "string_param", "1", "integer"),
    ("priority", "int64_param", -1, "must not be negative"),
    ("priority", "int64_param", MAX_PRIORITY + 1, f"at most {MAX_PRIORITY}"),
    ("priority", "uint64_param", (1 << 64) - 1, f"at most {MAX_PRIORITY}"),
    ("timeout", "bool_param", False, "integer"),
    ("timeout", "double_param", 0.5, "integer"),
    ("timeout", "string_param", "soon", "integer"),
    ("timeout", "int64_param", -5, "must not be negative"),
    ("timeout", "int64_param", MAX_TIMEOUT_US + 1, f"at most {MAX_TIMEOUT_US}"),
    ("best_effort", "int64_param", 1, "boolean"),
    ("best_effort", "uint64_param", 0, "boolean"),
    ("best_effort", "string_param", "true", "boolean"),
    ("best_effort", "double_param", 1.0, "boolean"),
    ("some_flag", None, None, "no value"),
]


@pytest.mark.parametrize("name,field,value,words", BAD_GRPC)
async def test_bad_parameter_is_invalid_and_named(stack: Stack, name, field, value, words) -> None:
    msg = await expect_error(stack, with_param(name, field, value), grpc.StatusCode.INVALID_ARGUMENT)
    assert f"parameter {name!r}" in msg and words in msg, msg
    await still_serves(stack)


async def test_stream_refuses_a_bad_parameter_and_goes_on(stack: Stack) -> None:
    bad = with_param("best_effort", "string_param", "yes")
    bad.id = "bad"
    good = with_param("best_effort", "bool_param", True)
    good.id = "good"

    async def gen():
        for r in (bad, good):
            yield r

    call = stack.stub.ModelStreamInfer(gen(), timeout=30)
    replies = {r.infer_response.id or "bad": r async for r in call}
    assert replies["bad"].error_message.startswith("INVALID_ARGUMENT: parameter 'best_effort'"), replies["bad"]
    assert not replies["good"].error_message
    assert await call.code() == grpc.StatusCode.OK


@pytest.mark.parametrize(
    "name,field,value",
    [("priority", "uint64_param", 1), ("priority", "int64_param", 2), ("timeout", "uint64_param", 30_000_000),
     ("best_effort", "bool_param", True), ("best_effort", "bool_param", False), ("sequence_start", "bool_param", False)],
)
async def test_good_parameter_forms_are_served(stack: Stack, name, field, value) -> None:
    """uint64 is what tritonclient sends for priority; unknown parameters with a value pass."""
    resp = await stack.stub.ModelInfer(with_param(name, field, value), timeout=30)
    assert resp.model_name == "iris"


async def test_parameters_reach_the_request() -> None:
    loop = asyncio.get_running_loop()
    msg = with_param("best_effort", "bool_param", True)
    msg.parameters["priority"].uint64_param = 2
    msg.parameters["timeout"].int64_param = 20_000
    now = loop.time()
    req = convert.infer_request(msg, 5.0, now)
    assert (req.priority, req.timeout_us, req.best_effort) == (2, 20_000, True)
    assert req.deadline == pytest.approx(now + 0.02)  # the tighter of timeout and gRPC deadline
    assert convert.infer_request(with_param("timeout", "int64_param", 0), 0.5, now).deadline == pytest.approx(now + 0.5)


async def test_bounds_are_inclusive() -> None:
    params = {"priority": pb.InferParameter(int64_param=MAX_PRIORITY),
              "timeout": pb.InferParameter(uint64_param=MAX_TIMEOUT_US)}  # fmt: skip
    assert parse(params) == RequestParams(MAX_PRIORITY, MAX_TIMEOUT_US, False)
    assert parse({}) == RequestParams()
    with pytest.raises(BadRequest, match="'timeout'"):
        parse({"timeout": pb.InferParameter(uint64_param=MAX_TIMEOUT_US + 1)})


BAD_REST = [
    ("priority", True, "integer"),
    ("priority", 1.5, "integer"),
    ("priority", 2.0, "integer"),
    ("priority", "1", "integer"),
    ("priority", -3, "must not be negative"),
    ("priority", MAX_PRIORITY + 1, f"at most {MAX_PRIORITY}"),
    ("priority", None, "must be a boolean, number or string"),
    ("timeout", "100", "integer"),
    ("timeout", 1e3, "integer"),
    ("timeout", -1, "must not be negative"),
    ("timeout", MAX_TIMEOUT_US * 2, f"at most {MAX_TIMEOUT_US}"),
    ("timeout", 1 << 64, "64-bit range"),
    ("best_effort", 1, "boolean"),
    ("best_effort", "true", "boolean"),
    ("best_effort", [True], "must be a boolean, number or string"),
]


@pytest.mark.parametrize("name,value,words", BAD_REST)
async def test_bad_rest_parameter_is_400_and_named(stack: Stack, http: httpx.AsyncClient, name, value, words) -> None:
    body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": IRIS_ROW}], "parameters": {name: value}}
    resp = await http.post("/v2/models/iris/infer", content=json.dumps(body).encode())
    assert resp.status_code == 400, resp.text
    message = resp.json()["error"]
    assert f"parameter {name!r}" in message and words in message, message
    await still_serves(stack)


async def test_good_rest_parameters_are_served(http: httpx.AsyncClient) -> None:
    body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": IRIS_ROW}],
            "parameters": {"priority": 1, "timeout": 10_000_000, "best_effort": True}}  # fmt: skip
    resp = await http.post("/v2/models/iris/infer", content=json.dumps(body).encode())
    assert resp.status_code == 200, resp.text
    assert resp.json()["model_name"] == "iris"

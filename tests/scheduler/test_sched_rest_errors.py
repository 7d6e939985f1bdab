"""KServe v2 REST refusals: each kind of bad input gets its HTTP status and a JSON message that
says what to fix; the server answers the next request as usual."""

from __future__ import annotations

import gzip
import json

import httpx
import numpy as np
import pytest
from sched_testkit import Stack

from mlos_common.errors import DeadlineExceeded, NotFound, ResourceExhausted, Unavailable
from mlos_scheduler.rest import HTTP_STATUS, RestApp, RestServer, error_response, start_rest

pytestmark = pytest.mark.asyncio(loop_scope="session")

HEADER = "Inference-Header-Content-Length"
IRIS = "/v2/models/iris/infer"
ROW = [5.1, 3.5, 1.4, 0.2]


def iris_input(**fields) -> dict:
    return {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": ROW, **fields}]}


def binary_iris(size_param, payload: bytes, header_length: str | None = None) -> tuple[bytes, dict]:
    head = json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4],
                                   "parameters": {"binary_data_size": size_param}}]}).encode()
    return head + payload, {HEADER: header_length if header_length is not None else str(len(head))}


async def expect(resp: httpx.Response, status: int, *words: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    message = resp.json()["error"]
    for word in words:
        assert word in message, message


async def test_status_mapping_of_typed_errors() -> None:
    assert HTTP_STATUS[NotFound.code] == 404
    assert HTTP_STATUS[ResourceExhausted.code] == 429
    assert HTTP_STATUS[Unavailable.code] == 503
    assert HTTP_STATUS[DeadlineExceeded.code] == 504
    assert json.loads(error_response(429, "queue full").body) == {"error": "queue full"}


@pytest.mark.parametrize(
    "body,status,words",
    [
        (b"{not json", 400, ["not valid JSON"]),
        (b"[1, 2]", 400, ["JSON object"]),
        (b"\xff\xfe", 400, ["not valid JSON"]),
        (b"[" * 100_000 + b"]" * 100_000, 400, ["not valid JSON"]),
        (json.dumps({"inputs": {"X": 1}}).encode(), 400, ["inputs must be a JSON array"]),
        (json.dumps({"inputs": [{"datatype": "FP32", "shape": [1], "data": [1]}]}).encode(), 400, ["name"]),
        (json.dumps(iris_input(shape=[1, -4])).encode(), 400, ["shape dimension", "-4"]),
        (json.dumps(iris_input(shape="1,4")).encode(), 400, ["shape must be a JSON array"]),
        (json.dumps(iris_input(datatype="FLOAT")).encode(), 400, ["unknown datatype", "FLOAT"]),
        (json.dumps(iris_input(datatype="FP64", data=ROW)).encode(), 400, ["FP64"]),
        (json.dumps(iris_input(data=["a", "b", "c", "d"])).encode(), 400, ["FP32 data must be numbers"]),
        (json.dumps(iris_input(data=[1, 2, 3])).encode(), 400, ["needs 4 values, got 3"]),
        (json.dumps(iris_input(data=[[1, 2], [3]])).encode(), 400, ["rectangular"]),
        (json.dumps(iris_input(datatype="INT8", data=[1, 2, 3, 300])).encode(), 400, ["do not fit INT8"]),
        (json.dumps(iris_input(datatype="INT64", data=[1.5, 2, 3, 4])).encode(), 400, ["must be integers"]),
        (json.dumps(iris_input(datatype="BF16")).encode(), 400, ["binary data"]),
        (json.dumps(iris_input(datatype="BYTES", data=[1, 2, 3, 4])).encode(), 400, ["strings"]),
        (json.dumps(iris_input(shape=[1 << 20, 1 << 20])).encode(), 400, ["over the limit"]),
        (json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4]}]}).encode(), 400, ["neither data"]),
        (json.dumps({**iris_input(), "id": 7}).encode(), 400, ["id must be a string"]),
        (json.dumps({**iris_input(), "parameters": {"priority": -1}}).encode(), 400, ["must not be negative"]),
        (json.dumps({**iris_input(), "parameters": {"priority": [1]}}).encode(), 400, ["parameter 'priority'"]),
        (json.dumps({**iris_input(), "parameters": {"binary_data_output": "yes"}}).encode(), 400, ["true or false"]),
        (json.dumps({**iris_input(), "outputs": [{"name": "nope"}]}).encode(), 400, ["no outputs", "nope"]),
        (json.dumps({**iris_input(), "outputs": [{"name": "label", "parameters": {"classification": 2}}]}).encode(),
         501, ["classification"]),
        (json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "parameters": {
            "shared_memory_region": "r", "shared_memory_byte_size": 16}}]}).encode(), 404, ["no shared memory region",
                                                                                      "'r'"]),
    ],
)
async def test_bad_json_requests(http: httpx.AsyncClient, body: bytes, status: int, words: list[str]) -> None:
    await expect(await http.post(IRIS, content=body, headers={"content-type": "application/json"}), status, *words)


@pytest.mark.parametrize(
    "size,payload,header_length,words",
    [
        (16, b"\0" * 16, "999999", [HEADER, "only"]),
        (16, b"\0" * 16, "-5", [HEADER, "non-negative"]),
        (16, b"\0" * 16, "ten", [HEADER, "non-negative"]),
        (16, b"\0" * 16, "3", ["not valid JSON"]),
        (-16, b"\0" * 16, None, ["binary_data_size", "non-negative"]),
        ("16", b"\0" * 16, None, ["binary_data_size", "non-negative"]),
        (1 << 62, b"\0" * 16, None, ["runs past the body"]),
        (16, b"\0" * 8, None, ["runs past the body"]),
        (16, b"\0" * 20, None, ["4 bytes of binary data are not claimed"]),
        (8, b"\0" * 8, None, ["needs 16 bytes, got 8"]),
    ],
)
async def test_bad_binary_requests(http: httpx.AsyncClient, size, payload, header_length, words) -> None:
    body, headers = binary_iris(size, payload, header_length)
    await expect(await http.post(IRIS, content=body, headers=headers), 400, *words)


async def test_data_and_binary_size_together(http: httpx.AsyncClient) -> None:
    body = iris_input(parameters={"binary_data_size": 16})
    head = json.dumps(body).encode()
    resp = await http.post(IRIS, content=head + b"\0" * 16, headers={HEADER: str(len(head))})
    await expect(resp, 400, "both data and binary_data_size")


@pytest.mark.parametrize(
    "method,path,status,words",
    [
        ("POST", "/v2/models/nope/infer", 404, ["nope"]),
        ("GET", "/v2/models/nope", 404, ["nope"]),
        ("GET", "/v2/models/nope/config", 404, ["nope"]),
        ("GET", "/v2/models/nope/stats", 404, ["nope"]),
        ("GET", "/v2/models/iris/versions/x", 400, ["version must be an integer"]),
        ("GET", "/v2/models/iris/versions/0/config", 400, ["positive"]),
        ("POST", "/v2/repository/models/nope/load", 404, ["nope"]),
        ("POST", "/v2/repository/models/nope/unload", 404, ["nope"]),
        ("GET", "/v2/no/such/thing", 404, ["Not Found"]),
        ("DELETE", "/v2/models/iris", 405, ["Method Not Allowed"]),
        ("GET", "/v2/models/iris/infer", 405, ["Method Not Allowed"]),
    ],
)
async def test_unknown_things(http: httpx.AsyncClient, method: str, path: str, status: int, words) -> None:
    await expect(await http.request(method, path, json=iris_input() if method == "POST" else None), status, *words)


async def test_repository_bodies(http: httpx.AsyncClient) -> None:
    await expect(await http.post("/v2/repository/index", content=b"{bad"), 400, "not valid JSON")
    await expect(await http.post("/v2/repository/index", json={"ready": "yes"}), 400, "'ready'")
    bad_config = {"parameters": {"config": json.dumps({"instance_group": [{"count": 2}]})}}
    await expect(await http.post("/v2/repository/models/iris/load", json=bad_config), 400, "'instance_group'")
    files = {"parameters": {"config": "{}", "file:1/model.onnx": "AAAA"}}
    await expect(await http.post("/v2/repository/models/iris/load", json=files), 501, "'file:1/model.onnx'")
    await expect(await http.post("/v2/repository/models/iris/load", json={"parameters": {"config": ["x"]}}), 400,
                 "'config'")
    await expect(await http.post("/v2/repository/models/iris/load", json={"parameters": 3}), 400, "JSON object")


async def test_body_over_the_message_limit_is_413(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"http_port": 0, "max_message_bytes": 1024})
    port, close = await start_rest(settings, stack.core)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            big = iris_input(data=ROW, shape=[1, 4])
            big["id"] = "x" * 2000
            await expect(await client.post(IRIS, json=big), 413, "Maximum request body size 1024")
            ok = await client.post(IRIS, json=iris_input())
            assert ok.status_code == 200, ok.text
    finally:
        await close()


async def test_port_in_use_is_a_clear_error(stack: Stack) -> None:
    server = RestServer(RestApp(stack.core, _no_modes), max_body_bytes=1024, observe=lambda *_: None)
    port = await server.start("127.0.0.1", 0)
    try:
        other = RestServer(RestApp(stack.core, _no_modes), max_body_bytes=1024, observe=lambda *_: None)
        with pytest.raises(RuntimeError, match=f"cannot bind the REST port 127.0.0.1:{port}"):
            await other.start("127.0.0.1", port)
    finally:
        await server.close()


async def test_server_goes_on_after_bad_requests(http: httpx.AsyncClient, stack: Stack) -> None:
    for body in (b"{", b"[]", b"\0" * 64):
        assert (await http.post(IRIS, content=body)).status_code == 400
    resp = await http.post(IRIS, json=iris_input())
    assert resp.status_code == 200
    label = resp.json()["outputs"][0]
    assert label["name"] in ("label", "probabilities")
    assert np.isfinite(np.asarray(resp.json()["outputs"][1]["data"], dtype=float)).all()


async def _no_modes() -> dict[str, str]:
    return {}


async def test_deadline_exceeded_is_504(http: httpx.AsyncClient, stack: Stack) -> None:
    """Triton's `timeout` parameter (microseconds): 1 us cannot be met."""
    feeds = stack.models["ocr_cls"].sample_inputs()
    body = {"inputs": [{"name": n, "datatype": "FP32", "shape": list(a.shape), "data": a.reshape(-1).tolist()}
                       for n, a in feeds.items()], "parameters": {"timeout": 1}}
    await expect(await http.post("/v2/models/ocr_cls/infer", json=body), 504)


async def test_compressed_bodies(stack: Stack) -> None:
    """gzip bodies (tritonclient's request_compression_algorithm) are read; the limit applies to the
    inflated size (no zip bomb); a body that is not what its Content-Encoding says is a 400."""
    settings = stack.settings.model_copy(update={"http_port": 0, "max_message_bytes": 4096})
    port, close = await start_rest(settings, stack.core)
    gz = {"content-encoding": "gzip"}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            ok = await client.post(IRIS, content=gzip.compress(json.dumps(iris_input()).encode()), headers=gz)
            assert ok.status_code == 200, ok.text
            bomb = gzip.compress(json.dumps({**iris_input(), "id": " " * (2 << 20)}).encode())
            assert len(bomb) < 4096
            await expect(await client.post(IRIS, content=bomb, headers=gz), 413, "Maximum request body size")
            await expect(await client.post(IRIS, content=b"not gzip at all", headers=gz), 400, "content-encoding")
    finally:
        await close()


async def test_load_with_config_over_rest(http: httpx.AsyncClient, stack: Stack) -> None:
    await stack.registry.register("iris_rest_cfg", stack.models["iris"].path)
    config = {"parameters": {"config": json.dumps({"max_batch_size": 3})}}
    assert (await http.post("/v2/repository/models/iris_rest_cfg/load", json=config)).status_code == 200
    assert (await http.get("/v2/models/iris_rest_cfg/config")).json()["max_batch_size"] == 3

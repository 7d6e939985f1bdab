"""System shared memory over KServe v2 REST, through the real stack (httpx on the REST port, the
gRPC front door beside it on the same registry): Triton's routes and bodies, inputs and outputs by
region checked against onnxruntime, regions shared across protocols, and every bad request kind
followed by a good one."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
import pytest_asyncio
from sched_testkit import Stack, assert_matches, ort_run, still_serves
from test_sched_rest import outputs_of
from test_sched_shm import iris_shm_request, register

from mlos.inference import grpc_service_pb2 as pb
from mlos_common.tensors import array_from_raw

pytestmark = pytest.mark.asyncio(loop_scope="session")

SHM = "/v2/systemsharedmemory"
REGION, OFFSET, BYTE_SIZE = "shared_memory_region", "shared_memory_offset", "shared_memory_byte_size"


def placed(region: str, byte_size: int, offset: int = 0) -> dict:
    params = {REGION: region, BYTE_SIZE: byte_size}
    return {**params, OFFSET: offset} if offset else params


def iris_body(x: np.ndarray, out_offset: int = 256, **input_params) -> dict:
    """X from region "in"; label into "out" at 0 and probabilities at `out_offset` (as tritonclient.http)."""
    return {
        "id": "rest-shm",
        "inputs": [{"name": "X", "datatype": "FP32", "shape": list(x.shape),
                    "parameters": {**placed("in", x.nbytes), **input_params}}],
        "outputs": [
            {"name": "label", "parameters": {"binary_data": False, **placed("out", 256)}},
            {"name": "probabilities", "parameters": {"binary_data": False, **placed("out", 256, out_offset)}},
        ],
    }


async def rest_register(http: httpx.AsyncClient, name: str, key: str, byte_size: int, offset: int = 0) -> None:
    resp = await http.post(f"{SHM}/region/{name}/register", json={"key": key, "offset": offset, "byte_size": byte_size})
    assert resp.status_code == 200, resp.text


async def expect(resp: httpx.Response, status: int, *words: str) -> None:
    assert resp.status_code == status, resp.text
    message = resp.json()["error"]
    for w in words:
        assert w in message, message


@pytest_asyncio.fixture(loop_scope="session")
async def clean(http: httpx.AsyncClient, stack: Stack):
    """Every test starts and ends with no region registered and no lease held."""
    assert (await http.post(f"{SHM}/unregister")).status_code == 200
    yield
    assert (await http.post(f"{SHM}/unregister")).status_code == 200
    assert len(stack.shm) == 0 and stack.shm.leases_held() == 0


async def iris_regions(http: httpx.AsyncClient, stack: Stack, shm_object, batch: int = 5):
    """Registers (over REST) "in" holding iris inputs and an empty 512-byte "out"; returns X, the
    feeds and out's handle."""
    feeds = stack.models["iris"].sample_inputs(batch=batch, seed=batch)
    x = feeds["X"]
    in_key, in_handle = shm_object(4096)
    out_key, out_handle = shm_object(4096)
    in_handle.buf[: x.nbytes] = x.tobytes()
    await rest_register(http, "in", in_key, x.nbytes)
    await rest_register(http, "out", out_key, 512)
    return x, feeds, out_handle


def iris_outputs(out_handle, batch: int, out_offset: int = 256) -> dict[str, np.ndarray]:
    buf = out_handle.buf
    return {
        "label": np.frombuffer(buf[: batch * 8], np.int64).copy(),
        "probabilities": np.frombuffer(buf[out_offset : out_offset + batch * 12], np.float32).copy().reshape(batch, 3),
    }


async def test_inputs_and_outputs_by_region_match_onnxruntime(http, stack: Stack, shm_object, clean) -> None:
    x, feeds, out_handle = await iris_regions(http, stack, shm_object)
    read_before = stack.metrics.get_sample_value("mlos_shm_read_bytes_total")

    resp = await http.post("/v2/models/iris/infer", json=iris_body(x))

    assert resp.status_code == 200, resp.text
    assert "Inference-Header-Content-Length" not in resp.headers  # no bytes travel in the body
    body = resp.json()
    assert body["id"] == "rest-shm"
    label, probs = body["outputs"]
    assert label == {"name": "label", "datatype": "INT64", "shape": [5], "parameters": placed("out", 256)}
    assert probs["parameters"] == placed("out", 256, 256) and "data" not in probs
    assert_matches(iris_outputs(out_handle, 5), ort_run(stack.models["iris"], feeds))
    assert stack.metrics.get_sample_value("mlos_shm_read_bytes_total") - read_before == x.nbytes


async def test_shared_memory_beside_json_and_binary_tensors(http, stack: Stack, shm_object, clean) -> None:
    """silero_vad: `state` from a region, `input` as JSON, `sr` as binary data; stateN into a region,
    `output` as binary data."""
    silero = stack.models["silero_vad"]
    feeds = silero.sample_inputs(seed=5)
    feeds["state"] = np.random.default_rng(5).standard_normal(feeds["state"].shape).astype(np.float32)
    state, sr = feeds["state"], feeds["sr"]
    key, handle = shm_object(4096)
    handle.buf[: state.nbytes] = state.tobytes()
    await rest_register(http, "s", key, 4096)
    header = json.dumps({
        "inputs": [
            {"name": "input", "datatype": "FP32", "shape": list(feeds["input"].shape),
             "data": feeds["input"].reshape(-1).tolist()},
            {"name": "state", "datatype": "FP32", "shape": list(state.shape), "parameters": placed("s", state.nbytes)},
            {"name": "sr", "datatype": "INT64", "shape": list(sr.shape), "parameters": {"binary_data_size": sr.nbytes}},
        ],
        "outputs": [{"name": "output", "parameters": {"binary_data": True}},
                    {"name": "stateN", "parameters": placed("s", state.nbytes, 2048)}],
    }).encode()
    resp = await http.post("/v2/models/silero_vad/infer", content=header + sr.tobytes(),
                           headers={"Inference-Header-Content-Length": str(len(header))})

    assert resp.status_code == 200, resp.text
    length = int(resp.headers["Inference-Header-Content-Length"])
    out = {o["name"]: o for o in json.loads(resp.content[:length])["outputs"]}
    assert out["stateN"]["parameters"] == placed("s", state.nbytes, 2048) and "data" not in out["stateN"]
    size = out["output"]["parameters"]["binary_data_size"]
    assert length + size == len(resp.content)  # only `output` travels in the body
    got = {
        "output": array_from_raw("output", "FP32", out["output"]["shape"], resp.content[length:]),
        "stateN": np.frombuffer(handle.buf[2048 : 2048 + state.nbytes], np.float32).copy().reshape(state.shape),
    }
    assert_matches(got, ort_run(silero, feeds))


async def test_status_and_unregister(http, stack: Stack, shm_object, clean) -> None:
    key, _ = shm_object(4096)
    await rest_register(http, "a", key, 1024)
    await rest_register(http, "b", key, 1024, offset=1024)
    status = (await http.get(f"{SHM}/status")).json()
    assert sorted(status, key=lambda r: r["name"]) == [
        {"name": "a", "key": key, "offset": 0, "byte_size": 1024},
        {"name": "b", "key": key, "offset": 1024, "byte_size": 1024},
    ]
    assert (await http.get(f"{SHM}/region/b/status")).json() == [{"name": "b", "key": key, "offset": 1024,
                                                                  "byte_size": 1024}]
    assert (await http.post(f"{SHM}/region/a/unregister")).status_code == 200
    await expect(await http.get(f"{SHM}/region/a/status"), 404, "no shared memory region named 'a'")
    assert (await http.post(f"{SHM}/region/never-registered/unregister")).status_code == 200  # no-op, as Triton
    assert [r["name"] for r in (await http.get(f"{SHM}/status")).json()] == ["b"]
    assert "system_shared_memory" in (await http.get("/v2")).json()["extensions"]


async def test_regions_are_shared_with_the_grpc_front_door(http, stack: Stack, shm_object, clean) -> None:
    """Registered over gRPC, used over REST; registered over REST, seen and used over gRPC."""
    feeds = stack.models["iris"].sample_inputs(batch=2, seed=12)
    x = feeds["X"]
    in_key, in_handle = shm_object(4096)
    out_key, out_handle = shm_object(4096)
    in_handle.buf[: x.nbytes] = x.tobytes()
    await register(stack, "in", in_key, x.nbytes)                  # gRPC
    await rest_register(http, "out", out_key, 512)                 # REST
    assert {r["name"] for r in (await http.get(f"{SHM}/status")).json()} == {"in", "out"}
    grpc_status = await stack.stub.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest(), timeout=10)
    assert grpc_status.regions["out"].key == out_key
    want = ort_run(stack.models["iris"], feeds)

    resp = await http.post("/v2/models/iris/infer", json=iris_body(x))
    assert resp.status_code == 200, resp.text
    assert_matches(iris_outputs(out_handle, 2), want)

    out_handle.buf[:512] = bytes(512)
    reply = await stack.stub.ModelInfer(iris_shm_request(x), timeout=30)
    assert list(reply.raw_output_contents) == [b"", b""]
    assert_matches(iris_outputs(out_handle, 2), want)
    await stack.stub.SystemSharedMemoryUnregister(pb.SystemSharedMemoryUnregisterRequest(name="out"), timeout=10)
    await expect(await http.post("/v2/models/iris/infer", json=iris_body(x)), 404, "'out'")


@pytest.mark.parametrize(
    "body,status,words",
    [
        (b"{not json", 400, ["not valid JSON"]),
        (b"[1, 2]", 400, ["JSON object"]),
        (None, 400, ['needs "key" and "byte_size"']),
        ({"key": 7, "byte_size": 64}, 400, ["key must be a non-empty string"]),
        ({"key": "", "byte_size": 64}, 400, ["key must be a non-empty string"]),
        ({"key": None, "offset": -1, "byte_size": 64}, 400, ["offset must be a non-negative integer"]),
        ({"key": None, "byte_size": "64"}, 400, ["byte_size must be a non-negative integer"]),
        ({"key": None, "byte_size": 64, "ofset": 8}, 400, ["unknown fields ['ofset']"]),
        ({"key": "/../etc/passwd", "byte_size": 64}, 400, ["one name"]),
        ({"key": "/mlos-no-such-object", "byte_size": 64}, 404, ["no POSIX shared memory object"]),
        ({"key": None, "byte_size": 4097}, 400, ["exceeds the object's size"]),
        ({"key": None, "offset": 4000, "byte_size": 200}, 400, ["exceeds the object's size"]),
        ({"key": None, "byte_size": 0}, 400, ["must be positive"]),
    ],
)
async def test_bad_register_then_good(http, stack: Stack, shm_object, clean, body, status, words) -> None:
    key, _ = shm_object(4096)
    if isinstance(body, dict) and "key" in body and body["key"] is None:
        body = {**body, "key": key}
    content = body if isinstance(body, bytes) else json.dumps(body if body is not None else {"offset": 0}).encode()
    await expect(await http.post(f"{SHM}/region/r/register", content=content), status, *words)
    await rest_register(http, "r", key, 4096)
    await expect(await http.post(f"{SHM}/region/r/register", json={"key": key, "byte_size": 64}), 409,
                 "already registered")
    assert (await http.get(f"{SHM}/region/r/status")).json()[0]["byte_size"] == 4096


def _bad_infers(x: np.ndarray) -> dict[str, tuple[dict, int, str]]:
    def body(input_params: dict | None = None, output_params: dict | None = None, **extra) -> dict:
        b = iris_body(x)
        b["inputs"][0]["parameters"].update(input_params or {})
        b["outputs"][1]["parameters"].update(output_params or {})
        for key in [k for k, v in (input_params or {}).items() if v is None]:
            del b["inputs"][0]["parameters"][key]
        b["inputs"][0].update(extra)
        return b

    return {
        "unknown input region": (body({REGION: "nope"}), 404, "no shared memory region named 'nope'"),
        "unknown output region": (body(output_params={REGION: "nope"}), 404, "'nope'"),
        "bad key type (region not a string)": (body({REGION: 7}), 400, "expected string_param"),
        "byte size as a string": (body({BYTE_SIZE: "16"}), 400, "expected int64_param"),
        "byte size missing": (body({BYTE_SIZE: None}), 400, "must be specified along"),
        "size not datatype x shape": (body({BYTE_SIZE: x.nbytes - 4}), 400, "needs"),
        "window past region": (body({OFFSET: 4}), 400, "exceeds the region"),
        "negative offset": (body({OFFSET: -8}), 400, "must not be negative"),
        "data too": (body(data=x.reshape(-1).tolist()), 400, "placed in shared memory and also carries data"),
        "binary data too": (body({"binary_data_size": x.nbytes}), 400, "placed in shared memory and also"),
        "output region too small": (
            body(output_params={BYTE_SIZE: 8}), 400, "output 'probabilities' (8 bytes) should be at least 60",
        ),
        "output window past region": (body(output_params={OFFSET: 500}), 400, "exceeds the region"),
    }


@pytest.mark.parametrize("kind", list(_bad_infers(np.zeros((5, 4), np.float32))))
async def test_bad_shared_memory_infer_then_good(http, stack: Stack, shm_object, clean, kind: str) -> None:
    x, feeds, out_handle = await iris_regions(http, stack, shm_object)
    body, status, words = _bad_infers(x)[kind]
    await expect(await http.post("/v2/models/iris/infer", json=body), status, words)
    assert stack.shm.leases_held() == 0, "a failed request kept its lease"
    resp = await http.post("/v2/models/iris/infer", json=iris_body(x))
    assert resp.status_code == 200, resp.text
    assert_matches(iris_outputs(out_handle, 5), ort_run(stack.models["iris"], feeds))
    await still_serves(stack)


async def test_unknown_region_status_and_plain_infer_after(http, stack: Stack, clean) -> None:
    await expect(await http.get(f"{SHM}/region/nope/status"), 404, "'nope'")
    await expect(await http.post(f"{SHM}/unregister", content=b"{bad"), 400, "not valid JSON")
    feeds = stack.models["iris"].sample_inputs(batch=1, seed=2)
    resp = await http.post("/v2/models/iris/infer", json={"inputs": [
        {"name": "X", "datatype": "FP32", "shape": [1, 4], "data": feeds["X"].reshape(-1).tolist()}]})
    assert_matches(outputs_of(resp), ort_run(stack.models["iris"], feeds))


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/v2/cudasharedmemory/status"),
        ("GET", "/v2/cudasharedmemory/region/g/status"),
        ("POST", "/v2/cudasharedmemory/region/g/register"),
        ("POST", "/v2/cudasharedmemory/unregister"),
        ("POST", "/v2/cudasharedmemory/region/g/unregister"),
    ],
)
async def test_cuda_shared_memory_says_it_needs_a_gpu_executor(http, stack: Stack, method, path) -> None:
    body = json.dumps({"raw_handle": {"b64": "AAAA"}, "device_id": 0, "byte_size": 64}).encode()
    await expect(await http.request(method, path, content=body if method == "POST" else None), 501,
                 "CUDA shared memory needs a GPU executor")
    await still_serves(stack)

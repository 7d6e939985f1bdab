"""KServe v2 REST against the real stack: health, metadata, config, repository, statistics, and
inference in JSON and in Triton's binary-tensor form, every answer checked against onnxruntime."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from sched_testkit import NP_TO_OIP, Stack, assert_matches, ort_run

from mlos_common.tensors import array_from_raw, array_to_raw
from mlos_common.tracing import build_tracer_provider
from mlos_scheduler.rest import RestApp, RestServer, executor_modes
from mlos_scheduler.stats import StatsBook

pytestmark = pytest.mark.asyncio(loop_scope="session")

HEADER = "Inference-Header-Content-Length"
OCR_OUT = "save_infer_model/scale_0.tmp_1"


def binary_body(feeds: dict[str, np.ndarray], **header) -> tuple[bytes, dict[str, str]]:
    """A request with every input as binary data, as tritonclient.http builds it."""
    inputs = [
        {"name": n, "datatype": NP_TO_OIP[a.dtype], "shape": list(a.shape),
         "parameters": {"binary_data_size": a.nbytes}}
        for n, a in feeds.items()
    ]
    head = json.dumps({"inputs": inputs, **header}).encode()
    return head + b"".join(array_to_raw(a) for a in feeds.values()), {HEADER: str(len(head))}


def json_body(feeds: dict[str, np.ndarray], nested: bool = False, **header) -> dict:
    return {
        "inputs": [
            {"name": n, "datatype": NP_TO_OIP[a.dtype], "shape": list(a.shape),
             "data": a.tolist() if nested else a.reshape(-1).tolist()}
            for n, a in feeds.items()
        ],
        **header,
    }


def outputs_of(resp: httpx.Response) -> dict[str, np.ndarray]:
    """Decodes a response in either form (JSON data or binary data after the JSON header)."""
    assert resp.status_code == 200, resp.text
    content = resp.content
    length = int(resp.headers.get(HEADER, len(content)))
    header = json.loads(content[:length])
    offset, got = length, {}
    for o in header["outputs"]:
        size = o.get("parameters", {}).get("binary_data_size")
        if size is None:
            dt = {"FP32": np.float32, "INT64": np.int64}[o["datatype"]]
            got[o["name"]] = np.asarray(o["data"], dtype=dt).reshape(o["shape"])
        else:
            got[o["name"]] = array_from_raw(o["name"], o["datatype"], o["shape"], content[offset:offset + size])
            offset += size
    assert offset == len(content)
    return got


# --- health, metadata, config ------------------------------------------------------------------


async def test_live_ready_and_health(http: httpx.AsyncClient, stack: Stack) -> None:
    assert (await http.get("/v2/health/live")).status_code == 200
    assert (await http.get("/v2/health/ready")).status_code == 200
    health = await http.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok"
    assert body["runtime_mode"] == stack.executor_core.runtime_mode == "userspace"
    assert {m["name"] for m in body["models"]} >= {"iris", "ocr_cls", "silero_vad"}


async def test_not_ready_while_peers_are_down(http: httpx.AsyncClient, stack: Stack) -> None:
    stack.core.peers_ready = False
    try:
        assert (await http.get("/v2/health/ready")).status_code == 400
        assert (await http.get("/v2/models/iris/ready")).status_code == 400
        health = await http.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "not_ready"
        assert (await http.get("/v2/health/live")).status_code == 200
    finally:
        stack.core.peers_ready = True


async def test_runtime_mode_unknown_when_executor_does_not_answer(stack: Stack) -> None:
    from mlos_executor.client import ExecutorClient

    async with ExecutorClient("127.0.0.1:1") as nobody:
        assert await executor_modes([nobody], timeout_s=0.5)() == {"127.0.0.1:1": "unknown"}


async def test_server_and_model_metadata(http: httpx.AsyncClient) -> None:
    server = (await http.get("/v2")).json()
    assert server["name"] == "mlos" and "binary_tensor_data" in server["extensions"]
    for path in ("/v2/models/iris", "/v2/models/iris/versions/1"):
        meta = (await http.get(path)).json()
        assert meta["name"] == "iris" and meta["versions"] == ["1"]
        assert meta["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}]
        assert {o["name"]: o["shape"] for o in meta["outputs"]} == {"label": [-1], "probabilities": [-1, 3]}
    assert (await http.get("/v2/models/iris/ready")).status_code == 200
    assert (await http.get("/v2/models/iris/versions/1/ready")).status_code == 200
    assert (await http.get("/v2/models/iris/versions/7/ready")).status_code == 400


async def test_model_config(http: httpx.AsyncClient) -> None:
    config = (await http.get("/v2/models/ocr_cls/config")).json()
    assert config["name"] == "ocr_cls"
    assert config["max_batch_size"] > 0
    assert config["input"][0]["data_type"] == "TYPE_FP32"
    assert config["input"][0]["dims"] == [3, -1, -1]  # dynamic height and width
    assert isinstance(config["dynamic_batching"]["max_queue_delay_microseconds"], int)
    assert (await http.get("/v2/models/ocr_cls/versions/1/config")).json() == config


# --- inference -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name,batch,nested", [("iris", 1, False), ("iris", 5, True), ("ocr_cls", 2, False)])
async def test_infer_json_matches_onnxruntime(http: httpx.AsyncClient, stack: Stack, name, batch, nested) -> None:
    model = stack.models[name]
    feeds = model.sample_inputs(batch=batch, seed=batch)
    resp = await http.post(f"/v2/models/{name}/infer", json=json_body(feeds, nested, id="r1"))
    assert HEADER not in resp.headers and resp.headers["content-type"].startswith("application/json")
    assert resp.json()["id"] == "r1" and resp.json()["model_version"] == "1"
    assert_matches(outputs_of(resp), ort_run(model, feeds))


@pytest.mark.parametrize("name", ["iris", "ocr_cls", "silero_vad"])
async def test_infer_binary_matches_onnxruntime(http: httpx.AsyncClient, stack: Stack, name) -> None:
    model = stack.models[name]
    feeds = model.sample_inputs(batch=1, seed=3)
    body, headers = binary_body(feeds, parameters={"binary_data_output": True})
    resp = await http.post(f"/v2/models/{name}/versions/1/infer", content=body, headers=headers)
    assert int(resp.headers[HEADER]) < len(resp.content)
    assert resp.headers["content-type"] == "application/octet-stream"
    assert_matches(outputs_of(resp), ort_run(model, feeds))


async def test_per_output_binary_flag_and_output_selection(http: httpx.AsyncClient, stack: Stack) -> None:
    model = stack.models["iris"]
    feeds = model.sample_inputs(batch=3, seed=9)
    want = ort_run(model, feeds)
    outputs = [{"name": "probabilities", "parameters": {"binary_data": True}}, {"name": "label"}]
    resp = await http.post("/v2/models/iris/infer", json=json_body(feeds, outputs=outputs))
    header = json.loads(resp.content[: int(resp.headers[HEADER])])
    by_name = {o["name"]: o for o in header["outputs"]}
    assert by_name["probabilities"]["parameters"]["binary_data_size"] == 3 * 3 * 4
    assert by_name["label"]["data"] == want["label"].tolist()
    assert_matches(outputs_of(resp), want)

    only = await http.post("/v2/models/iris/infer", json=json_body(feeds, outputs=[{"name": "label"}]))
    assert_matches(outputs_of(only), {"label": want["label"]})


async def test_binary_and_json_inputs_mixed(http: httpx.AsyncClient, stack: Stack) -> None:
    model = stack.models["silero_vad"]
    feeds = model.sample_inputs(seed=4)
    audio = feeds["input"]
    inputs = json_body({k: v for k, v in feeds.items() if k != "input"})["inputs"]
    inputs.insert(0, {"name": "input", "datatype": "FP32", "shape": list(audio.shape),
                      "parameters": {"binary_data_size": audio.nbytes}})
    head = json.dumps({"inputs": inputs}).encode()
    resp = await http.post("/v2/models/silero_vad/infer", content=head + audio.tobytes(), headers={HEADER: str(len(head))})
    assert_matches(outputs_of(resp), ort_run(model, feeds))


# --- repository and statistics ------------------------------------------------------------------


async def test_repository_index_unload_load(http: httpx.AsyncClient) -> None:
    index = (await http.post("/v2/repository/index")).json()
    assert {"name": "iris", "version": "1", "state": "READY", "reason": ""} in index
    body = {"parameters": {"unload_dependents": False}}
    assert (await http.post("/v2/repository/models/silero_vad/unload", json=body)).status_code == 200
    assert (await http.get("/v2/models/silero_vad/ready")).status_code == 400
    ready = (await http.post("/v2/repository/index", json={"ready": True})).json()
    assert "silero_vad" not in {m["name"] for m in ready}
    assert (await http.post("/v2/repository/models/silero_vad/load")).status_code == 200
    assert (await http.get("/v2/models/silero_vad/ready")).status_code == 200


async def test_statistics(http: httpx.AsyncClient, stack: Stack) -> None:
    feeds = stack.models["iris"].sample_inputs(batch=2)
    before = (await http.get("/v2/models/iris/stats")).json()["model_stats"][0]
    assert (await http.post("/v2/models/iris/infer", json=json_body(feeds))).status_code == 200
    after = (await http.get("/v2/models/iris/versions/1/stats")).json()["model_stats"][0]
    assert after["inference_count"] == before["inference_count"] + 2
    assert after["inference_stats"]["success"]["count"] == before["inference_stats"]["success"]["count"] + 1
    assert isinstance(after["inference_stats"]["fail"]["count"], int)
    every = (await http.get("/v2/models/stats")).json()["model_stats"]
    assert "iris" in {s["name"] for s in every}


async def test_requests_counted_in_prometheus(stack: Stack) -> None:
    registry = CollectorRegistry()
    server = RestServer(RestApp(stack.core, lambda: _no_modes()), max_body_bytes=1 << 20,
                        observe=StatsBook(registry).http_request)
    port = await server.start("127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            await client.get("/v2/models/iris")
            await client.get("/v2/models/iris")
            await client.get("/v2/models/nope")
            await client.get("/no/such/route")
    finally:
        await server.close()
    count = registry.get_sample_value
    assert count("mlos_http_server_handled_total", {"route": "/v2/models/{name}", "code": "200"}) == 2
    assert count("mlos_http_server_handled_total", {"route": "/v2/models/{name}", "code": "404"}) == 1
    assert count("mlos_http_server_handled_total", {"route": "unmatched", "code": "404"}) == 1
    assert count("mlos_http_server_handling_seconds_count", {"route": "/v2/models/{name}"}) == 3


async def test_traceparent_continues_the_callers_trace(stack: Stack) -> None:
    exporter = InMemorySpanExporter()
    provider = build_tracer_provider("scheduler", "", SimpleSpanProcessor(exporter))
    server = RestServer(RestApp(stack.core, lambda: _no_modes()), max_body_bytes=1 << 20,
                        observe=lambda *_: None, tracer_provider=provider)
    port = await server.start("127.0.0.1", 0)
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            resp = await client.get("/v2/models/iris", headers={"traceparent": f"00-{trace_id}-{parent_id}-01"})
            assert resp.status_code == 200
    finally:
        await server.close()
    (span,) = exporter.get_finished_spans()
    assert span.name == "GET /v2/models/{name}"
    assert format(span.context.trace_id, "032x") == trace_id
    assert format(span.parent.span_id, "016x") == parent_id
    assert span.attributes["http.response.status_code"] == 200


async def _no_modes() -> dict[str, str]:
    return {}

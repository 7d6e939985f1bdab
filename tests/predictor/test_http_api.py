"""The seed ML daemon's HTTP API through real HTTP (httpx against aiohttp on a free port), over
the same engine as gRPC: shapes from ../shared/seeds/003, errors naming the field."""

from __future__ import annotations

import json
import math

import httpx
import numpy as np
import pytest
from predictor_testkit import linear_onnx, sample_rows

from mlos_common.bootstrap import StartupError
from mlos_predictor.client import PredictorClient
from mlos_predictor.http_api import start_http
from mlos_predictor.kinds import KINDS, SPECS
from mlos_predictor.models import ModelCard, OnnxModel

FAILURE = dict(zip(SPECS["failure"].names, [0.4, 1.0, 0.0, 0.3, 0.0, 50.0]))
SEED_METRIC_KEYS = {"modelName", "totalInferences", "cacheHits", "cacheMisses", "averageLatencyMs", "minLatencyMs",
                    "maxLatencyMs", "p50LatencyMs", "p95LatencyMs", "p99LatencyMs"}  # fmt: skip


async def test_predict_features_by_name_as_the_seed_posted_them(http_url, engine) -> None:
    async with httpx.AsyncClient(base_url=http_url) as http:
        first = await http.post("/api/ml/predict/failure", json=FAILURE)
        second = await http.post("/api/ml/predict/failure", json=FAILURE)
        fresh = await http.post("/api/ml/predict/failure?no_cache=true", json=list(FAILURE.values()))
    assert first.status_code == 200
    body = first.json()
    assert body["success"] is True and body["latency_ms"] > 0
    expected = float(SPECS["failure"].prior(np.array([list(FAILURE.values())]))[0])
    assert body["prediction"] == {"kind": "failure", "value": pytest.approx(expected), "unit": "probability",
                                  "reason": "error_rate 0.40 (typical 0.00)", "cached": False, "modelVersion": 0}
    assert second.json()["prediction"]["cached"] is True
    assert fresh.json()["prediction"]["cached"] is False
    (m,) = engine.metrics.snapshot(["failure"])  # one engine behind both doors
    assert (m.count, m.cache_hits) == (3, 1)


@pytest.mark.parametrize("kind", KINDS)
async def test_batch_in_order_by_name_or_array(http_url, kind: str) -> None:
    spec = SPECS[kind]
    rows = sample_rows(spec, 20, seed=5)
    features = [dict(zip(spec.names, r)) if i % 2 else r for i, r in enumerate(rows.tolist())]
    async with httpx.AsyncClient(base_url=http_url) as http:
        reply = await http.post(f"/api/ml/predict/{kind}/batch", json={"features": features})
    assert reply.status_code == 200, reply.text
    predictions = reply.json()["predictions"]
    assert [p["value"] for p in predictions] == pytest.approx(spec.prior(rows).tolist())
    assert {p["kind"] for p in predictions} == {kind}


async def test_swapped_model_answers_through_http(http_url, engine) -> None:
    spec = SPECS["threat"]
    row = [5.0, 1.0, 8.0, 9.0, 0.5, 0.0, 3.0, 0.0]
    async with httpx.AsyncClient(base_url=http_url) as http:
        await http.post("/api/ml/predict/threat", json=row)
        engine.slots["threat"].swap(OnnxModel(spec, linear_onnx(spec, [0, 0, 0, 0, 1.0, 0, 0, 0])),
                                    ModelCard("threat", source="trained", version=4))  # fmt: skip
        after = (await http.post("/api/ml/predict/threat", json=row)).json()["prediction"]
        health = (await http.get("/health")).json()
    assert (after["value"], after["cached"], after["modelVersion"]) == (pytest.approx(0.5), False, 4)
    assert health["kinds"]["threat"] == {"source": "trained", "version": 4, "ok": True}


async def test_metrics_in_the_seed_shape_reset_and_cache(http_url, prom) -> None:
    rows = sample_rows(SPECS["memory"], 4).tolist()
    async with httpx.AsyncClient(base_url=http_url) as http:
        await http.post("/api/ml/predict/memory/batch", json={"features": rows})
        await http.post("/api/ml/predict/memory", json=rows[0])
        every = (await http.get("/api/ml/metrics")).json()
        memory = (await http.get("/api/ml/metrics/memory")).json()
        caches = (await http.get("/api/ml/cache/stats")).json()
        cleared = (await http.post("/api/ml/cache/clear", json={"kind": "memory"})).json()
        cleared_all = (await http.post("/api/ml/cache/clear")).json()
        reset = (await http.post("/api/ml/metrics/reset?kind=memory")).json()
        after = (await http.get("/api/ml/metrics/memory")).json()
    assert every["success"] and list(every["metrics"]) == list(KINDS)
    assert set(every["metrics"]["memory"]) == SEED_METRIC_KEYS
    m = memory["metrics"]
    assert (m["modelName"], m["totalInferences"], m["cacheHits"], m["cacheMisses"]) == ("memory", 5, 1, 4)
    assert 0 < m["minLatencyMs"] <= m["p50LatencyMs"] <= m["p99LatencyMs"] <= m["maxLatencyMs"]
    c = caches["caches"]["memory"]
    assert (c["size"], c["hits"], c["misses"], c["ttlMs"], c["hitRate"]) == (4, 1, 4, 50.0, pytest.approx(0.2))
    assert (cleared["cleared"], cleared["kinds"], cleared_all["cleared"]) == (4, ["memory"], 0)
    assert reset == {"success": True, "reset": ["memory"]} and after["metrics"]["totalInferences"] == 0
    status = {"route": "/api/ml/predict/{kind}", "status": "200"}
    assert prom.get_sample_value("mlos_predictor_http_requests_total", status) == 1


async def test_health_is_truthful(http_url, engine) -> None:
    async with httpx.AsyncClient(base_url=http_url) as http:
        healthy = await http.get("/health")
        broken = OnnxModel(SPECS["latency"], linear_onnx(SPECS["latency"], [math.inf, 0, 0, 0, 0]))
        engine.slots["latency"].swap(broken, ModelCard("latency", source="trained", version=9))
        sick = await http.get("/health")
    assert healthy.status_code == 200 and healthy.json()["status"] == "healthy"
    assert set(healthy.json()["kinds"]) == set(KINDS)
    assert sick.status_code == 503 and sick.json()["status"] == "unhealthy"
    assert sick.json()["kinds"]["latency"]["ok"] is False and sick.json()["kinds"]["failure"]["ok"] is True


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/api/ml/predict/cpu", FAILURE, 404, "unknown prediction kind 'cpu'; known kinds: latency, workload"),
        ("/api/ml/predict/cpu/batch", {"features": [FAILURE]}, 404, "unknown prediction kind 'cpu'"),
        ("/api/ml/predict/failure", {**FAILURE, "agentId": 1}, 400, "failure has no feature(s) agentId"),
        ("/api/ml/predict/failure", {"error_rate": 0.1}, 400, "failure is missing feature(s) latency_drift"),
        ("/api/ml/predict/failure", {**FAILURE, "error_rate": "high"}, 400,
         "feature 'error_rate' of failure must be a number, got 'high'"),
        ("/api/ml/predict/failure", {**FAILURE, "restarts_1h": True}, 400, "feature 'restarts_1h' of failure must be a number"),
        ("/api/ml/predict/failure", {**FAILURE, "error_rate": 2.0}, 400, "feature 'error_rate' of failure is 2, outside [0, 1]"),
        ("/api/ml/predict/failure", [0.1, 1.0], 400, "failure takes 6 features"),
        ("/api/ml/predict/failure", {}, 400, "no features given; failure takes error_rate"),
        ("/api/ml/predict/failure", "x", 400, "a failure feature row is a JSON object by name"),
        ("/api/ml/predict/failure/batch", [FAILURE], 400, 'a batch body is {"features": [row, ...]}'),
        ("/api/ml/predict/failure/batch", {"features": []}, 400, "no rows given"),
        ("/api/ml/predict/failure/batch", {"features": [FAILURE] * 1001}, 400, "1001 rows is over the batch limit of 1000"),
        ("/api/ml/predict/failure/batch", {"features": [FAILURE, {**FAILURE, "latency_drift": -1}]}, 400,
         "features[1]: feature 'latency_drift' of failure is -1, outside [0, 1000]"),
        ("/api/ml/cache/clear", {"kind": "cpu"}, 404, "unknown prediction kind 'cpu'"),
        ("/api/ml/cache/clear", ["memory"], 400, 'the body, if any, is {"kind": "<kind>"}'),
        ("/api/ml/predict", FAILURE, 404, "Not Found: POST /api/ml/predict"),
    ],
)
async def test_bad_input_answers_json_naming_the_field(http_url, path, body, status, message) -> None:
    async with httpx.AsyncClient(base_url=http_url) as http:
        reply = await http.post(path, json=body)
    assert reply.status_code == status
    assert reply.json()["success"] is False and message in reply.json()["error"]


@pytest.mark.parametrize(
    ("method", "path", "content", "status", "message"),
    [
        ("POST", "/api/ml/predict/failure", b"{not json", 400, "the request body is not valid JSON"),
        ("POST", "/api/ml/predict/failure", json.dumps({**FAILURE, "error_rate": math.nan}).encode(), 400,
         "feature 'error_rate' of failure is nan; it must be a finite number"),  # Python's json reads NaN
        ("POST", "/api/ml/predict/failure?no_cache=maybe", json.dumps(FAILURE).encode(), 400,
         "query parameter 'no_cache' is true or false, got 'maybe'"),
        ("GET", "/api/ml/predict/failure", b"", 405, "Method Not Allowed: GET /api/ml/predict/failure"),
        ("GET", "/api/ml/metrics/cpu", b"", 404, "unknown prediction kind 'cpu'"),
    ],
)
async def test_bad_requests_beyond_the_body(http_url, method, path, content, status, message) -> None:
    async with httpx.AsyncClient(base_url=http_url) as http:
        reply = await http.request(method, path, content=content)
    assert reply.status_code == status
    assert message in reply.json()["error"]


async def test_one_engine_behind_grpc_and_http_in_the_started_service(predictor_with_http) -> None:
    addr, url, registry = predictor_with_http
    async with PredictorClient(addr) as client, httpx.AsyncClient(base_url=url) as http:
        by_grpc = await client.predict("failure", list(FAILURE.values()))
        by_http = (await http.post("/api/ml/predict/failure", json=FAILURE)).json()["prediction"]
        (m,) = await client.metrics("failure")
        health = await http.get("/health")
    assert (by_grpc.cached, by_http["cached"], by_http["value"]) == (False, True, pytest.approx(by_grpc.value))
    assert (m.count, m.cache_hits) == (2, 1) and health.status_code == 200
    assert registry.get_sample_value("mlos_predictor_predictions_total", {"kind": "failure", "cached": "true"}) == 1


async def test_a_taken_http_port_is_a_startup_error_naming_it(http_url, engine) -> None:
    port = int(http_url.rsplit(":", 1)[1])
    with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{port} \\(predictor HTTP API\\)"):
        await start_http(engine, "127.0.0.1", port)

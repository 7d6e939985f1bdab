"""The running suite through tritonclient.http, unmodified, and plain HTTP (the KServe v2 REST port).

Every answer is compared with in-process ONNX Runtime on the same file and the same inputs.
"""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest
import tritonclient.http as httpclient
from test_e2e_tritonclient import assert_matches, reference
from tritonclient.utils import InferenceServerException, np_to_triton_dtype


@pytest.fixture(scope="session")
def http_url(suite) -> str:
    url = suite.info["scheduler_http"]  # in the --json ready event
    assert url.startswith("http://127.0.0.1:")
    assert not url.endswith(":8080"), "--ephemeral-ports must make the REST port ephemeral too"
    return url


@pytest.fixture(scope="session")
def http_client(http_url):
    c = httpclient.InferenceServerClient(url=http_url.removeprefix("http://"))
    yield c
    c.close()


def _inputs(arrays: dict[str, np.ndarray], binary: bool) -> list[httpclient.InferInput]:
    inputs = []
    for name, array in arrays.items():
        inp = httpclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        inp.set_data_from_numpy(array, binary_data=binary)
        inputs.append(inp)
    return inputs


def test_health_json_reports_runtime_mode(http_url):
    with urllib.request.urlopen(f"{http_url}/health", timeout=10) as resp:
        body = json.loads(resp.read())
    assert resp.status == 200
    assert body["status"] == "ok"
    assert body["runtime_mode"] == "userspace"
    assert {m["name"] for m in body["models"]} >= {"iris", "ocr_cls"}


def test_server_live_ready_and_metadata(http_client):
    assert http_client.is_server_live() is True
    assert http_client.is_server_ready() is True
    meta = http_client.get_server_metadata()
    assert meta["name"] == "mlos"
    assert "binary_tensor_data" in meta["extensions"]


def test_model_ready_metadata_config(http_client):
    assert http_client.is_model_ready("iris") is True
    assert http_client.is_model_ready("nope") is False
    iris = http_client.get_model_metadata("iris")
    assert iris["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}]
    config = http_client.get_model_config("ocr_cls")
    assert config["name"] == "ocr_cls" and config["max_batch_size"] > 0
    assert config["input"][0]["data_type"] == "TYPE_FP32"


@pytest.mark.parametrize("model,batch", [("iris", 1), ("iris", 4), ("ocr_cls", 1), ("ocr_cls", 2)])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_matches_onnxruntime(http_client, demo_models, ort_sessions, model, batch, binary):
    arrays = demo_models[model].sample_inputs(batch=batch, seed=batch + 11)
    expected = reference(ort_sessions, model, arrays)
    outputs = [httpclient.InferRequestedOutput(name, binary_data=binary) for name in expected]
    result = http_client.infer(model, _inputs(arrays, binary), outputs=outputs, request_id=f"{model}-{batch}")
    assert result.get_response()["id"] == f"{model}-{batch}"
    assert_matches(result, expected, model)


def test_compressed_request_and_response(http_client, demo_models, ort_sessions):
    """tritonclient's compression options: the body is inflated by the server; the answer comes
    back uncompressed, which the client accepts (it inflates only what says Content-Encoding)."""
    arrays = demo_models["ocr_cls"].sample_inputs(batch=2, seed=8)
    for algorithm in ("gzip", "deflate"):
        result = http_client.infer("ocr_cls", _inputs(arrays, binary=True), request_compression_algorithm=algorithm,
                                   response_compression_algorithm=algorithm)
        assert_matches(result, reference(ort_sessions, "ocr_cls", arrays), "ocr_cls")


def test_infer_without_requested_outputs_gets_them_all_binary(http_client, demo_models, ort_sessions):
    arrays = demo_models["iris"].sample_inputs(batch=2, seed=5)
    result = http_client.infer("iris", _inputs(arrays, binary=False))
    assert all("binary_data_size" in o["parameters"] for o in result.get_response()["outputs"])
    assert_matches(result, reference(ort_sessions, "iris", arrays), "iris")


def test_errors_arrive_as_exceptions_with_the_message(http_client, demo_models):
    arrays = demo_models["iris"].sample_inputs()
    with pytest.raises(InferenceServerException, match="nope") as err:
        http_client.infer("nope", _inputs(arrays, binary=True))
    assert err.value.status() == "404"
    bad = httpclient.InferInput("X", [1, 3], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 3), np.float32))
    with pytest.raises(InferenceServerException) as err:
        http_client.infer("iris", [bad])
    assert err.value.status() == "400"


def test_statistics_and_repository_index(http_client, demo_models):
    http_client.infer("iris", _inputs(demo_models["iris"].sample_inputs(), binary=True))
    stats = http_client.get_inference_statistics("iris")["model_stats"][0]
    assert stats["name"] == "iris" and stats["inference_count"] >= 1
    index = {m["name"]: m["state"] for m in http_client.get_model_repository_index()}
    assert index["iris"] == "READY"

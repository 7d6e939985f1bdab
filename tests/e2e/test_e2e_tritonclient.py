"""The running suite through tritonclient.grpc, unmodified: health, metadata, inference.

Every answer is compared with in-process ONNX Runtime on the same file and the same inputs.
"""

from __future__ import annotations

import asyncio
import queue

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcclient_aio
from e2e_testkit import make_inputs

MODELS = ("iris", "ocr_cls", "silero_vad")


def reference(ort_sessions, model: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort_sessions[model]
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, arrays)))


def assert_matches(result, expected: dict[str, np.ndarray], model: str) -> None:
    for name, want in expected.items():
        got = result.as_numpy(name)
        assert got is not None, f"{model}: output {name!r} missing"
        assert got.shape == want.shape, f"{model}.{name}: shape {got.shape} != {want.shape}"
        assert got.dtype == want.dtype, f"{model}.{name}: dtype {got.dtype} != {want.dtype}"
        if np.issubdtype(want.dtype, np.integer):
            np.testing.assert_array_equal(got, want, err_msg=f"{model}.{name}")
        else:
            assert np.allclose(got, want, atol=1e-5), f"{model}.{name}: max diff {np.abs(got - want).max()}"


# --- health and metadata ----------------------------------------------------------------------


def test_server_live_and_ready(client):
    assert client.is_server_live() is True
    assert client.is_server_ready() is True


@pytest.mark.parametrize("model", MODELS)
def test_model_ready(client, model):
    assert client.is_model_ready(model) is True


def test_unknown_model_not_ready(client):
    assert client.is_model_ready("nope") is False


def test_server_metadata(client):
    meta = client.get_server_metadata()
    assert meta.name
    assert meta.version


def test_model_metadata(client, ort_sessions):
    iris = client.get_model_metadata("iris")
    assert iris.name == "iris"
    assert [(t.name, t.datatype, list(t.shape)) for t in iris.inputs] == [("X", "FP32", [-1, 4])]
    outputs = {t.name: (t.datatype, list(t.shape)) for t in iris.outputs}
    ort_outputs = [o.name for o in ort_sessions["iris"].get_outputs()]
    assert set(outputs) == set(ort_outputs)
    assert outputs["label"] == ("INT64", [-1])
    assert outputs["probabilities"] == ("FP32", [-1, 3])

    vad = client.get_model_metadata("silero_vad")
    assert {t.name: (t.datatype, list(t.shape)) for t in vad.inputs} == {
        "input": ("FP32", [-1, -1]), "state": ("FP32", [2, -1, 128]), "sr": ("INT64", [])}


@pytest.mark.parametrize("model", MODELS)
def test_model_metadata_matches_onnx(client, ort_sessions, model):
    """Names, datatypes and shapes as the .onnx file declares them; dynamic dims are -1."""
    dtypes = {"tensor(float)": "FP32", "tensor(int64)": "INT64"}

    def declared(args):
        return {a.name: (dtypes[a.type], [d if isinstance(d, int) else -1 for d in a.shape]) for a in args}

    meta = client.get_model_metadata(model)
    assert meta.name == model
    session = ort_sessions[model]
    assert {t.name: (t.datatype, list(t.shape)) for t in meta.inputs} == declared(session.get_inputs())
    assert {t.name: (t.datatype, list(t.shape)) for t in meta.outputs} == declared(session.get_outputs())


def test_model_metadata_json(client):
    # the JSON form carries the same shapes (int64 as JSON strings, as Triton does)
    as_json = client.get_model_metadata("iris", as_json=True)
    assert [int(d) for d in as_json["inputs"][0]["shape"]] == [-1, 4]


@pytest.mark.parametrize("model, max_batch_size", [("iris", 8), ("ocr_cls", 8), ("silero_vad", 0)])
def test_model_config(client, model, max_batch_size):
    config = client.get_model_config(model).config
    assert config.name == model
    assert config.max_batch_size == max_batch_size


def test_repository_index(client):
    index = client.get_model_repository_index()
    states = {m.name: m.state for m in index.models}
    for model in MODELS:
        assert states.get(model) == "READY", f"{model}: {states}"


# --- inference --------------------------------------------------------------------------------


def test_infer_iris(client, demo_models, ort_sessions):
    arrays = demo_models["iris"].sample_inputs(batch=3, seed=48)
    result = client.infer("iris", make_inputs(arrays))
    expected = reference(ort_sessions, "iris", arrays)
    assert_matches(result, expected, "iris")
    assert result.as_numpy("label").tolist() == expected["label"].tolist()
    assert len(set(expected["label"].tolist())) > 1, "pick rows of different classes"


@pytest.mark.parametrize("batch", [1, 4])
def test_infer_ocr_cls(client, demo_models, ort_sessions, batch):
    arrays = demo_models["ocr_cls"].sample_inputs(batch=batch, seed=batch)
    result = client.infer("ocr_cls", make_inputs(arrays))
    assert_matches(result, reference(ort_sessions, "ocr_cls", arrays), "ocr_cls")


def test_infer_silero_vad(client, demo_models, ort_sessions):
    arrays = demo_models["silero_vad"].sample_inputs()
    assert arrays["sr"].shape == ()
    result = client.infer("silero_vad", make_inputs(arrays))
    assert_matches(result, reference(ort_sessions, "silero_vad", arrays), "silero_vad")


def test_requested_outputs_subset(client, demo_models, ort_sessions):
    arrays = demo_models["iris"].sample_inputs(batch=2, seed=60)
    result = client.infer("iris", make_inputs(arrays), outputs=[grpcclient.InferRequestedOutput("probabilities")])
    response = result.get_response()
    assert [o.name for o in response.outputs] == ["probabilities"]
    assert result.as_numpy("label") is None
    want = reference(ort_sessions, "iris", arrays)["probabilities"]
    assert np.allclose(result.as_numpy("probabilities"), want, atol=1e-5)


async def test_aio_concurrent_ocr_cls(suite, demo_models, ort_sessions):
    demo = demo_models["ocr_cls"]
    requests = [demo.sample_inputs(batch=1, seed=100 + i) for i in range(16)]
    client = grpcclient_aio.InferenceServerClient(url=suite.scheduler_addr)
    try:
        results = await asyncio.gather(*(client.infer("ocr_cls", make_inputs(a)) for a in requests))
    finally:
        await client.close()
    for arrays, result in zip(requests, results):
        assert_matches(result, reference(ort_sessions, "ocr_cls", arrays), "ocr_cls")
    # the inputs really differ, so a mixed-up response would be caught
    firsts = {float(r.as_numpy(r.get_response().outputs[0].name).reshape(-1)[0]) for r in results}
    assert len(firsts) > 1


def _collect(n: int, results: queue.Queue, timeout_s: float = 20.0) -> dict:
    got = {}
    for _ in range(n):
        result, error = results.get(timeout=timeout_s)
        assert error is None, f"request failed: {error}"
        got[result.get_response().id] = result
    return got


def test_async_infer_iris(client, demo_models, ort_sessions):
    results: queue.Queue = queue.Queue()
    requests = {f"req-{i}": demo_models["iris"].sample_inputs(batch=1, seed=i * 37) for i in range(8)}
    for request_id, arrays in requests.items():
        client.async_infer(
            "iris", make_inputs(arrays), callback=lambda result, error: results.put((result, error)), request_id=request_id
        )
    got = _collect(len(requests), results)
    assert set(got) == set(requests)
    for request_id, arrays in requests.items():
        assert_matches(got[request_id], reference(ort_sessions, "iris", arrays), "iris")


def test_stream_infer_iris(suite, demo_models, ort_sessions):
    client = grpcclient.InferenceServerClient(url=suite.scheduler_addr)
    results: queue.Queue = queue.Queue()
    requests = {f"s-{i}": demo_models["iris"].sample_inputs(batch=1 + i % 3, seed=i * 11) for i in range(10)}
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        for request_id, arrays in requests.items():
            client.async_stream_infer("iris", make_inputs(arrays), request_id=request_id)
        got = _collect(len(requests), results)
    finally:
        client.stop_stream()
        client.close()
    assert set(got) == set(requests)
    for request_id, arrays in requests.items():
        assert_matches(got[request_id], reference(ort_sessions, "iris", arrays), "iris")


def test_inference_statistics(client, demo_models):
    def count() -> int:
        stats = client.get_inference_statistics("ocr_cls").model_stats
        assert [s.name for s in stats] == ["ocr_cls"]
        return stats[0].inference_count

    before = count()
    client.infer("ocr_cls", make_inputs(demo_models["ocr_cls"].sample_inputs(batch=2, seed=7)))
    after = count()
    assert after > 0
    assert after >= before + 2, f"inference_count {before} -> {after} after a batch of 2"
    stats = client.get_inference_statistics("ocr_cls").model_stats[0]
    assert stats.inference_stats.success.count > 0

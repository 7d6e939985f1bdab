"""Open Inference Protocol control plane against the real stack: liveness, metadata, repository."""

from __future__ import annotations

import grpc
import pytest
from grpc import aio
from sched_testkit import Stack, assert_matches, infer_request, ort_run, response_arrays

from mlos.inference import grpc_service_pb2 as pb

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_server_live_and_ready(stack: Stack) -> None:
    assert (await stack.stub.ServerLive(pb.ServerLiveRequest())).live is True
    assert (await stack.stub.ServerReady(pb.ServerReadyRequest())).ready is True


async def test_model_ready_true_for_loaded_false_for_unknown(stack: Stack) -> None:
    for name in ("iris", "ocr_cls", "silero_vad"):
        assert (await stack.stub.ModelReady(pb.ModelReadyRequest(name=name))).ready, name
    assert (await stack.stub.ModelReady(pb.ModelReadyRequest(name="iris", version="1"))).ready
    assert not (await stack.stub.ModelReady(pb.ModelReadyRequest(name="no_such_model"))).ready
    assert not (await stack.stub.ModelReady(pb.ModelReadyRequest(name="iris", version="7"))).ready


async def test_server_metadata_lists_extensions(stack: Stack) -> None:
    md = await stack.stub.ServerMetadata(pb.ServerMetadataRequest())
    assert md.name == "mlos"
    assert md.version
    assert {"model_repository", "model_configuration", "statistics"} <= set(md.extensions)


async def test_model_metadata_shapes_and_datatypes(stack: Stack) -> None:
    def sig(tensors):
        return {t.name: (t.datatype, list(t.shape)) for t in tensors}

    iris = await stack.stub.ModelMetadata(pb.ModelMetadataRequest(name="iris"))
    assert iris.name == "iris" and list(iris.versions) == ["1"] and iris.platform == "onnxruntime_onnx"
    assert sig(iris.inputs) == {"X": ("FP32", [-1, 4])}
    assert sig(iris.outputs) == {"label": ("INT64", [-1]), "probabilities": ("FP32", [-1, 3])}

    ocr = await stack.stub.ModelMetadata(pb.ModelMetadataRequest(name="ocr_cls"))
    assert sig(ocr.inputs) == {"x": ("FP32", [-1, 3, -1, -1])}
    assert sig(ocr.outputs) == {"save_infer_model/scale_0.tmp_1": ("FP32", [-1, 2])}

    silero = await stack.stub.ModelMetadata(pb.ModelMetadataRequest(name="silero_vad", version="1"))
    assert sig(silero.inputs) == {
        "input": ("FP32", [-1, -1]),
        "state": ("FP32", [2, -1, 128]),
        "sr": ("INT64", []),
    }
    assert set(sig(silero.outputs)) == {"output", "stateN"}


async def test_model_config_batch_dims(stack: Stack) -> None:
    iris = (await stack.stub.ModelConfig(pb.ModelConfigRequest(name="iris"))).config
    assert iris.name == "iris"
    assert iris.max_batch_size == 8
    assert {i.name: list(i.dims) for i in iris.input} == {"X": [4]}  # batch dim excluded
    assert {o.name: list(o.dims) for o in iris.output} == {"label": [], "probabilities": [3]}
    assert iris.input[0].data_type == pb.TYPE_FP32
    assert iris.HasField("dynamic_batching")

    silero = (await stack.stub.ModelConfig(pb.ModelConfigRequest(name="silero_vad"))).config
    assert silero.max_batch_size == 0
    assert {i.name: list(i.dims) for i in silero.input} == {
        "input": [-1, -1], "state": [2, -1, 128], "sr": [],
    }  # full dims when the model does not batch
    assert {i.name: i.data_type for i in silero.input}["sr"] == pb.TYPE_INT64
    assert not silero.HasField("dynamic_batching")


async def test_metadata_of_unknown_model_is_not_found(stack: Stack) -> None:
    with pytest.raises(aio.AioRpcError) as err:
        await stack.stub.ModelMetadata(pb.ModelMetadataRequest(name="no_such_model"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_repository_index_states(stack: Stack) -> None:
    index = await stack.stub.RepositoryIndex(pb.RepositoryIndexRequest())
    states = {m.name: (m.version, m.state) for m in index.models}
    for name in ("iris", "ocr_cls", "silero_vad"):
        assert states[name] == ("1", "READY"), name


async def test_unload_then_not_ready_then_infer_auto_loads(stack: Stack) -> None:
    model = stack.models["iris"]
    feeds = model.sample_inputs(batch=2)
    await stack.stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="iris"))
    try:
        assert not (await stack.stub.ModelReady(pb.ModelReadyRequest(name="iris"))).ready
        index = await stack.stub.RepositoryIndex(pb.RepositoryIndexRequest())
        assert {m.name: m.state for m in index.models}["iris"] == "UNAVAILABLE"
        ready_only = await stack.stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True))
        assert "iris" not in {m.name for m in ready_only.models}
        assert {"ocr_cls", "silero_vad"} <= {m.name for m in ready_only.models}

        # a registered-but-unloaded model is loaded by its first request
        resp = await stack.stub.ModelInfer(infer_request("iris", feeds), timeout=30)
        assert resp.model_name == "iris" and resp.model_version == "1"
        assert_matches(response_arrays(resp), ort_run(model, feeds))
        assert (await stack.stub.ModelReady(pb.ModelReadyRequest(name="iris"))).ready
    finally:
        await stack.stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="iris"))


async def test_unload_of_model_not_loaded_is_not_found(stack: Stack) -> None:
    with pytest.raises(aio.AioRpcError) as err:
        await stack.stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="no_such_model"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await stack.stub.ServerReady(pb.ServerReadyRequest())).ready

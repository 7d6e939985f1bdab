"""The predictor's learned models are ordinary models: registered, loaded and served by the front door.

Each kind is trained as the learning loop trains it (trainer.train on rows the books built from
simulated telemetry), written to a file, registered in the stack's registry as
mlos-predictor-<kind> and inferred through ModelInfer; the answers equal the predictor's own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sched_testkit import Stack, infer_request, response_arrays

from mlos.inference import grpc_service_pb2 as pb
from mlos_predictor import trainer
from mlos_predictor.convert import telemetry_from_proto
from mlos_predictor.intake import Intake
from mlos_predictor.kinds import KINDS, SPECS
from mlos_predictor.latency import LatencyBook
from mlos_predictor.models import OnnxModel, PriorModel
from mlos_predictor.simulate import simulate

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, OnnxModel, np.ndarray]]:
    """kind -> (ONNX file, the model as the predictor serves it, 4 held-out rows)."""
    intake = Intake(LatencyBook())
    for batch in simulate(seed=3, scale=0.3).batches:
        intake.ingest(telemetry_from_proto(batch))
    out = {}
    folder = tmp_path_factory.mktemp("learned")
    for kind in KINDS:
        spec = SPECS[kind]
        result = trainer.train(spec, intake.stores()[kind].snapshot(), PriorModel(spec), min_rows=100)
        assert result.model is not None and result.held_out is not None, result.reason
        path = folder / f"{spec.registry_name}.onnx"
        path.write_bytes(result.model.onnx_bytes)
        out[kind] = (path, result.model, result.held_out.x[:4])
    return out


@pytest.mark.parametrize("kind", KINDS)
async def test_learned_model_answers_through_the_front_door(stack: Stack, learned, kind: str) -> None:
    path, model, rows = learned[kind]
    name = SPECS[kind].registry_name
    mv = await stack.registry.register(name, path, labels={"kind": kind})
    await stack.stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name=name), timeout=60)
    meta = await stack.stub.ModelMetadata(pb.ModelMetadataRequest(name=name), timeout=10)
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("features", "FP32", [-1, SPECS[kind].width])]
    assert [t.name for t in meta.outputs] == [SPECS[kind].output]
    resp = await stack.stub.ModelInfer(infer_request(name, {"features": rows.astype(np.float32)}), timeout=30)
    assert resp.model_version == str(mv.version)
    got = response_arrays(resp)[SPECS[kind].output].reshape(-1)
    assert got.tolist() == pytest.approx(model.predict(rows).tolist(), rel=1e-6)
    index = await stack.stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=10)
    assert any(m.name == name and m.state == "READY" for m in index.models)  # `mlos models list` shows it

"""Thin gRPC servicer: protobuf <-> domain, then await the core."""

from __future__ import annotations

import onnxruntime as ort

from mlos.common.v1 import tensor_pb2
from mlos.executor.v1 import executor_pb2 as pb
from mlos.executor.v1 import executor_pb2_grpc as pbg
from mlos_common.signatures import TensorSpec
from mlos_common.tensors import array_from_raw, array_to_raw
from mlos_executor.core import ExecutorCore, LoadedModel


def _spec_pb(spec: TensorSpec) -> tensor_pb2.TensorSpec:
    return tensor_pb2.TensorSpec(name=spec.name, datatype=spec.datatype, shape=spec.shape)


def loaded_pb(m: LoadedModel) -> pb.LoadedModel:
    return pb.LoadedModel(
        model=pb.ModelKey(name=m.name, version=m.version),
        sha256=m.sha256,
        runtime="onnxruntime",
        providers=m.model.providers,
        inputs=[_spec_pb(s) for s in m.model.inputs],
        outputs=[_spec_pb(s) for s in m.model.outputs],
        load_ms=m.load_ms,
        executions=m.executions,
        in_flight=m.in_flight,
    )


class ExecutorServicer(pbg.ExecutorServicer):
    def __init__(self, core: ExecutorCore) -> None:
        self._core = core

    async def LoadModel(self, request: pb.LoadModelRequest, context) -> pb.LoadModelResponse:
        loaded = await self._core.load(request.model.name, request.model.version, request.sha256)
        return pb.LoadModelResponse(model=loaded_pb(loaded))

    async def UnloadModel(self, request: pb.UnloadModelRequest, context) -> pb.UnloadModelResponse:
        return pb.UnloadModelResponse(unloaded=self._core.unload(request.model.name, request.model.version))

    async def ExecuteBatch(self, request: pb.ExecuteBatchRequest, context) -> pb.ExecuteBatchResponse:
        feeds = {t.name: array_from_raw(t.name, t.datatype, t.shape, t.raw) for t in request.inputs}
        outputs, compute_ns = await self._core.execute(
            request.model.name, request.model.version, feeds, list(request.output_names)
        )
        return pb.ExecuteBatchResponse(
            outputs=[
                tensor_pb2.Tensor(name=spec.name, datatype=spec.datatype, shape=array.shape, raw=array_to_raw(array))
                for spec, array in outputs
            ],
            compute_ns=compute_ns,
        )

    async def Status(self, request: pb.StatusRequest, context) -> pb.StatusResponse:
        core = self._core
        return pb.StatusResponse(
            executor_id=core.executor_id,
            runtime_mode=core.runtime_mode,
            available_providers=ort.get_available_providers(),
            models=[loaded_pb(m) for m in core.models.values()],
            in_flight=core.in_flight,
        )

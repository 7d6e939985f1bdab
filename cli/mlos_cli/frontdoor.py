"""A small client of the scheduler's Open Inference Protocol front door, for the CLI."""

from __future__ import annotations

import numpy as np
from grpc import aio

from mlos.inference import grpc_service_pb2 as pb
from mlos.inference import grpc_service_pb2_grpc as pbg
from mlos_common.bootstrap import client_channel, typed_error
from mlos_common.tensors import array_from_raw, array_to_raw, datatype_of


class FrontDoor:
    def __init__(self, addr: str, timeout_s: float = 120.0) -> None:
        self._channel = client_channel(addr)
        self._stub = pbg.GRPCInferenceServiceStub(self._channel)
        self._timeout_s = timeout_s

    async def __aenter__(self) -> FrontDoor:
        return self

    async def __aexit__(self, *exc) -> None:
        await self._channel.close()

    async def _call(self, method: str, request):
        try:
            return await getattr(self._stub, method)(request, timeout=self._timeout_s)
        except aio.AioRpcError as exc:
            raise typed_error(exc) from None

    async def load(self, name: str) -> None:
        await self._call("RepositoryModelLoad", pb.RepositoryModelLoadRequest(model_name=name))

    async def index(self) -> list[pb.RepositoryIndexResponse.ModelIndex]:
        return list((await self._call("RepositoryIndex", pb.RepositoryIndexRequest())).models)

    async def metadata(self, name: str) -> pb.ModelMetadataResponse:
        return await self._call("ModelMetadata", pb.ModelMetadataRequest(name=name))

    async def infer(self, name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        request = pb.ModelInferRequest(model_name=name)
        for key, array in inputs.items():
            request.inputs.add(name=key, datatype=datatype_of(array), shape=array.shape)
            request.raw_input_contents.append(array_to_raw(array))
        reply = await self._call("ModelInfer", request)
        return {
            o.name: array_from_raw(o.name, o.datatype, o.shape, raw)
            for o, raw in zip(reply.outputs, reply.raw_output_contents)
        }

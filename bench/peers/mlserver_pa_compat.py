"""Start stock MLServer with one extra read-only RPC: Triton's ModelConfig, for perf_analyzer.

    python mlserver_pa_compat.py MODEL_REPOSITORY_DIR     # = `mlserver start DIR` + ModelConfig

perf_analyzer (``-i grpc``, Triton service kind) calls ModelMetadata and then ModelConfig, a
Triton extension that MLServer 1.7.1 answers with UNIMPLEMENTED. This launcher adds a handler for
``/inference.GRPCInferenceService/ModelConfig`` to MLServer's gRPC server before it starts. It
answers ``{name, platform, max_batch_size: 0}`` from MLServer's own model metadata (NOT_FOUND for
an unknown model): MLServer's adaptive batching is not described to the client, so every request
carries its full shape. ModelInfer and every other RPC stay MLServer's unchanged code.

Triton's messages are built in a private protobuf pool: a second ``inference`` package in the
default pool (e.g. tritonclient's ``*_pb2``) collides with MLServer's own ``dataplane_pb2``.
Runs inside MLServer's virtualenv; ``PA_COMPAT=0`` starts MLServer without the extra handler.
"""

from __future__ import annotations

import os
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from mlserver.errors import MLServerError
from mlserver.grpc import server as mlserver_grpc

METHOD = "/inference.GRPCInferenceService/ModelConfig"
_F = descriptor_pb2.FieldDescriptorProto


def _triton_messages() -> tuple[type, type]:
    """ModelConfigRequest and ModelConfigResponse (config: name=1, platform=2, max_batch_size=4)."""
    file = descriptor_pb2.FileDescriptorProto(
        name="mlos_bench/triton_model_config_subset.proto", package="inference", syntax="proto3"
    )
    fields = {
        "ModelConfig": [("name", 1, _F.TYPE_STRING, None), ("platform", 2, _F.TYPE_STRING, None),
                        ("max_batch_size", 4, _F.TYPE_INT32, None)],
        "ModelConfigRequest": [("name", 1, _F.TYPE_STRING, None),
                               ("version", 2, _F.TYPE_STRING, None)],
        "ModelConfigResponse": [("config", 1, _F.TYPE_MESSAGE, ".inference.ModelConfig")],
    }  # fmt: skip
    for message, specs in fields.items():
        proto = file.message_type.add(name=message)
        for name, number, kind, type_name in specs:
            field = proto.field.add(name=name, number=number, type=kind, label=_F.LABEL_OPTIONAL)
            if type_name:
                field.type_name = type_name
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    get = message_factory.GetMessageClass
    return (get(pool.FindMessageTypeByName("inference.ModelConfigRequest")),
            get(pool.FindMessageTypeByName("inference.ModelConfigResponse")))  # fmt: skip


def model_config_handler(data_plane) -> grpc.GenericRpcHandler:
    """A generic handler answering ModelConfig from ``data_plane.model_metadata``."""
    request_cls, response_cls = _triton_messages()

    async def model_config(request, context):
        try:
            meta = await data_plane.model_metadata(name=request.name, version=request.version)
        except MLServerError as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        response = response_cls()
        response.config.name = meta.name
        response.config.platform = meta.platform or "onnxruntime_onnx"
        response.config.max_batch_size = 0
        return response

    handler = grpc.unary_unary_rpc_method_handler(
        model_config,
        request_deserializer=request_cls.FromString,
        response_serializer=response_cls.SerializeToString,
    )
    return grpc.method_handlers_generic_handler(
        "inference.GRPCInferenceService", {"ModelConfig": handler}
    )


def _patch_mlserver() -> None:
    original = mlserver_grpc.GRPCServer._create_server

    def create_server(self):
        server = original(self)
        server.add_generic_rpc_handlers((model_config_handler(self._data_plane),))
        return server

    mlserver_grpc.GRPCServer._create_server = create_server


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    if os.environ.get("PA_COMPAT", "1") != "0":
        _patch_mlserver()
    from mlserver.cli.main import main as mlserver_main

    sys.argv = ["mlserver", "start", argv[0]]
    return mlserver_main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

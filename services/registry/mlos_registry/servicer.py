"""RegistryServicer: thin gRPC layer (convert, await the core, convert back)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from mlos.registry.v1 import registry_pb2, registry_pb2_grpc
from mlos_common.errors import InvalidArgument
from mlos_registry.convert import change_to_pb, config_from_pb, upload_header_from_pb, version_to_pb
from mlos_registry.core import Registry

log = logging.getLogger(__name__)

DEFAULT_CHUNK_BYTES = 1024 * 1024
MIN_CHUNK_BYTES = 64 * 1024
MAX_CHUNK_BYTES = 4 * 1024 * 1024


def chunk_size(requested: int) -> int:
    """0 = the default (1 MiB); anything else is clamped to [64 KiB, 4 MiB]."""
    if requested == 0:
        return DEFAULT_CHUNK_BYTES
    return max(MIN_CHUNK_BYTES, min(MAX_CHUNK_BYTES, requested))


class RegistryServicer(registry_pb2_grpc.RegistryServicer):
    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    async def RegisterModel(self, request: registry_pb2.RegisterModelRequest, context) -> registry_pb2.ModelVersion:
        config = config_from_pb(request.config) if request.HasField("config") else None
        mv = await self._registry.register(request.name, request.path, config, dict(request.labels))
        return version_to_pb(mv)

    async def UploadModel(self, request_iterator, context) -> registry_pb2.ModelVersion:
        messages = aiter(request_iterator)
        first = await anext(messages, None)
        if first is None or first.WhichOneof("part") != "header":
            raise InvalidArgument("UploadModel: the first message must carry `header` (name, size_bytes, sha256)")

        async def chunks() -> AsyncIterator[bytes]:
            async for message in messages:
                if message.WhichOneof("part") != "chunk":
                    raise InvalidArgument("UploadModel: only the first message carries `header`; later ones carry `chunk`")
                yield message.chunk

        return version_to_pb(await self._registry.upload(upload_header_from_pb(first.header), chunks()))

    async def ListModels(self, request: registry_pb2.ListModelsRequest, context) -> registry_pb2.ListModelsResponse:
        versions, revision = await self._registry.listing(request.name)
        return registry_pb2.ListModelsResponse(models=[version_to_pb(v) for v in versions], revision=revision)

    async def GetModel(self, request: registry_pb2.GetModelRequest, context) -> registry_pb2.ModelVersion:
        return version_to_pb(await self._registry.get(request.name, request.version, request.alias))

    async def DeleteModel(self, request: registry_pb2.DeleteModelRequest, context) -> registry_pb2.DeleteModelResponse:
        deleted = await self._registry.delete(request.name, request.version, request.force)
        return registry_pb2.DeleteModelResponse(deleted_versions=deleted)

    async def SetAlias(self, request: registry_pb2.SetAliasRequest, context) -> registry_pb2.ModelVersion:
        return version_to_pb(await self._registry.set_alias(request.name, request.alias, request.version))

    async def DeleteAlias(self, request: registry_pb2.DeleteAliasRequest, context) -> registry_pb2.DeleteAliasResponse:
        return registry_pb2.DeleteAliasResponse(version=await self._registry.delete_alias(request.name, request.alias))

    async def WatchModels(
        self, request: registry_pb2.WatchModelsRequest, context
    ) -> AsyncIterator[registry_pb2.ModelChange]:
        await context.send_initial_metadata(())  # tells a watcher the stream is open before any change
        async for change in self._registry.watch(request.since_revision):
            yield change_to_pb(change)

    async def FetchArtifact(
        self, request: registry_pb2.FetchArtifactRequest, context
    ) -> AsyncIterator[registry_pb2.ArtifactChunk]:
        found, chunks = await self._registry.read_artifact(
            request.name, request.version, chunk_size(request.chunk_bytes), request.alias
        )
        async for chunk in chunks:
            yield registry_pb2.ArtifactChunk(
                data=chunk.data,
                offset=chunk.offset,
                total_bytes=found.size_bytes,
                sha256=found.sha256 if chunk.last else "",
            )

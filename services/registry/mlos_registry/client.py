"""RegistryClient: a small async client for the registry, used by the executor and the CLI.

    async with RegistryClient("127.0.0.1:8101") as registry:
        mv = await registry.register("resnet", "/models/resnet50.onnx", labels={"team": "vision"})
        latest = await registry.get("resnet")            # version 0 = latest
        path, sha = await registry.fetch_artifact("resnet", latest.version, "/tmp/resnet.onnx")

Every method returns domain objects (`ModelVersion`, `ServingConfig`, `TensorSpec` from
`mlos_registry.domain`) and raises `mlos_common.errors.MlosError` subclasses (NotFound,
InvalidArgument, FailedPrecondition, ...), never grpc errors.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncGenerator, Callable, Mapping
from pathlib import Path

from grpc import aio

from mlos.registry.v1 import registry_pb2, registry_pb2_grpc
from mlos_common.bootstrap import client_channel, typed_error
from mlos_common.config import ServiceSettings
from mlos_common.errors import FailedPrecondition
from mlos_registry import upload
from mlos_registry.convert import change_from_pb, config_to_pb, upload_header_to_pb, version_from_pb
from mlos_registry.domain import ModelChange, ModelVersion, ServingConfig

UPLOAD_CHUNK_BYTES = 1024 * 1024


class RegistryClient:
    """Async client. Use as `async with RegistryClient(addr) as c:` or call `close()` yourself.

    `timeout_s` is the deadline of each unary call (None = no deadline); fetch_artifact takes its own.
    Pass `channel` to share an existing grpc.aio channel (it is then not closed by this client);
    else one is made with `settings`' TLS and token (None: from the environment, see client_channel).
    """

    def __init__(
        self, addr: str, *, timeout_s: float | None = 30.0, channel: aio.Channel | None = None,
        settings: ServiceSettings | None = None,
    ) -> None:
        self._peer = f"registry {addr}"
        self._owns_channel = channel is None
        self._channel = channel or client_channel(addr, settings)
        self._stub = registry_pb2_grpc.RegistryStub(self._channel)
        self._timeout_s = timeout_s

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_channel:
            await self._channel.close()

    async def register(
        self,
        name: str,
        path: str | os.PathLike[str],
        config: ServingConfig | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Registers a model file readable by the registry process. Fields of `config` left at
        0/"" take defaults derived from the file. Identical bytes return the existing version."""
        request = registry_pb2.RegisterModelRequest(name=name, path=os.fspath(path), labels=dict(labels or {}))
        if config is not None:
            request.config.CopyFrom(config_to_pb(config))
        try:
            return version_from_pb(await self._stub.RegisterModel(request, timeout=self._timeout_s))
        except aio.AioRpcError as exc:
            raise typed_error(exc, self._peer) from None

    async def upload(
        self,
        name: str,
        path: str | os.PathLike[str],
        config: ServingConfig | None = None,
        labels: Mapping[str, str] | None = None,
        *,
        chunk_bytes: int = UPLOAD_CHUNK_BYTES,
        timeout_s: float | None = None,
    ) -> ModelVersion:
        """Sends a model file or folder from this host (UploadModel) and registers it; the registry
        needs no access to `path`. A folder travels as a tar of its files (see upload.prepare)."""
        source = Path(path)
        prepared = await asyncio.to_thread(upload.prepare, source)
        header = upload.UploadHeader(
            name=name, size_bytes=prepared.size_bytes, sha256=prepared.sha256, config=config,
            labels=dict(labels or {}), archive=prepared.archive, filename=source.name,
        )

        async def messages() -> AsyncGenerator[registry_pb2.UploadModelRequest, None]:
            yield registry_pb2.UploadModelRequest(header=upload_header_to_pb(header))
            with open(prepared.path, "rb") as handle:
                while data := await asyncio.to_thread(handle.read, chunk_bytes):
                    yield registry_pb2.UploadModelRequest(chunk=data)

        try:
            return version_from_pb(await self._stub.UploadModel(messages(), timeout=timeout_s))
        except aio.AioRpcError as exc:
            raise typed_error(exc) from None
        finally:
            if prepared.archive:
                prepared.path.unlink(missing_ok=True)

    async def _unary(self, method: str, request):  # noqa: ANN001, ANN202 - any unary RPC of the stub
        try:
            return await getattr(self._stub, method)(request, timeout=self._timeout_s)
        except aio.AioRpcError as exc:
            raise typed_error(exc, self._peer) from None

    async def listing(self, name: str = "") -> tuple[list[ModelVersion], int]:
        """As `list`, with the registry revision it reflects: `watch(revision)` follows on from it."""
        reply = await self._unary("ListModels", registry_pb2.ListModelsRequest(name=name))
        return [version_from_pb(m) for m in reply.models], reply.revision

    async def list(self, name: str = "") -> list[ModelVersion]:
        """Every version of `name`, or of every model when name is empty."""
        return (await self.listing(name))[0]

    async def get(self, name: str, version: int = 0, alias: str = "") -> ModelVersion:
        """One version of a model: `version`, or the one `alias` points to ("latest" = the highest),
        else the latest. NotFound if absent."""
        request = registry_pb2.GetModelRequest(name=name, version=version, alias=alias)
        return version_from_pb(await self._unary("GetModel", request))

    async def delete(self, name: str, version: int = 0, force: bool = False) -> int:
        """Deletes one version, or every version when version is 0; returns how many were deleted.
        FailedPrecondition if an alias points at one, unless `force` (the alias is deleted too)."""
        request = registry_pb2.DeleteModelRequest(name=name, version=version, force=force)
        return (await self._unary("DeleteModel", request)).deleted_versions

    async def set_alias(self, name: str, alias: str, version: int) -> ModelVersion:
        """Points `alias` at `version` (creates or moves it); returns that version."""
        request = registry_pb2.SetAliasRequest(name=name, alias=alias, version=version)
        return version_from_pb(await self._unary("SetAlias", request))

    async def delete_alias(self, name: str, alias: str) -> int:
        """Removes `alias`; returns the version it pointed to."""
        request = registry_pb2.DeleteAliasRequest(name=name, alias=alias)
        return (await self._unary("DeleteAlias", request)).version

    async def watch(
        self, since_revision: int = 0, on_open: Callable[[], None] | None = None
    ) -> AsyncGenerator[ModelChange, None]:
        """Every change after `since_revision`, then live ones, until the caller stops iterating.
        OutOfRange if the registry no longer keeps those changes (re-list with `listing`).
        `on_open()` runs once the registry has accepted the stream (before any change arrives)."""
        call = self._stub.WatchModels(registry_pb2.WatchModelsRequest(since_revision=since_revision))
        try:
            if on_open is not None:
                await call.initial_metadata()  # the registry sends it as the stream opens
                if not call.done():
                    on_open()
            async for pb in call:
                yield change_from_pb(pb)
        except aio.AioRpcError as exc:
            raise typed_error(exc, self._peer) from None
        finally:
            call.cancel()

    async def fetch_artifact(
        self,
        name: str,
        version: int,
        dest_path: str | os.PathLike[str],
        *,
        chunk_bytes: int = 0,
        timeout_s: float | None = None,
        alias: str = "",
    ) -> tuple[Path, str]:
        """Downloads a version's file to `dest_path` (version 0 = latest, or the one `alias` points
        to) and returns (path, sha256).

        Writes to a temp file beside dest_path, checks offsets and the sha256 sent by the server
        against its own hash, then renames: dest_path only ever holds a complete, verified file.
        FailedPrecondition if the bytes do not match.
        """
        dest = Path(dest_path)
        fd, temp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        temp = Path(temp_name)
        hasher = hashlib.sha256()
        received = 0
        sent_digest = ""
        total = -1
        request = registry_pb2.FetchArtifactRequest(name=name, version=version, chunk_bytes=chunk_bytes, alias=alias)
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    async for chunk in self._stub.FetchArtifact(request, timeout=timeout_s):
                        if chunk.offset != received:
                            raise FailedPrecondition(
                                f"artifact of {name!r} arrived out of order (offset {chunk.offset}, expected {received})"
                            )
                        hasher.update(chunk.data)
                        await asyncio.to_thread(out.write, chunk.data)
                        received += len(chunk.data)
                        total = chunk.total_bytes
                        if chunk.sha256:
                            sent_digest = chunk.sha256
                except aio.AioRpcError as exc:
                    raise typed_error(exc, self._peer) from None
                await asyncio.to_thread(out.flush)
                await asyncio.to_thread(os.fsync, out.fileno())
            digest = hasher.hexdigest()
            if not sent_digest or digest != sent_digest or received != total:
                raise FailedPrecondition(
                    f"artifact of {name!r} version {version} failed verification (got {received} of {total} "
                    f"bytes, sha256 {digest[:12]} vs {sent_digest[:12] or 'none sent'}); try again"
                )
            await asyncio.to_thread(os.replace, temp, dest)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return dest, digest

"""Small async client for the executor, used by the scheduler."""

from __future__ import annotations

from grpc import aio
from opentelemetry.sdk.trace import TracerProvider

from mlos.common.v1 import tensor_pb2
from mlos.executor.v1 import executor_pb2 as pb
from mlos.executor.v1 import executor_pb2_grpc as pbg
from mlos_common.bootstrap import client_channel, typed_error
from mlos_common.config import ServiceSettings
from mlos_common.errors import MlosError, Unavailable
from mlos_executor.link import WorkLink
from mlos_executor.link_shm import LinkShmSettings


def relay(exc: aio.AioRpcError, addr: str) -> MlosError:
    """A peer's failure as a typed error; transport failures say which executor.

    Only UNAVAILABLE and CANCELLED (the executor went away mid-call) are transport failures
    (retryable elsewhere); UNKNOWN is an executor's unexpected error and maps to INTERNAL, which
    the scheduler never retries: the same input would likely fail the same way anywhere.
    """
    code = exc.code().name
    if code in ("UNAVAILABLE", "CANCELLED"):
        return Unavailable(f"executor {addr} unavailable: {exc.details()}")
    return typed_error(exc)


class ExecutorClient:
    def __init__(self, addr: str, *, settings: ServiceSettings | None = None,
                 tracer_provider: TracerProvider | None = None, shm: LinkShmSettings | None = None) -> None:
        """`shm`: offer shared memory on the work stream (used only if the executor proves co-located)."""
        self.addr = addr
        self._channel = client_channel(addr, settings, tracer_provider)
        self._stub = pbg.ExecutorStub(self._channel)
        self.link = WorkLink(self._stub, addr, (settings or ServiceSettings()).max_message_bytes, shm)

    async def __aenter__(self) -> ExecutorClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        await self.link.close()
        await self._channel.close()

    async def load(self, name: str, version: int, sha256: str, timeout_s: float | None = None) -> pb.LoadedModel:
        return (await self.load_model(name, version, sha256, timeout_s=timeout_s)).model

    async def load_model(
        self, name: str, version: int, sha256: str, max_batch_size: int | None = None, timeout_s: float | None = None,
        generation: tensor_pb2.ModelServingConfig | None = None, task: str = "",
    ) -> pb.LoadModelResponse:
        """The whole reply (the loaded model and its warm-up timings). `max_batch_size` travels
        in the serving config (None = none sent: the executor judges from the signature);
        `generation`: a GGUF model's serving settings (context length, threads, chunk, contexts), or a
        tensor model's (instance_count, threads)."""
        request = pb.LoadModelRequest(model=pb.ModelKey(name=name, version=version), sha256=sha256, task=task)
        if generation is not None:
            request.config.CopyFrom(generation)
        if max_batch_size is not None:
            request.config.max_batch_size = max_batch_size
        try:
            return await self._stub.LoadModel(request, timeout=timeout_s)
        except aio.AioRpcError as exc:
            raise relay(exc, self.addr) from None

    async def unload(self, name: str, version: int) -> bool:
        try:
            reply = await self._stub.UnloadModel(pb.UnloadModelRequest(model=pb.ModelKey(name=name, version=version)))
        except aio.AioRpcError as exc:
            raise relay(exc, self.addr) from None
        return reply.unloaded

    async def execute(
        self, name: str, version: int, inputs: list[tensor_pb2.Tensor], output_names: list[str],
        timeout_s: float | None = None,
    ) -> pb.ExecuteBatchResponse:
        request = pb.ExecuteBatchRequest(
            model=pb.ModelKey(name=name, version=version), inputs=inputs, output_names=output_names
        )
        try:
            return await self._stub.ExecuteBatch(request, timeout=timeout_s)
        except aio.AioRpcError as exc:
            raise relay(exc, self.addr) from None

    async def status(self, timeout_s: float = 5.0) -> pb.StatusResponse:
        try:
            return await self._stub.Status(pb.StatusRequest(), timeout=timeout_s)
        except aio.AioRpcError as exc:
            raise relay(exc, self.addr) from None

"""The scheduler's view of an executor: a port the core calls, backed by gRPC here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from mlos.common.v1 import tensor_pb2
from mlos_executor.client import ExecutorClient
from mlos_scheduler.domain import ModelInfo, Tensor


class ExecutorPort(Protocol):
    addr: str
    healthy: bool
    in_flight: int

    async def load(self, model: ModelInfo, timeout_s: float | None) -> None: ...
    async def unload(self, model: ModelInfo) -> None: ...
    async def execute(
        self, model: ModelInfo, inputs: list[Tensor], outputs: list[str], timeout_s: float | None
    ) -> tuple[list[Tensor], int]: ...
    async def close(self) -> None: ...


@dataclass
class RemoteExecutor:
    client: ExecutorClient
    healthy: bool = True
    in_flight: int = 0
    addr: str = field(init=False)

    def __post_init__(self) -> None:
        self.addr = self.client.addr

    async def load(self, model: ModelInfo, timeout_s: float | None) -> None:
        await self.client.load(model.name, model.version, model.sha256, timeout_s=timeout_s)

    async def unload(self, model: ModelInfo) -> None:
        await self.client.unload(model.name, model.version)

    async def execute(
        self, model: ModelInfo, inputs: list[Tensor], outputs: list[str], timeout_s: float | None
    ) -> tuple[list[Tensor], int]:
        pb_inputs = [tensor_pb2.Tensor(name=t.name, datatype=t.datatype, shape=t.shape, raw=t.raw) for t in inputs]
        self.in_flight += 1
        try:
            reply = await self.client.execute(model.name, model.version, pb_inputs, outputs, timeout_s=timeout_s)
        finally:
            self.in_flight -= 1
        return [Tensor(o.name, o.datatype, tuple(o.shape), o.raw) for o in reply.outputs], reply.compute_ns

    async def close(self) -> None:
        await self.client.close()

"""The executor's calls to its peers off the data plane (the grpc side of memory_guard and prefetch):
the predictor's memory footprint and workload forecast, and the registry's latest model versions."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider

from mlos_common.errors import FailedPrecondition
from mlos_executor.config import ExecutorSettings
from mlos_executor.prefetch import Forecast, Target
from mlos_predictor.client import PredictorClient
from mlos_registry.client import RegistryClient
from mlos_registry.domain import ModelVersion

CALL_TIMEOUT_S = 5.0


class PredictorPeer:
    """`await PredictorPeer(addr, settings).open()`; failures raise typed errors (Unavailable...)."""

    def __init__(self, addr: str, settings: ExecutorSettings, tracer_provider: TracerProvider | None = None) -> None:
        self.addr = addr
        self._client = PredictorClient(addr, settings=settings, tracer_provider=tracer_provider, timeout_s=CALL_TIMEOUT_S)

    async def open(self) -> PredictorPeer:
        await self._client.__aenter__()
        return self

    async def close(self) -> None:
        await self._client.__aexit__(None, None, None)

    async def footprint_mb(self, row: list[float]) -> tuple[float, str]:
        """The predictor's `memory` answer for `row` (MB) and who answered, in words."""
        p = await self._client.predict("memory", row)
        model = f"its trained memory model v{p.model_version}" if p.model_version else "the memory kind's documented prior"
        return p.value, f"the predictor at {self.addr}, {model}"

    async def workload(self) -> list[Forecast]:
        """Every followed model's forecast request rate (GetScores("workload"))."""
        reply = await self._client.scores("workload")
        return [Forecast(s.entity, s.prediction.value) for s in reply.scores]


class RegistryPeer:
    def __init__(self, addr: str, settings: ExecutorSettings | None = None) -> None:
        self._client = RegistryClient(addr, timeout_s=CALL_TIMEOUT_S, settings=settings)

    async def close(self) -> None:
        await self._client.close()

    async def latest(self, name: str) -> Target:
        """The latest registered version of `name`; NotFound when unknown, FailedPrecondition when
        it is not an ONNX model (this executor runs ONNX Runtime)."""
        return prefetch_target(await self._client.get(name))


def prefetch_target(mv: ModelVersion) -> Target:
    """What prefetch loads for a registered version; FailedPrecondition when it is not an ONNX model."""
    if mv.format != "onnx":
        raise FailedPrecondition(f"model {mv.name!r} v{mv.version} is {mv.format}; this executor runs ONNX models")
    return Target(mv.name, mv.version, mv.sha256, mv.config.max_batch_size)

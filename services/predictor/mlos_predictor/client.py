"""Small async clients of the predictor: PredictorClient (requests) and TelemetryStreamer.

TelemetryStreamer (see mlos_predictor.streamer) is what an executor uses on its data plane:
offer() never waits on the predictor.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias, TypeVar

from grpc import aio
from opentelemetry.sdk.trace import TracerProvider

from mlos.predictor.v1 import predictor_pb2, predictor_pb2_grpc
from mlos_common.bootstrap import client_channel, typed_error
from mlos_common.config import ServiceSettings
from mlos_predictor.convert import profile_from_proto, summary_from_proto
from mlos_predictor.latency import LatencySummary
from mlos_predictor.profiles import LatencyProfile
from mlos_predictor.streamer import Offerable, StreamerStats, TelemetryStreamer, batch_of

__all__ = ["PredictorClient", "ProfileUpdate", "TelemetryAck", "TelemetryStreamer", "StreamerStats"]

Record: TypeAlias = Offerable  # execution records and the RateSample/ClientSample/HealthSample/MemorySample messages
Row: TypeAlias = Sequence[float] | Mapping[str, float]
T = TypeVar("T")


def feature_row(row: Row) -> predictor_pb2.FeatureRow:
    """A FeatureRow from values in the kind's order, or from a name -> value mapping."""
    if isinstance(row, Mapping):
        return predictor_pb2.FeatureRow(named={k: float(v) for k, v in row.items()})
    return predictor_pb2.FeatureRow(values=[float(v) for v in row])


@dataclass(frozen=True, slots=True)
class TelemetryAck:
    accepted: int
    rejected: int


@dataclass(frozen=True, slots=True)
class ProfileUpdate:
    """One WatchLatencyProfiles message: every profile (snapshot) or the ones that changed."""

    profiles: list[LatencyProfile]
    snapshot: bool


class PredictorClient:
    """`async with PredictorClient(addr) as c: await c.latency_summary("resnet")`.

    Failures are raised as typed mlos_common errors (NotFound, InvalidArgument, Unavailable...).
    """

    def __init__(
        self,
        addr: str,
        *,
        settings: ServiceSettings | None = None,
        tracer_provider: TracerProvider | None = None,
        timeout_s: float | None = 10.0,
        channel: aio.Channel | None = None,
    ) -> None:
        """`channel`: one made by the caller (e.g. with its own reconnect options); closed on exit."""
        self.addr = addr
        self._given_channel = channel
        self._settings = settings
        self._tracer_provider = tracer_provider
        self._timeout_s = timeout_s
        self._channel: aio.Channel | None = None
        self._stub: predictor_pb2_grpc.PredictorStub | None = None

    async def __aenter__(self) -> PredictorClient:
        self._channel = self._given_channel or client_channel(self.addr, self._settings, self._tracer_provider)
        self._stub = predictor_pb2_grpc.PredictorStub(self._channel)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._channel is not None:
            await self._channel.close()
        self._channel = self._stub = None

    @property
    def stub(self) -> predictor_pb2_grpc.PredictorStub:
        if self._stub is None:
            raise RuntimeError("PredictorClient is not open; use `async with`")
        return self._stub

    async def report(self, records: AsyncIterable[Record] | Iterable[Record]) -> TelemetryAck:
        """Streams records and samples in one ReportTelemetry call; returns the server's counts."""

        async def requests() -> AsyncIterator[predictor_pb2.TelemetryBatch]:
            if isinstance(records, AsyncIterable):
                async for rec in records:
                    yield batch_of([rec])
            else:
                yield batch_of(records)

        try:
            ack = await self.stub.ReportTelemetry(requests())
        except aio.AioRpcError as exc:
            raise typed_error(exc) from exc
        return TelemetryAck(accepted=ack.accepted, rejected=ack.rejected)

    async def _call(self, method: Callable[..., Awaitable[T]], request: object) -> T:
        """One unary call with the client's timeout; gRPC failures become typed errors."""
        try:
            return await method(request, timeout=self._timeout_s)
        except aio.AioRpcError as exc:
            raise typed_error(exc) from exc

    async def predict(self, kind: str, row: Row, *, no_cache: bool = False) -> predictor_pb2.Prediction:
        request = predictor_pb2.PredictRequest(kind=kind, features=feature_row(row), no_cache=no_cache)
        return (await self._call(self.stub.Predict, request)).prediction

    async def predict_batch(
        self, kind: str, rows: Iterable[Row], *, no_cache: bool = False
    ) -> list[predictor_pb2.Prediction]:
        request = predictor_pb2.PredictBatchRequest(kind=kind, rows=[feature_row(r) for r in rows], no_cache=no_cache)
        return list((await self._call(self.stub.PredictBatch, request)).predictions)

    async def scores(self, kind: str, entities: Iterable[str] = ()) -> predictor_pb2.GetScoresResponse:
        """The latest prediction per followed entity of `kind` (workload, failure, threat)."""
        request = predictor_pb2.GetScoresRequest(kind=kind, entities=list(entities))
        return await self._call(self.stub.GetScores, request)

    async def metrics(self, kind: str = "") -> list[predictor_pb2.KindMetrics]:
        return list((await self._call(self.stub.GetMetrics, predictor_pb2.GetMetricsRequest(kind=kind))).metrics)

    async def reset_metrics(self, kind: str = "") -> None:
        await self._call(self.stub.ResetMetrics, predictor_pb2.ResetMetricsRequest(kind=kind))

    async def cache_stats(self) -> list[predictor_pb2.KindCacheStats]:
        return list((await self._call(self.stub.CacheStats, predictor_pb2.CacheStatsRequest())).caches)

    async def clear_cache(self, kind: str = "") -> int:
        return (await self._call(self.stub.ClearCache, predictor_pb2.ClearCacheRequest(kind=kind))).cleared

    async def model_info(self, kind: str = "") -> list[predictor_pb2.KindModelInfo]:
        return list((await self._call(self.stub.ModelInfo, predictor_pb2.ModelInfoRequest(kind=kind))).models)

    async def train(self, kind: str = "") -> list[predictor_pb2.TrainOutcome]:
        return list((await self._call(self.stub.Train, predictor_pb2.TrainRequest(kind=kind))).outcomes)

    async def latency_summary(self, model: str = "", version: int = 0) -> list[LatencySummary]:
        """Summaries for `model` (empty = every model); version 0 aggregates all versions."""
        request = predictor_pb2.LatencySummaryRequest(model_name=model, model_version=version)
        try:
            reply = await self.stub.GetLatencySummary(request, timeout=self._timeout_s)
        except aio.AioRpcError as exc:
            raise typed_error(exc) from exc
        return [summary_from_proto(s) for s in reply.summaries]

    async def watch_profiles(self, model: str = "", interval_ms: int = 0) -> AsyncIterator[ProfileUpdate]:
        """Latency profiles of `model` (empty = every model): the snapshot first, then changes,
        for as long as the caller iterates (no deadline). Closing the iterator cancels the call;
        a broken stream raises a typed error (Unavailable when the predictor went away)."""
        request = predictor_pb2.WatchLatencyProfilesRequest(model_name=model, interval_ms=interval_ms)
        call = self.stub.WatchLatencyProfiles(request)
        try:
            async for reply in call:
                yield ProfileUpdate([profile_from_proto(p) for p in reply.profiles], reply.snapshot)
        except aio.AioRpcError as exc:
            raise typed_error(exc) from exc
        finally:
            call.cancel()

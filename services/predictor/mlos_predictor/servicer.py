"""gRPC servicer: convert, call the latency book, the engine, the books or the learning loop,
convert back. Typed errors (mlos_common.errors, mlos_predictor.errors) become statuses in the
ErrorInterceptor.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

from grpc import aio

from mlos.predictor.v1 import predictor_pb2, predictor_pb2_grpc
from mlos_predictor.convert import (
    cache_stats_to_proto,
    kind_metrics_to_proto,
    model_info_to_proto,
    outcome_to_proto,
    prediction_to_proto,
    profile_to_proto,
    row_from_proto,
    rows_from_proto,
    scores_to_proto,
    summary_to_proto,
    telemetry_from_proto,
)
from mlos_predictor.engine import Engine, build_engine
from mlos_predictor.intake import Intake
from mlos_predictor.kinds import KINDS
from mlos_predictor.latency import LatencyBook
from mlos_predictor.loop import Learner
from mlos_predictor.profiles import ProfileHub, interval_s_of
from mlos_predictor.rows import kinds_of, spec_for
from mlos_predictor.scores import scores

log = logging.getLogger(__name__)


class PredictorServicer(predictor_pb2_grpc.PredictorServicer):
    def __init__(
        self,
        book: LatencyBook,
        hub: ProfileHub | None = None,
        *,
        engine: Engine | None = None,
        intake: Intake | None = None,
        learner: Learner | None = None,
    ) -> None:
        """`engine` answers the five kinds (a default one with the priors when None) and GetScores;
        `intake` turns telemetry into the books' rows (ModelInfo.rows_available counts them);
        `learner` trains on those rows and swaps models into the engine's slots."""
        self._book = book
        self._hub = hub or ProfileHub(book)
        self._engine = engine or build_engine()
        self._intake = intake or Intake(book)
        self._learner = learner or Learner(self._engine.slots, self._intake)

    async def ReportTelemetry(
        self, request_iterator: AsyncIterator[predictor_pb2.TelemetryBatch], context: aio.ServicerContext
    ) -> predictor_pb2.TelemetryAck:
        accepted = rejected = 0
        ingest = self._intake.ingest
        async for batch in request_iterator:
            ok, bad = ingest(telemetry_from_proto(batch))
            accepted += ok
            rejected += bad
        log.debug("telemetry stream from %s closed: %d accepted, %d rejected", context.peer(), accepted, rejected)
        return predictor_pb2.TelemetryAck(accepted=accepted, rejected=rejected)

    async def GetLatencySummary(
        self, request: predictor_pb2.LatencySummaryRequest, context: aio.ServicerContext
    ) -> predictor_pb2.LatencySummaryResponse:
        summaries = self._book.summary(request.model_name, request.model_version)
        return predictor_pb2.LatencySummaryResponse(summaries=[summary_to_proto(s) for s in summaries])

    async def WatchLatencyProfiles(
        self, request: predictor_pb2.WatchLatencyProfilesRequest, context: aio.ServicerContext
    ) -> AsyncIterator[predictor_pb2.LatencyProfiles]:
        interval_s = interval_s_of(request.interval_ms)
        async for profiles, snapshot in self._hub.watch(request.model_name, interval_s):
            yield predictor_pb2.LatencyProfiles(profiles=[profile_to_proto(p) for p in profiles], snapshot=snapshot)

    async def Predict(
        self, request: predictor_pb2.PredictRequest, context: aio.ServicerContext
    ) -> predictor_pb2.PredictResponse:
        start = time.perf_counter()
        spec = spec_for(request.kind)
        (result,) = self._engine.predict(spec.kind, row_from_proto(spec, request.features), no_cache=request.no_cache)
        return predictor_pb2.PredictResponse(
            prediction=prediction_to_proto(result), latency_ms=(time.perf_counter() - start) * 1000.0
        )

    async def PredictBatch(
        self, request: predictor_pb2.PredictBatchRequest, context: aio.ServicerContext
    ) -> predictor_pb2.PredictBatchResponse:
        start = time.perf_counter()
        spec = spec_for(request.kind)
        rows = rows_from_proto(spec, request.rows, self._engine.max_batch)
        results = self._engine.predict(spec.kind, rows, no_cache=request.no_cache)
        return predictor_pb2.PredictBatchResponse(
            predictions=[prediction_to_proto(r) for r in results], latency_ms=(time.perf_counter() - start) * 1000.0
        )

    async def GetMetrics(
        self, request: predictor_pb2.GetMetricsRequest, context: aio.ServicerContext
    ) -> predictor_pb2.GetMetricsResponse:
        metrics = self._engine.metrics.snapshot(kinds_of(request.kind))
        return predictor_pb2.GetMetricsResponse(metrics=[kind_metrics_to_proto(m) for m in metrics])

    async def ResetMetrics(
        self, request: predictor_pb2.ResetMetricsRequest, context: aio.ServicerContext
    ) -> predictor_pb2.ResetMetricsResponse:
        self._engine.metrics.reset(kinds_of(request.kind))
        return predictor_pb2.ResetMetricsResponse()

    async def CacheStats(
        self, request: predictor_pb2.CacheStatsRequest, context: aio.ServicerContext
    ) -> predictor_pb2.CacheStatsResponse:
        return predictor_pb2.CacheStatsResponse(caches=[cache_stats_to_proto(s) for s in self._engine.cache_stats(KINDS)])

    async def ClearCache(
        self, request: predictor_pb2.ClearCacheRequest, context: aio.ServicerContext
    ) -> predictor_pb2.ClearCacheResponse:
        return predictor_pb2.ClearCacheResponse(cleared=self._engine.clear_cache(kinds_of(request.kind)))

    def _rows_available(self, kind: str) -> int:
        store = self._intake.stores().get(kind)
        return 0 if store is None else len(store)

    async def ModelInfo(
        self, request: predictor_pb2.ModelInfoRequest, context: aio.ServicerContext
    ) -> predictor_pb2.ModelInfoResponse:
        slots = self._engine.slots
        models = [model_info_to_proto(slots[k], self._rows_available(k)) for k in kinds_of(request.kind)]
        return predictor_pb2.ModelInfoResponse(models=models)

    async def GetScores(
        self, request: predictor_pb2.GetScoresRequest, context: aio.ServicerContext
    ) -> predictor_pb2.GetScoresResponse:
        return scores_to_proto(*scores(request.kind, request.entities, self._intake, self._engine.predict))

    async def Train(self, request: predictor_pb2.TrainRequest, context: aio.ServicerContext) -> predictor_pb2.TrainResponse:
        outcomes = await self._learner.train(kinds_of(request.kind))
        slots = self._engine.slots
        return predictor_pb2.TrainResponse(
            outcomes=[outcome_to_proto(o, slots[o.kind], self._rows_available(o.kind)) for o in outcomes]
        )

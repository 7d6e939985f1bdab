"""gRPC servicer: convert, call the latency book, convert back. Errors map via the interceptor."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from grpc import aio

from mlos.predictor.v1 import predictor_pb2, predictor_pb2_grpc
from mlos_predictor.convert import profile_to_proto, record_from_proto, summary_to_proto
from mlos_predictor.latency import LatencyBook
from mlos_predictor.profiles import ProfileHub, interval_s_of

log = logging.getLogger(__name__)


class PredictorServicer(predictor_pb2_grpc.PredictorServicer):
    def __init__(self, book: LatencyBook, hub: ProfileHub | None = None) -> None:
        self._book = book
        self._hub = hub or ProfileHub(book)

    async def ReportTelemetry(
        self, request_iterator: AsyncIterator[predictor_pb2.TelemetryBatch], context: aio.ServicerContext
    ) -> predictor_pb2.TelemetryAck:
        accepted = rejected = 0
        record = self._book.record
        async for batch in request_iterator:
            for msg in batch.records:
                if record(record_from_proto(msg)):
                    accepted += 1
                else:
                    rejected += 1
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

"""gRPC servicer: convert, call the latency book, convert back. Errors map via the interceptor."""

from __future__ import annotations

import logging
from typing import AsyncIterator

from grpc import aio
from mlos.predictor.v1 import predictor_pb2, predictor_pb2_grpc

from mlos_predictor.convert import record_from_proto, summary_to_proto
from mlos_predictor.latency import LatencyBook

log = logging.getLogger(__name__)


class PredictorServicer(predictor_pb2_grpc.PredictorServicer):
    def __init__(self, book: LatencyBook) -> None:
        self._book = book

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

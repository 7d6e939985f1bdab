"""gRPC servicer: convert, call the books and the learning loop, convert back. Errors map via the interceptor."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from grpc import aio

from mlos.predictor.v1 import predictor_pb2, predictor_pb2_grpc
from mlos_predictor.convert import profile_to_proto, scores_to_proto, summary_to_proto, telemetry_from_proto
from mlos_predictor.intake import Intake
from mlos_predictor.latency import LatencyBook
from mlos_predictor.models import ModelSlot, make_slots
from mlos_predictor.profiles import ProfileHub, interval_s_of
from mlos_predictor.scores import PredictFn, scores, slot_predict

log = logging.getLogger(__name__)


class PredictorServicer(predictor_pb2_grpc.PredictorServicer):
    def __init__(
        self,
        book: LatencyBook,
        hub: ProfileHub | None = None,
        *,
        intake: Intake | None = None,
        slots: dict[str, ModelSlot] | None = None,
        predict: PredictFn | None = None,
    ) -> None:
        """`slots` are the model slots shared with the serving core and the learning loop;
        `predict` answers GetScores (default: straight on the slots' models)."""
        self._book = book
        self._hub = hub or ProfileHub(book)
        self._intake = intake or Intake(book)
        self._slots = slots if slots is not None else make_slots()
        self._predict = predict or slot_predict(self._slots)

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

    async def GetScores(
        self, request: predictor_pb2.GetScoresRequest, context: aio.ServicerContext
    ) -> predictor_pb2.GetScoresResponse:
        return scores_to_proto(*scores(request.kind, request.entities, self._intake, self._predict))

"""Builds the predictor's gRPC server (create_server) and its process start-up (start)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from grpc import aio
from prometheus_client import CollectorRegistry

from mlos.predictor.v1 import predictor_pb2, predictor_pb2_grpc
from mlos_common.bootstrap import GrpcService, ServerParts, build_server, set_serving
from mlos_common.service_main import Closer
from mlos_predictor.config import PredictorSettings
from mlos_predictor.intake import Intake, IntakeLimits
from mlos_predictor.latency import LatencyBook
from mlos_predictor.models import ModelSlot, make_slots
from mlos_predictor.profiles import ProfileHub
from mlos_predictor.servicer import PredictorServicer

log = logging.getLogger(__name__)

SERVICE_NAME = predictor_pb2.DESCRIPTOR.services_by_name["Predictor"].full_name


def predictor_services(
    book: LatencyBook,
    hub: ProfileHub | None = None,
    intake: Intake | None = None,
    slots: dict[str, ModelSlot] | None = None,
) -> list[GrpcService]:
    servicer = PredictorServicer(book, hub, intake=intake, slots=slots)
    return [
        GrpcService(SERVICE_NAME, lambda server: predictor_pb2_grpc.add_PredictorServicer_to_server(servicer, server))
    ]


def create_server(
    settings: PredictorSettings, book: LatencyBook, parts: ServerParts | None = None, hub: ProfileHub | None = None
) -> tuple[aio.Server, int]:
    """The bound (not yet started) server and its port. Health stays NOT_SERVING until set."""
    return build_server(settings, predictor_services(book, hub), parts or ServerParts())


async def start(
    settings: PredictorSettings, parts: ServerParts, metrics_registry: CollectorRegistry
) -> tuple[aio.Server, int, Sequence[Closer]]:
    book = LatencyBook(window=settings.window, max_models=settings.max_models, registry=metrics_registry)
    intake = Intake(book, intake_limits(settings), metrics_registry)
    slots = make_slots()
    services = predictor_services(book, ProfileHub(book), intake, slots)
    server, port = build_server(settings, services, parts)
    await set_serving(parts, services, True)
    log.info("predictor on %s:%d (window %d, max %d series)", settings.host, port, settings.window, settings.max_models)
    return server, port, []


def intake_limits(settings: PredictorSettings) -> IntakeLimits:
    return IntakeLimits(
        window_rows=settings.window_rows,
        max_entities=settings.max_entities,
        failure_horizon_s=settings.failure_horizon_s,
        threat_horizon_s=settings.threat_horizon_s,
        max_skew_s=settings.max_clock_skew_s,
    )

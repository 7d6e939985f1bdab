"""Builds the predictor's gRPC server (create_server) and its process start-up (start)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from grpc import aio
from prometheus_client import CollectorRegistry

from mlos.predictor.v1 import predictor_pb2, predictor_pb2_grpc
from mlos_common.access import predictor_http_roles_for
from mlos_common.bootstrap import GrpcService, ServerParts, build_server, set_serving
from mlos_common.http_auth import http_guard
from mlos_common.service_main import Closer
from mlos_predictor.config import PredictorSettings
from mlos_predictor.engine import Engine, build_engine
from mlos_predictor.http_api import start_http
from mlos_predictor.intake import Intake, IntakeLimits
from mlos_predictor.latency import LatencyBook, ProfileKey
from mlos_predictor.loop import Learner
from mlos_predictor.models import ModelSlot, make_slots
from mlos_predictor.profiles import Expected, ProfileHub
from mlos_predictor.registry_link import RegistryModelStore
from mlos_predictor.servicer import PredictorServicer

log = logging.getLogger(__name__)

SERVICE_NAME = predictor_pb2.DESCRIPTOR.services_by_name["Predictor"].full_name


def engine_for(
    settings: PredictorSettings, registry: CollectorRegistry | None = None, slots: dict[str, ModelSlot] | None = None
) -> Engine:
    """The five kinds' engine as the settings say (priors answer until models are trained)."""
    return build_engine(
        registry, cache_capacity=settings.cache_capacity, ttl_ms=settings.cache_ttl_ms,
        max_batch=settings.max_batch, metrics_window=settings.metrics_window, slots=slots,
    )  # fmt: skip


def predictor_services(
    book: LatencyBook,
    hub: ProfileHub | None = None,
    engine: Engine | None = None,
    intake: Intake | None = None,
    learner: Learner | None = None,
) -> list[GrpcService]:
    servicer = PredictorServicer(book, hub, engine=engine, intake=intake, learner=learner)
    return [
        GrpcService(SERVICE_NAME, lambda server: predictor_pb2_grpc.add_PredictorServicer_to_server(servicer, server))
    ]


def create_server(
    settings: PredictorSettings,
    book: LatencyBook,
    parts: ServerParts | None = None,
    hub: ProfileHub | None = None,
    engine: Engine | None = None,
    intake: Intake | None = None,
    learner: Learner | None = None,
) -> tuple[aio.Server, int]:
    """The bound (not yet started) server and its port. Health stays NOT_SERVING until set.
    Without `engine`, one is built from the settings (without Prometheus series); the caller
    closes `learner` (its training process) after the server."""
    services = predictor_services(book, hub, engine or engine_for(settings), intake, learner)
    return build_server(settings, services, parts or ServerParts())


async def start(
    settings: PredictorSettings, parts: ServerParts, metrics_registry: CollectorRegistry
) -> tuple[aio.Server, int, Sequence[Closer]]:
    """The predictor: books fed by telemetry, one model slot per kind (shared by every part),
    the learning loop (restores registered models, trains every train_interval_s)."""
    book = LatencyBook(window=settings.window, max_models=settings.max_models, registry=metrics_registry)
    engine = engine_for(settings, metrics_registry, make_slots())
    intake = Intake(book, intake_limits(settings), metrics_registry)
    learner, close_learning = learning_loop(settings, engine.slots, intake, metrics_registry)
    hub = ProfileHub(book, expected=expected_ms_of(engine.slots, intake))
    services = predictor_services(book, hub, engine, intake, learner)
    server, port = build_server(settings, services, parts)
    closers: list[Closer] = [close_learning]
    if settings.http_port >= 0:  # the seed daemon's HTTP API: the same engine, on this loop
        http_port, close_http = await start_http(
            engine, settings.host, settings.http_port, max_body_bytes=settings.max_message_bytes,
            shutdown_timeout_s=settings.shutdown_grace_s, registry=metrics_registry,
            guard=http_guard(settings, predictor_http_roles_for),
        )  # fmt: skip
        parts.extra_ports["http_port"] = http_port
        closers.append(close_http)
    await set_serving(parts, services, True)
    log.info("predictor on %s:%d (window %d, max %d series)", settings.host, port, settings.window, settings.max_models)
    return server, port, closers


def learning_loop(
    settings: PredictorSettings, slots: dict[str, ModelSlot], intake: Intake, registry: CollectorRegistry | None = None
) -> tuple[Learner, Closer]:
    """The learner over the engine's slots and the books, its background work started (restore
    from the registry, scheduled training), and the closer that stops that work and the
    training process."""
    store = RegistryModelStore(settings.registry_addr, settings=settings) if settings.registry_addr else None
    learner = Learner(
        slots, intake, store=store, data_dir=settings.resolved_data_dir(),
        min_rows=settings.min_train_rows, min_new_rows=settings.min_new_rows,
        scheduled_kinds=settings.scheduled_kinds(), train_timeout_s=settings.train_timeout_s,
        train_memory_limit_mb=settings.train_memory_limit_mb, registry=registry,
    )  # fmt: skip
    tasks: list[asyncio.Task] = []
    if learner.off_reason is not None:
        log.warning("%s; the predictor serves its priors and registered models", learner.off_reason)
    if store is not None:
        tasks.append(asyncio.create_task(learner.restore_until_done(), name="predictor-restore"))
    else:
        log.info("no MLOS_PREDICTOR_REGISTRY_ADDR: learned models are served but not registered")
    if settings.train_interval_s > 0:
        tasks.append(asyncio.create_task(learner.run(settings.train_interval_s), name="predictor-learning"))

    async def close() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await learner.close()
        if store is not None:
            await store.close()

    return learner, close


def expected_ms_of(slots: dict[str, ModelSlot], intake: Intake) -> Expected:
    """LatencyProfile.expected_ms per profile key: the trained latency model's forecast, else 0."""

    def expected(keys: list[ProfileKey]) -> list[float]:
        slot = slots["latency"]
        if slot.card.source != "trained":
            return [0.0] * len(keys)
        return intake.latency_rows.expected_ms(keys, slot.model)

    return expected


def intake_limits(settings: PredictorSettings) -> IntakeLimits:
    return IntakeLimits(
        window_rows=settings.window_rows,
        max_entities=settings.max_entities,
        failure_horizon_s=settings.failure_horizon_s,
        threat_horizon_s=settings.threat_horizon_s,
        max_skew_s=settings.max_clock_skew_s,
    )

"""Scheduler server: create_server for tests, start for `python -m mlos_scheduler`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from grpc import aio
from grpc_health.v1 import health_pb2
from prometheus_client import CollectorRegistry

from mlos.inference import grpc_service_pb2_grpc as pbg
from mlos.scheduler.v1 import scheduler_pb2_grpc as spbg
from mlos_common.bootstrap import GrpcService, ServerParts, build_server, client_channel, set_serving
from mlos_common.shm import ShmCollector, ShmRegistry
from mlos_common.tls import add_port
from mlos_executor.client import ExecutorClient
from mlos_executor.link_shm import LinkCollector, LinkShmSettings
from mlos_registry.client import RegistryClient
from mlos_registry.follow import ViewFollower, WatchCollector
from mlos_registry.model_view import ModelView
from mlos_scheduler.admission import AdmissionBook
from mlos_scheduler.batch_policy import BatchPolicy
from mlos_scheduler.catalog import RegistryCatalog
from mlos_scheduler.client_stats import ClientBook, RateBook
from mlos_scheduler.config import SchedulerSettings
from mlos_scheduler.core import Scheduler
from mlos_scheduler.dispatch import Dispatcher
from mlos_scheduler.executors import ExecutorPort, RemoteExecutor
from mlos_scheduler.front_door import FrontDoor
from mlos_scheduler.peers import Peer, PeerMonitor
from mlos_scheduler.predictor_link import PredictorLink
from mlos_scheduler.profiles import ProfileBook
from mlos_scheduler.rest import start_rest
from mlos_scheduler.risk import FailureRisk
from mlos_scheduler.routing import RoutingMetrics
from mlos_scheduler.scores import ScoreTable
from mlos_scheduler.servicer import AdminServicer, InferenceServicer
from mlos_scheduler.startup import StartupModels, parse_names
from mlos_scheduler.stats import StatsBook
from mlos_scheduler.threat import ThreatGate
from mlos_scheduler.window import windows_us

log = logging.getLogger(__name__)

INFERENCE_SERVICE = "inference.GRPCInferenceService"
ADMIN_SERVICE = "mlos.scheduler.v1.SchedulerAdmin"


def services(core: Scheduler, shm: ShmRegistry | None = None) -> list[GrpcService]:
    inference = InferenceServicer(core, shm)
    admin = AdminServicer(core)
    return [
        GrpcService(INFERENCE_SERVICE, lambda s: pbg.add_GRPCInferenceServiceServicer_to_server(inference, s)),
        GrpcService(ADMIN_SERVICE, lambda s: spbg.add_SchedulerAdminServicer_to_server(admin, s)),
    ]


def create_server(
    settings: SchedulerSettings, core: Scheduler, parts: ServerParts | None = None, shm: ShmRegistry | None = None
) -> tuple[aio.Server, int]:
    return build_server(settings, services(core, shm), parts or ServerParts(), settings.reuse_port)


def shm_registry(registry: CollectorRegistry | None) -> ShmRegistry:
    """The front door's shared memory regions, with their metrics in `registry`."""
    shm = ShmRegistry()
    if registry is not None:
        registry.register(ShmCollector(shm))
    return shm


def build_core(
    settings: SchedulerSettings, parts: ServerParts, registry: CollectorRegistry | None,
    profiles: ProfileBook | None = None,
) -> tuple[Scheduler, RegistryCatalog]:
    """`profiles`: the execution-time book the deadline prediction reads (start() passes the one
    its ProfileFeed keeps up to date). Call from the event loop: the registry follower starts here
    (registry_watch); close the returned catalog after the core."""
    catalog = registry_catalog(settings, parts, registry)
    shm = None
    if settings.executor_shm == "auto":
        shm = LinkShmSettings(min_bytes=settings.executor_shm_min_bytes, arena_bytes=settings.executor_shm_arena_bytes)
    remotes = [
        RemoteExecutor(
            ExecutorClient(addr, settings=settings, tracer_provider=parts.tracer_provider, shm=shm),
            link_mode=settings.executor_link,
        )
        for addr in settings.executor_list()
    ]
    if registry is not None:
        registry.register(LinkCollector({e.addr: e.client.link.counters for e in remotes}))
    executors: list[ExecutorPort] = list(remotes)
    stats = StatsBook(registry)
    scores = score_table(settings)
    dispatcher = Dispatcher(
        executors, stats, settings.execute_timeout_s, breaker_failures=settings.breaker_failures,
        breaker_open_s=settings.breaker_open_s, metrics=RoutingMetrics(registry),
        risk=FailureRisk(scores, settings.failure_avoid_probability, registry) if scores is not None else None,
    )
    core = Scheduler(
        lookup=catalog.lookup,
        lister=catalog.lister,
        executors=executors,
        stats=stats,
        dispatcher=dispatcher,
        max_queue_size=settings.max_queue_size,
        batch_slots=settings.batch_slots,
        heavy_batch_s=settings.heavy_batch_ms / 1000,
        execute_timeout_s=settings.execute_timeout_s,
        policy=batch_policy(settings),
        admission=AdmissionBook(registry),
        profiles=profiles if profiles is not None else ProfileBook(),
        scores=scores,
    )
    if scores is not None:
        gate = ThreatGate(scores, settings.threat_block_score, settings.threat_action, registry)
        clients = ClientBook(settings.max_tracked_clients)
        core.door = FrontDoor(clients, RateBook(core.latest), gate, settings.threat_exempt_loopback)
    catalog.follow(core)
    return core, catalog


def registry_catalog(settings: SchedulerSettings, parts: ServerParts, registry: CollectorRegistry | None) -> RegistryCatalog:
    """Model lookups through the registry's model view (registry_watch), with its metrics in `registry`."""
    client = RegistryClient(
        settings.registry_addr, channel=client_channel(settings.registry_addr, settings, parts.tracer_provider)
    )
    if not settings.registry_watch:
        return RegistryCatalog(client)
    follower = ViewFollower.to(settings.registry_addr, ModelView(), settings)
    if registry is not None:
        registry.register(WatchCollector(follower))
    return RegistryCatalog(client, follower)


def score_table(settings: SchedulerSettings) -> ScoreTable | None:
    """The table of the predictor's scores (None without a predictor): a score is stale after
    scores_stale_intervals polls without the predictor saying it again."""
    if not settings.predictor_addr:
        return None
    stale_after_s = settings.scores_interval_ms / 1000 * settings.scores_stale_intervals
    return ScoreTable(stale_after_s, settings.scores_max_age_s)


def batch_policy(settings: SchedulerSettings) -> BatchPolicy:
    if not settings.fast_path:
        log.info("fast path off (MLOS_SCHEDULER_FAST_PATH=false): a lone request waits the batching window")
    return BatchPolicy(
        order=settings.policy,
        predicting=settings.predict,
        miss_thresholds=settings.miss_thresholds(),
        return_margin_s=settings.return_margin_ms / 1000,
        priority_levels=settings.priority_levels,
        aging_s=settings.aging_ms / 1000,
        windows_us=windows_us(settings.preset, settings.window_low_us, settings.window_medium_us, settings.window_high_us),
        fast_path=settings.fast_path,
    )


REGISTRY_HEALTH = "mlos.registry"  # grpc.health.v1 entry: whether the scheduler's registry answers
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def peer_monitor(settings: SchedulerSettings, core: Scheduler, parts: ServerParts, svcs: list[GrpcService]) -> PeerMonitor:
    """Peers ready = at least one executor answers SERVING and the registry does — until the
    scheduler has been ready once: after that the registry is a dependency, not a condition
    (loaded models serve without it, so a registry restart does not take every front door out of
    its load balancer). Health follows core.server_ready (see peers.py), re-published each round it
    changes (breakers too); the registry's own state is the health entry REGISTRY_HEALTH."""
    registry_peer = Peer("registry", settings.registry_addr, settings=settings)
    executor_peers = [Peer("executor", e.addr, settings=settings) for e in core.executors]
    published: list[bool] = []
    registry_published: list[bool] = []

    async def each_round() -> None:
        lost = False
        for executor, peer in zip(core.executors, executor_peers):
            lost |= executor.healthy and not peer.serving
            executor.healthy = peer.serving
        core.peers_ready = any(p.serving for p in executor_peers) and (registry_peer.serving or True in published)
        if lost:  # models whose executor stopped serving move to one that serves
            await core.dispatcher.rehome()
        if published != [core.server_ready]:
            published[:] = [core.server_ready]
            await set_serving(parts, svcs, core.server_ready)
        if registry_published != [registry_peer.serving]:
            if registry_published:
                log.warning("registry %s %s", settings.registry_addr,
                            "answers again" if registry_peer.serving else "does not answer: loaded models keep serving")
            registry_published[:] = [registry_peer.serving]
            await parts.health.set(REGISTRY_HEALTH, SERVING if registry_peer.serving else NOT_SERVING)

    return PeerMonitor([registry_peer, *executor_peers], settings.peer_check_interval_s, each_round, every_round=True)


def load_startup_models(
    settings: SchedulerSettings, core: Scheduler, parts: ServerParts, svcs: list[GrpcService]
) -> asyncio.Task | None:
    """Loads settings.startup_models in the background (retrying each round until all are
    loaded); health and ServerReady turn true only then. None when there are none."""
    startup = StartupModels(
        parse_names(settings.startup_models),
        lambda name: core.load(name, 0, settings.execute_timeout_s),
        errors=core.load_errors,  # RepositoryIndex shows why a start-up model is not loaded
    )
    if not startup.names:
        return None
    core.startup_ready = False

    async def bring_up() -> None:
        while True:
            try:
                if core.peers_ready and await startup.load_pending():
                    break
            except Exception:  # noqa: BLE001 - keep trying; readiness stays false meanwhile
                log.exception("loading start-up models failed")
            await asyncio.sleep(settings.peer_check_interval_s)
        core.startup_ready = True
        log.info("all %d start-up models loaded", len(startup.names))
        await set_serving(parts, svcs, core.server_ready)

    return asyncio.get_running_loop().create_task(bring_up())


async def start(settings: SchedulerSettings, parts: ServerParts, registry: CollectorRegistry):
    core, catalog = build_core(settings, parts, registry)
    link = PredictorLink(settings, core, registry)  # profiles and scores in, telemetry out (none without an address)
    shm = shm_registry(registry)
    svcs = services(core, shm)
    server, port = build_server(settings, svcs, parts, settings.reuse_port)
    if settings.reuse_port:  # a supervised worker: a port of its own, so its health can be checked alone
        parts.extra_ports["private_port"] = add_port(server, f"{settings.host}:0", settings)
    await set_serving(parts, svcs, False)
    monitor = peer_monitor(settings, core, parts, svcs)
    bring_up = load_startup_models(settings, core, parts, svcs)
    await monitor.check_all()
    monitor.start()
    link.start()

    async def close_core() -> None:
        if bring_up is not None:
            bring_up.cancel()
        await core.close()
        await catalog.close()
        shm.close()

    closers: list[Callable[[], Awaitable[None]]] = [link.close, monitor.close, close_core]
    if settings.http_port >= 0:  # REST on the same loop and core; closed first so no request meets a closed core
        http_port, close_rest = await start_rest(settings, core, parts.tracer_provider, shm)
        parts.extra_ports["http_port"] = http_port
        closers.insert(0, close_rest)
    return server, port, closers

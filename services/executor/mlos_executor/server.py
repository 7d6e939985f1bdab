"""Executor server: create_server for tests, start for `python -m mlos_executor`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from grpc import aio
from prometheus_client import CollectorRegistry

from mlos.executor.v1 import executor_pb2_grpc as pbg
from mlos_common.bootstrap import GrpcService, ServerParts, StartupError, build_server, client_channel, set_serving
from mlos_executor.budget import MB, MemoryBudget, budget_bytes
from mlos_executor.config import ExecutorSettings
from mlos_executor.core import ExecutorCore, Fetcher, Sink
from mlos_executor.eviction import Eviction
from mlos_executor.hardware import Hardware, prepare_hardware
from mlos_executor.memory import mem_total_bytes
from mlos_executor.memory_guard import MemoryGuard, MemoryMeasurement
from mlos_executor.peers import PredictorPeer, RegistryPeer, prefetch_target
from mlos_executor.periodic import Periodic
from mlos_executor.pool import BufferPool
from mlos_executor.prefetch import Prefetcher, Target
from mlos_executor.registry_follow import DeletedUnloadsCollector, RegistryFollow
from mlos_executor.servicer import ExecutorServicer
from mlos_executor.shared_weights import SharedWeights
from mlos_executor.telemetry import ExecutorMetrics, ExecutorTelemetry
from mlos_executor.unix_link import socket_name
from mlos_registry.follow import ViewFollower, WatchCollector
from mlos_registry.model_view import ModelView

SERVICE = "mlos.executor.v1.Executor"


def make_servicer(core: ExecutorCore, parts: ServerParts | None = None, shm_arena_bytes: int = 0) -> ExecutorServicer:
    provider = parts.tracer_provider if parts is not None else None
    tracer = provider.get_tracer("mlos.executor") if provider is not None else None
    return ExecutorServicer(core, tracer, shm_arena_bytes)


def services(servicer: ExecutorServicer) -> list[GrpcService]:
    return [GrpcService(SERVICE, lambda s: pbg.add_ExecutorServicer_to_server(servicer, s))]


def create_server(
    settings: ExecutorSettings, core: ExecutorCore, parts: ServerParts | None = None,
    servicer: ExecutorServicer | None = None,
) -> tuple[aio.Server, int]:
    parts = parts or ServerParts()
    return build_server(settings, services(servicer or make_servicer(core, parts, settings.shm_arena_bytes)), parts)


def registry_fetcher(settings: ExecutorSettings, parts: ServerParts) -> Fetcher:
    from mlos_registry.client import RegistryClient

    async def fetch(name: str, version: int, dest_dir: Path) -> tuple[Path, str]:
        dest = dest_dir / f".incoming-{name}-{version}.onnx"
        channel = client_channel(settings.registry_addr, settings, parts.tracer_provider)
        async with RegistryClient(settings.registry_addr, channel=channel) as client:
            try:
                return await client.fetch_artifact(name, version, dest)
            finally:
                await channel.close()

    return fetch


def build_core(
    settings: ExecutorSettings, fetch: Fetcher, sink: Sink | None = None, memory: MemoryGuard | None = None,
    hardware: Hardware | None = None, on_evict: Callable[[Eviction], None] | None = None,
) -> ExecutorCore:
    """The executor's core as `settings` describe it (memory: budget and prediction, see memory_guard;
    hardware: runtime mode, GPUs, NUMA placement, see hardware.py)."""
    return ExecutorCore(
        executor_id=settings.executor_id,
        cache_dir=settings.cache_dir,
        fetch=fetch,
        device=settings.device,
        intra_op_threads=settings.intra_op_threads,
        execution_slots=settings.execution_slots,
        inline_run_ns=settings.inline_run_us * 1000,
        heavy_run_ns=int(settings.heavy_run_ms * 1e6),
        sink=sink,
        warmup_runs=settings.warmup_runs,
        warmup_max_s=settings.warmup_max_s,
        generation_preemption=settings.generation_preemption,
        memory=memory or memory_guard(settings),
        hardware=hardware or claim_hardware(settings, pin=False),
        on_evict=on_evict,
        pool=BufferPool(int(settings.memory_pool_max_mb * MB)) if settings.memory_pool else None,
        shared_weights=SharedWeights(settings.shared_weights_min_bytes) if settings.shared_weights else None,
    )


def memory_guard(
    settings: ExecutorSettings, predictor: PredictorPeer | None = None,
    on_sample: Callable[[MemoryMeasurement], None] | None = None,
) -> MemoryGuard:
    """The budget from settings (default 80 % of MemTotal), predictions from `predictor` when given."""
    return MemoryGuard(
        budget=MemoryBudget(budget_bytes(settings.memory_budget_mb, mem_total_bytes())),
        predict=predictor.footprint_mb if predictor is not None else None,
        on_sample=on_sample,
        predict_timeout_s=settings.memory_predict_timeout_ms / 1000,
    )


def prefetch_loader(core: ExecutorCore) -> Callable[[Target], Awaitable[object]]:
    """How a prefetch loads: into free room only, never evicting a loaded model for a forecast."""

    async def load(t: Target) -> object:
        return await core.load(t.name, t.version, t.sha256, t.max_batch_size, evict=False)

    return load


def prefetcher(
    settings: ExecutorSettings, core: ExecutorCore, predictor: PredictorPeer,
    resolve: Callable[[str], Awaitable[Target]], metrics: ExecutorMetrics | None = None,
) -> Prefetcher:
    """Loads the models the predictor's workload forecast names (see prefetch.py) into `core`."""
    return Prefetcher(
        forecast=predictor.workload, resolve=resolve, load=prefetch_loader(core),
        held=lambda: {name for name, _ in core.models}, min_rate=settings.prefetch_min_rate,
        on_decision=metrics.prefetched if metrics else None, on_poll=metrics.polled if metrics else None,
    )


def follow_registry(
    settings: ExecutorSettings, core: ExecutorCore, peer: RegistryPeer, registry: CollectorRegistry | None = None,
) -> tuple[RegistryFollow, Callable[[], Awaitable[None]]]:
    """Starts following the registry's model view for `core` (see registry_follow.py); -> (the
    follow, its closer). Metrics mlos_registry_watch_* and mlos_executor_deleted_unloads_total."""
    follower = ViewFollower.to(settings.registry_addr, ModelView(), settings)
    follow = RegistryFollow(core, follower.view, peer.latest, prefetch_target)
    if registry is not None:
        registry.register(WatchCollector(follower))
        registry.register(DeletedUnloadsCollector(follow))
    follower.start()

    async def close() -> None:
        await follower.close()
        await follow.close()

    return follow, close


def claim_hardware(settings: ExecutorSettings, pin: bool = True) -> Hardware:
    """Runtime mode, GPU choice and NUMA pinning (hardware.py); bad settings -> StartupError."""
    try:
        return prepare_hardware(settings.device, settings.numa_pin, settings.numa_node, settings.sys_root, pin=pin)
    except ValueError as exc:
        raise StartupError(str(exc)) from None


async def start(settings: ExecutorSettings, parts: ServerParts, registry: CollectorRegistry):
    try:  # bad settings stop the start before anything opens
        budget_bytes(settings.memory_budget_mb, mem_total_bytes())
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    hardware = claim_hardware(settings)  # before the inference pool and any session start threads
    metrics = ExecutorMetrics(registry)
    telemetry = ExecutorTelemetry(settings, metrics)
    closers: list[Callable[[], Awaitable[None]]] = []
    predictor = None
    if settings.predictor_addr:
        predictor = await PredictorPeer(settings.predictor_addr, settings, parts.tracer_provider).open()
        closers.append(predictor.close)
    guard = memory_guard(settings, predictor, telemetry.memory)
    core = build_core(settings, registry_fetcher(settings, parts), telemetry.execution, guard, hardware, metrics.evicted)
    closers.insert(0, core.close)
    metrics.watch_memory(core)
    metrics.watch_pool(core)
    servicer = make_servicer(core, parts, settings.shm_arena_bytes)
    svcs = services(servicer)
    server, port = build_server(settings, svcs, parts)
    if settings.unix_link:
        await servicer.open_unix_link(socket_name(settings.executor_id), settings.max_message_bytes)
        closers.insert(0, servicer.close_unix_link)
    background = Periodic()
    if telemetry.streamer is not None and settings.health_interval_s > 0:
        background.every(settings.health_interval_s, lambda: telemetry.health_sample(core), "health sample")
    registry_peer = RegistryPeer(settings.registry_addr, settings)
    closers.append(registry_peer.close)
    resolve = registry_peer.latest
    if settings.registry_watch:
        follow, close_follow = follow_registry(settings, core, registry_peer, registry)
        closers.insert(0, close_follow)
        resolve = follow.latest
    if predictor is not None and settings.prefetch_interval_s > 0:
        prefetch = prefetcher(settings, core, predictor, resolve, metrics)
        background.every(settings.prefetch_interval_s, prefetch.poll, "prefetch")
    closers.insert(0, background.close)
    await set_serving(parts, svcs, True)
    if telemetry.streamer is not None:
        closers.insert(0, telemetry.streamer.close)
    return server, port, closers

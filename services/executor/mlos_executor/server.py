"""Executor server: create_server for tests, start for `python -m mlos_executor`."""

from __future__ import annotations

from pathlib import Path

from grpc import aio
from prometheus_client import CollectorRegistry

from mlos.executor.v1 import executor_pb2_grpc as pbg
from mlos_common.bootstrap import GrpcService, ServerParts, build_server, client_channel, set_serving
from mlos_executor.config import ExecutorSettings
from mlos_executor.core import ExecutorCore, Fetcher
from mlos_executor.servicer import ExecutorServicer
from mlos_executor.unix_link import socket_name

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


async def start(settings: ExecutorSettings, parts: ServerParts, registry: CollectorRegistry):
    from mlos_executor.telemetry import ExecutorMetrics, telemetry_sink

    metrics = ExecutorMetrics(registry)
    sink, streamer = telemetry_sink(settings, metrics)
    core = ExecutorCore(
        executor_id=settings.executor_id,
        cache_dir=settings.cache_dir,
        fetch=registry_fetcher(settings, parts),
        device=settings.device,
        intra_op_threads=settings.intra_op_threads,
        execution_slots=settings.execution_slots,
        inline_run_ns=settings.inline_run_us * 1000,
        heavy_run_ns=int(settings.heavy_run_ms * 1e6),
        sink=sink,
        warmup_runs=settings.warmup_runs,
        warmup_max_s=settings.warmup_max_s,
    )
    servicer = make_servicer(core, parts, settings.shm_arena_bytes)
    svcs = services(servicer)
    server, port = build_server(settings, svcs, parts)
    closers = [core.close]
    if settings.unix_link:
        await servicer.open_unix_link(socket_name(settings.executor_id), settings.max_message_bytes)
        closers.insert(0, servicer.close_unix_link)
    await set_serving(parts, svcs, True)
    if streamer is not None:
        closers.insert(0, streamer.close)
    return server, port, closers

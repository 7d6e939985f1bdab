"""Server construction: create_server for tests and embedding, start for run_service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from grpc import aio
from prometheus_client import CollectorRegistry

from mlos.registry.v1 import registry_pb2_grpc
from mlos_common.bootstrap import GrpcService, ServerParts, build_server, set_serving
from mlos_registry.config import RegistrySettings
from mlos_registry.core import Registry
from mlos_registry.metrics import RegistryMetrics
from mlos_registry.servicer import RegistryServicer

SERVICE_NAME = "mlos.registry.v1.Registry"


def registry_services(registry_core: Registry) -> list[GrpcService]:
    servicer = RegistryServicer(registry_core)
    return [GrpcService(SERVICE_NAME, lambda s: registry_pb2_grpc.add_RegistryServicer_to_server(servicer, s))]


def create_server(
    settings: RegistrySettings, registry_core: Registry, parts: ServerParts | None = None
) -> tuple[aio.Server, int]:
    """Builds and binds (does not start) the registry's gRPC server; port 0 picks a free one.
    Health is not set here: the caller marks SERVING (see `start`)."""
    return build_server(settings, registry_services(registry_core), parts or ServerParts())


async def start(
    settings: RegistrySettings, parts: ServerParts, metrics_registry: CollectorRegistry
) -> tuple[aio.Server, int, Sequence[Callable[[], Awaitable[None]]]]:
    """Opens the stores, builds the server and reports SERVING; run_service starts and drains it."""
    registry_core = await Registry.open(settings, RegistryMetrics(metrics_registry))
    services = registry_services(registry_core)
    server, port = build_server(settings, services, parts)
    await set_serving(parts, services, True)
    return server, port, [registry_core.close]

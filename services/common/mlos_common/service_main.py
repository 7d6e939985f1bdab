"""The body of every service's `__main__`: logging, tracing, metrics, serve, drain."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from grpc import aio
from prometheus_client import CollectorRegistry

from mlos_common.bootstrap import ServerParts, StartupError, announce, run_until_signalled
from mlos_common.config import ServiceSettings
from mlos_common.logs import setup_logging
from mlos_common.metrics import GrpcMetrics, start_metrics_server
from mlos_common.tracing import build_tracer_provider

Closer = Callable[[], Awaitable[None]]
S = TypeVar("S", bound=ServiceSettings)
# (settings, parts, registry) -> (server, port, closers)
Starter = Callable[[S, ServerParts, CollectorRegistry], Awaitable[tuple[aio.Server, int, Sequence[Closer]]]]


def run_service(service: str, settings: S, start: Starter[S]) -> None:
    setup_logging(settings.log_level, service)

    async def main() -> None:
        registry = CollectorRegistry()
        tracer_provider = build_tracer_provider(service, settings.otlp_endpoint)
        parts = ServerParts(tracer_provider=tracer_provider, metrics=GrpcMetrics(registry))
        server, port, closers = await start(settings, parts, registry)
        metrics_port = None
        http = None
        if settings.metrics_port >= 0:
            http, metrics_port = start_metrics_server(registry, settings.host, settings.metrics_port)
        await server.start()
        announce(service, port, metrics_port, **parts.extra_ports)

        async def shutdown_http() -> None:
            if http is not None:
                http.shutdown()
            if tracer_provider is not None:
                tracer_provider.shutdown()

        await run_until_signalled(
            service=service,
            server=server,
            parts=parts,
            grace_s=settings.shutdown_grace_s,
            on_close=[*closers, shutdown_http],
        )

    try:
        asyncio.run(main())
    except StartupError as exc:  # a clear reason, not a traceback; the launcher shows this line
        logging.getLogger(service).error("cannot start: %s", exc)
        sys.exit(1)

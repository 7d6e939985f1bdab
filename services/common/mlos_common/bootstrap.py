"""Server construction and lifecycle shared by every service.

`build_server` wires health, reflection and the interceptor chain; `run_until_signalled`
announces the bound ports on stdout (one JSON line, read by `mlos up`), waits for SIGTERM or
SIGINT, then drains: health -> NOT_SERVING, calls already sent are picked up (`settle`), in-flight
RPCs finish within the grace period, then the service's own close hooks run.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.sdk.trace import TracerProvider

from mlos_common.auth import auth_interceptor
from mlos_common.config import ServiceSettings
from mlos_common.errors import MlosError, error_for_code
from mlos_common.interceptors import ArrivalInterceptor, ErrorInterceptor, MetricsInterceptor
from mlos_common.metrics import GrpcMetrics
from mlos_common.tls import TlsSettingsError, add_port, check_client_settings, secure_channel

log = logging.getLogger(__name__)

HEALTH_SERVICE = health.SERVICE_NAME
SETTLE_QUIET_S = 0.25  # no call picked up for this long: nothing sent before the signal is still waiting
# A health "service" name that answers SERVING while the process's loop answers, whatever its
# readiness (Kubernetes liveness probes: a scheduler waiting for its peers is alive, not ready).
LIVENESS_SERVICE = "mlos.liveness"


@dataclass(frozen=True)
class GrpcService:
    """One gRPC service to expose: its full name and the generated `add_*_to_server`."""

    full_name: str
    add_to_server: Callable[[aio.Server], None]


@dataclass
class ServerParts:
    """What a service's create_server needs from its caller (tests pass defaults)."""

    health: health.aio.HealthServicer = field(default_factory=health.aio.HealthServicer)
    tracer_provider: TracerProvider | None = None
    metrics: GrpcMetrics | None = None
    arrivals: ArrivalInterceptor = field(default_factory=ArrivalInterceptor)
    extra_ports: dict[str, int] = field(default_factory=dict)  # e.g. http_port, added to the announcement


class StartupError(RuntimeError):
    """A service cannot start (e.g. its port is taken); the message says what to change."""


def bind_error(host: str, port: int) -> StartupError:
    """Why grpc could not bind host:port, in words: probed with a plain socket for the OS reason."""
    reason = "grpc could not bind it"
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, port))
    except OSError as exc:
        reason = "the address is already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
    return StartupError(
        f"cannot listen on {host}:{port}: {reason}; stop the process holding it or choose another port"
    )


def server_options(settings: ServiceSettings, reuse_port: bool = False) -> list[tuple[str, int]]:
    """Channel options of a server: message limits, and no SO_REUSEPORT (gRPC's default), so a
    second server on a port in use fails at start-up instead of silently sharing it. Only the
    scheduler's workers (MLOS_SCHEDULER_WORKERS > 1) pass reuse_port=True, after their supervisor
    proved the port free without it."""
    return [*channel_options(settings), ("grpc.so_reuseport", 1 if reuse_port else 0)]


def channel_options(settings: ServiceSettings) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
    ]


def feed_channel_options(
    settings: ServiceSettings | None, initial_backoff_s: float, max_backoff_s: float
) -> list[tuple[str, int]]:
    """Options of a follower's channel (a feed that reconnects after its peer went away): a fresh
    channel per attempt, reconnecting on the follower's own backoff."""
    return channel_options(settings or ServiceSettings()) + [
        # a fresh channel per attempt must not inherit a shared subchannel's reconnect backoff
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.initial_reconnect_backoff_ms", int(initial_backoff_s * 1000)),
        ("grpc.min_reconnect_backoff_ms", int(initial_backoff_s * 1000)),
        ("grpc.max_reconnect_backoff_ms", int(max_backoff_s * 1000)),
    ]


def _not_health(details: grpc.HandlerCallDetails) -> bool:
    return not details.method.startswith(f"/{HEALTH_SERVICE}/")


def build_server(
    settings: ServiceSettings, services: Sequence[GrpcService], parts: ServerParts, reuse_port: bool = False
) -> tuple[aio.Server, int]:
    """Creates the aio server with the standard interceptor chain (tracing, metrics, auth when
    settings.auth_tokens_file is set, errors) and binds it, with TLS when settings say so
    (SO_REUSEPORT only when reuse_port: see server_options)."""
    interceptors: list[aio.ServerInterceptor] = [parts.arrivals]
    if parts.tracer_provider is not None:
        interceptors.append(aio_server_interceptor(tracer_provider=parts.tracer_provider, filter_=_not_health))
    if parts.metrics is not None:
        interceptors.append(MetricsInterceptor(parts.metrics))
    try:
        auth = auth_interceptor(settings.auth_tokens_file, parts.metrics.registry if parts.metrics else None)
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    if auth is not None:
        interceptors.append(auth)
    interceptors.append(ErrorInterceptor())
    server = aio.server(
        interceptors=interceptors,
        options=server_options(settings, reuse_port),
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs or None,
    )
    for svc in services:
        svc.add_to_server(server)
    health_pb2_grpc.add_HealthServicer_to_server(parts.health, server)
    names = [s.full_name for s in services] + [HEALTH_SERVICE, reflection.SERVICE_NAME]
    reflection.enable_server_reflection(names, server)
    try:
        check_client_settings(settings)
        port = add_port(server, f"{settings.host}:{settings.grpc_port}", settings)
    except TlsSettingsError as exc:
        raise StartupError(str(exc)) from None
    except RuntimeError:  # grpcio raises "Failed to bind to address ..."
        port = 0
    if port == 0:
        raise bind_error(settings.host, settings.grpc_port)
    return server, port


async def set_serving(parts: ServerParts, services: Sequence[GrpcService], serving: bool) -> None:
    """Readiness ("" and each service's name) is `serving`; LIVENESS_SERVICE is SERVING from the
    first call on (only the drain turns it NOT_SERVING)."""
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in ["", *(s.full_name for s in services)]:
        await parts.health.set(name, status)
    await parts.health.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)


async def settle(arrivals: ArrivalInterceptor, max_s: float, quiet_s: float = SETTLE_QUIET_S) -> None:
    """Waits (at most `max_s`) until no call has been picked up for `quiet_s`. gRPC's stop cancels
    calls its transport accepted but the application has not picked up yet; a busy server picks
    them up one event-loop turn at a time, so without this wait requests sent before the signal
    fail with CANCELLED instead of being answered."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_s
    seen, quiet_since = arrivals.picked_up, loop.time()
    while loop.time() < deadline:
        await asyncio.sleep(quiet_s / 5)
        if arrivals.picked_up != seen:
            seen, quiet_since = arrivals.picked_up, loop.time()
        elif loop.time() - quiet_since >= quiet_s:
            return


def typed_error(exc: aio.AioRpcError, peer: str = "") -> MlosError:
    """A peer's status as the matching typed error (clients never leak AioRpcError). With `peer`
    (e.g. "registry 10.0.0.5:8101"), UNAVAILABLE says which peer could not be reached: gRPC's own
    text names only an address."""
    code = exc.code().name
    details = exc.details() or code
    if peer and code == "UNAVAILABLE":
        details = f"{peer} unavailable: {details}"
    return error_for_code(code, details)


def client_channel(
    addr: str,
    settings: ServiceSettings | None = None,
    tracer_provider: TracerProvider | None = None,
    options: Sequence[tuple[str, int]] | None = None,
) -> aio.Channel:
    """An aio channel to a peer, with trace-context propagation, our message limits (or
    `options`), and the settings' TLS and bearer token (without settings: MLOS_TOKEN,
    MLOS_TOKEN_FILE, MLOS_TLS_* from the environment, as the CLI uses them)."""
    settings = settings or ServiceSettings()
    interceptors = aio_client_interceptors(tracer_provider=tracer_provider) if tracer_provider else ()
    return secure_channel(addr, settings, options if options is not None else channel_options(settings), interceptors)


async def wait_for_serving(
    addr: str, timeout_s: float, service: str = "", settings: ServiceSettings | None = None
) -> None:
    """Polls grpc.health.v1 Check until SERVING; raises TimeoutError with the last status seen.
    TLS as client_channel sets it up from `settings` (or the environment)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    last = "no answer"
    async with client_channel(addr, settings) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                reply = await stub.Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=min(1.0, max(remaining, 0.05))
                )
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except aio.AioRpcError as exc:
                last = f"{exc.code().name}: {exc.details()}"
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{addr} not serving after {timeout_s:g}s ({last})")
            await asyncio.sleep(0.05)


async def read_announcement(stream: asyncio.StreamReader) -> dict | None:
    """The child's "listening" line (see announce) from its stdout; None if it closed stdout
    (exited) first. Other lines are skipped."""
    while True:
        raw = await stream.readline()
        if not raw:
            return None
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict) and line.get("event") == "listening":
            return line


def announce(service: str, grpc_port: int, metrics_port: int | None, **extra_ports: int) -> None:
    """The one line on stdout that tells a launcher where this process listens."""
    line = {"event": "listening", "service": service, "grpc_port": grpc_port, "metrics_port": metrics_port}
    line.update(extra_ports)
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


async def run_until_signalled(
    *,
    service: str,
    server: aio.Server,
    parts: ServerParts,
    grace_s: float,
    on_close: Sequence[Callable[[], Awaitable[None]]] = (),
    settle_max_s: float = 5.0,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("%s: draining (grace %.1fs)", service, grace_s)
    await parts.health.enter_graceful_shutdown()
    await settle(parts.arrivals, min(grace_s, settle_max_s))
    await server.stop(grace_s)
    for close in on_close:
        try:
            await close()
        except Exception:  # noqa: BLE001 - keep closing the rest
            log.exception("%s: error while closing", service)
    log.info("%s: stopped", service)

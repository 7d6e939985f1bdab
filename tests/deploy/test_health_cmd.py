"""`mlos health`, the image's and compose's health check, against real gRPC health servers: exit 0
for SERVING, 1 for NOT_SERVING, 2 when nothing answers; the port from --addr, from the service's
own settings (--service, or MLOS_SERVICE as in the image); and the `mlos.liveness` entry that the
Kubernetes liveness probes ask for stays SERVING while readiness is false."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
from grpc_health.v1 import health_pb2
from predictor_testkit import free_port

from mlos_common.bootstrap import LIVENESS_SERVICE, ServerParts, build_server, set_serving
from mlos_common.config import ServiceSettings


@pytest.fixture
async def health_server() -> AsyncIterator[tuple[ServerParts, int]]:
    """A real aio server with the services' health wiring (build_server), not yet ready."""
    parts = ServerParts()
    server, port = build_server(ServiceSettings(grpc_port=0), [], parts)
    await server.start()
    await set_serving(parts, [], False)
    yield parts, port
    await server.stop(None)


async def mlos_health(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mlos_cli", "health", *args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


async def test_exit_code_follows_the_health_status(health_server) -> None:
    parts, port = health_server
    code, out = await mlos_health("--addr", f"127.0.0.1:{port}")
    assert (code, out.strip()) == (1, f"127.0.0.1:{port}: NOT_SERVING")
    await set_serving(parts, [], True)
    assert await mlos_health("--addr", f"127.0.0.1:{port}") == (0, f"127.0.0.1:{port}: SERVING\n")


async def test_nothing_listening_is_exit_2() -> None:
    port = free_port()
    code, out = await mlos_health("--addr", f"127.0.0.1:{port}", "--timeout-s", "0.5")
    assert code == 2 and out.startswith(f"127.0.0.1:{port}: no answer (")


async def test_the_port_comes_from_the_service_settings(health_server) -> None:
    parts, port = health_server
    await set_serving(parts, [], True)
    env = {"PATH": "/usr/bin:/bin", "MLOS_EXECUTOR_GRPC_PORT": str(port)}
    assert (await mlos_health("--service", "executor", env=env))[0] == 0
    assert (await mlos_health(env={**env, "MLOS_SERVICE": "executor"}))[0] == 0  # the image's HEALTHCHECK
    code, out = await mlos_health(env={"PATH": "/usr/bin:/bin", "MLOS_SERVICE": "gateway"})
    assert code == 2 and "set MLOS_SERVICE to one of executor, predictor, registry, scheduler (it is 'gateway')" in out


async def test_liveness_stays_serving_while_not_ready(health_server) -> None:
    parts, port = health_server
    from grpc import aio
    from grpc_health.v1 import health_pb2_grpc

    async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        ready = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        alive = await stub.Check(health_pb2.HealthCheckRequest(service=LIVENESS_SERVICE), timeout=5)
    assert ready.status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert alive.status == health_pb2.HealthCheckResponse.SERVING

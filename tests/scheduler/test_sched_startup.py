"""Strict readiness: a scheduler started with start-up models is ready only once all are loaded."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry
from sched_testkit import Stack
from string_models import build_unloadable_model

from mlos.inference import grpc_service_pb2 as pb
from mlos.inference import grpc_service_pb2_grpc as pbg
from mlos_common.bootstrap import ServerParts, wait_for_serving
from mlos_scheduler.config import SchedulerSettings
from mlos_scheduler.server import start
from mlos_scheduler.startup import parse_names

pytestmark = pytest.mark.asyncio(loop_scope="session")

NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@contextlib.asynccontextmanager
async def scheduler(stack: Stack, startup_models: str) -> AsyncIterator[tuple[str, pbg.GRPCInferenceServiceStub]]:
    """A second scheduler, built by the production `start`, on the shared registry and executor."""
    settings = SchedulerSettings(
        registry_addr=stack.settings.registry_addr, executor_addrs=stack.settings.executor_addrs,
        grpc_port=0, metrics_port=-1, http_port=0, peer_check_interval_s=0.05, startup_models=startup_models,
    )
    server, port, closers = await start(settings, ServerParts(), CollectorRegistry())
    await server.start()
    addr = f"127.0.0.1:{port}"
    try:
        async with aio.insecure_channel(addr) as channel:
            yield addr, pbg.GRPCInferenceServiceStub(channel)
    finally:
        await server.stop(None)
        for close in closers:
            await close()


async def health(addr: str) -> int:
    async with aio.insecure_channel(addr) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        return reply.status


async def test_parse_names() -> None:
    assert parse_names(" a, b,,a ,c ") == ("a", "b", "c")
    assert parse_names("") == ()


async def test_ready_only_after_every_startup_model_loads(
    stack: Stack, string_models: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="mlos_scheduler.startup")
    async with scheduler(stack, "iris,late_model") as (addr, stub):
        # late_model is not registered: not ready, and the log says why.
        assert not (await stub.ServerReady(pb.ServerReadyRequest())).ready
        assert await health(addr) == NOT_SERVING
        with pytest.raises(TimeoutError, match="NOT_SERVING"):
            await wait_for_serving(addr, 0.5)
        assert any("'late_model'" in r.getMessage() and "NOT_FOUND" in r.getMessage() for r in caplog.records)

        await stack.registry.register("late_model", string_models["str_identity"])
        await wait_for_serving(addr, 30)
        assert (await stub.ServerReady(pb.ServerReadyRequest())).ready
        for name in ("iris", "late_model"):
            assert (await stub.ModelReady(pb.ModelReadyRequest(name=name))).ready, name


async def test_no_startup_models_means_ready_with_peers(stack: Stack) -> None:
    async with scheduler(stack, "") as (addr, stub):
        await wait_for_serving(addr, 30)
        assert (await stub.ServerReady(pb.ServerReadyRequest())).ready


async def test_startup_model_that_fails_to_load_keeps_it_not_ready(
    stack: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="mlos_scheduler.startup")
    await stack.registry.register("unloadable", build_unloadable_model(tmp_path))
    async with scheduler(stack, "iris,unloadable") as (addr, stub):
        with pytest.raises(TimeoutError, match="NOT_SERVING"):
            await wait_for_serving(addr, 1.0)
        assert not (await stub.ServerReady(pb.ServerReadyRequest())).ready
        for _ in range(200):  # the others do load (bounded: 10 s on a loaded machine)
            if (await stub.ModelReady(pb.ModelReadyRequest(name="iris"))).ready:
                break
            await asyncio.sleep(0.05)
        assert (await stub.ModelReady(pb.ModelReadyRequest(name="iris"))).ready
        assert not (await stub.ServerReady(pb.ServerReadyRequest())).ready
        messages = [r.getMessage() for r in caplog.records if "'unloadable'" in r.getMessage()]
        assert messages and "onnxruntime" in messages[0], messages
        assert len(messages) == 1, "a repeated failure is logged once"
        index = await stub.RepositoryIndex(pb.RepositoryIndexRequest())
        (entry,) = [m for m in index.models if m.name == "unloadable"]
        assert entry.state == "UNAVAILABLE" and "onnxruntime" in entry.reason, entry.reason

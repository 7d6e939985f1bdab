"""Fixtures: tiny ONNX model files, a real registry server and real executor servers on port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from exec_testkit import (
    ExecutorServed,
    ModelFiles,
    RegistryServed,
    StartExecutor,
    int64_double_model,
    plus_one_model,
    save,
    two_outputs_model,
    unrunnable_model,
)
from predictor_testkit import Running, start_predictor

from mlos_common.bootstrap import ServerParts
from mlos_executor.client import ExecutorClient
from mlos_executor.config import ExecutorSettings
from mlos_executor.core import Fetcher, Sink
from mlos_executor.eviction import Eviction
from mlos_executor.memory_guard import MemoryMeasurement
from mlos_executor.peers import PredictorPeer
from mlos_executor.server import build_core, make_servicer, memory_guard, registry_fetcher
from mlos_executor.server import create_server as create_executor_server
from mlos_executor.servicer import ExecutorServicer
from mlos_executor.unix_link import socket_name
from mlos_registry.client import RegistryClient
from mlos_registry.config import RegistrySettings
from mlos_registry.core import Registry
from mlos_registry.server import create_server as create_registry_server


@pytest.fixture
def model_files(tmp_path: Path) -> ModelFiles:
    d = tmp_path / "models"
    return ModelFiles(
        plus_one=save(plus_one_model(), d / "plus_one.onnx"),
        int64_double=save(int64_double_model(), d / "int64_double.onnx"),
        two_outputs=save(two_outputs_model(), d / "two_outputs.onnx"),
        unrunnable=save(unrunnable_model(), d / "unrunnable.onnx"),
    )


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from mlos_cli.demo import prepare_demo_models

    return {m.name: m for m in prepare_demo_models(tmp_path_factory.mktemp("demo_home"))}


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[RegistryServed]:
    settings = RegistrySettings(grpc_port=0, metrics_port=-1, data_dir=tmp_path / "registry")
    core = await Registry.open(settings)
    server, port = create_registry_server(settings, core)
    await server.start()
    addr = f"127.0.0.1:{port}"
    client = RegistryClient(addr)
    yield RegistryServed(addr, client)
    await client.close()
    await server.stop(None)
    await core.close()


@pytest.fixture
async def start_executor(tmp_path: Path, registry: RegistryServed) -> AsyncIterator[StartExecutor]:
    """start_executor(fetch=None, sink=None, on_memory_sample=None, servicer_factory=None, on_evict=None,
    **settings) -> a
    started executor server + client. With `predictor_addr` in settings, load footprints are predicted
    there; `servicer_factory(core, parts, shm_arena_bytes)` replaces make_servicer.

    Every fetch goes through a counting wrapper (ExecutorServed.fetches)."""
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def start(
        *, fetch: Fetcher | None = None, sink: Sink | None = None, parts: ServerParts | None = None,
        on_memory_sample: Callable[[MemoryMeasurement], None] | None = None,
        servicer_factory: Callable[..., ExecutorServicer] | None = None,
        on_evict: Callable[[Eviction], None] | None = None, **overrides
    ) -> ExecutorServed:
        overrides.setdefault("cache_dir", tmp_path / f"cache{len(cleanups)}")
        overrides.setdefault("device", "cpu")
        settings = ExecutorSettings(grpc_port=0, metrics_port=-1, registry_addr=registry.addr, **overrides)
        inner = fetch or registry_fetcher(settings, ServerParts())
        fetches: list[tuple[str, int]] = []

        async def counting_fetch(name: str, version: int, dest: Path):
            fetches.append((name, version))
            return await inner(name, version, dest)

        predictor = None
        if settings.predictor_addr:  # the memory footprint comes from this predictor
            predictor = await PredictorPeer(settings.predictor_addr, settings).open()
            cleanups.append(predictor.close)
        core = build_core(settings, counting_fetch, sink, memory_guard(settings, predictor, on_memory_sample),
                          on_evict=on_evict)
        servicer = (servicer_factory or make_servicer)(core, parts, settings.shm_arena_bytes)
        server, port = create_executor_server(settings, core, parts, servicer)
        await server.start()
        if settings.unix_link:
            await servicer.open_unix_link(socket_name(settings.executor_id), settings.max_message_bytes)
        addr = f"127.0.0.1:{port}"
        client = ExecutorClient(addr)

        async def stop() -> None:
            await servicer.close_unix_link()
            await client.close()
            await server.stop(None)
            await core.close()

        cleanups.append(stop)
        return ExecutorServed(settings, core, client, addr, settings.cache_dir, fetches, server, servicer)

    yield start
    for stop in reversed(cleanups):
        await stop()


@pytest.fixture
async def predictor() -> AsyncIterator[Running]:
    """A real predictor server on port 0 (tests/predictor_testkit.py)."""
    running = await start_predictor()
    yield running
    await running.server.stop(None)


@pytest.fixture
async def executor(start_executor: StartExecutor) -> ExecutorServed:
    return await start_executor()

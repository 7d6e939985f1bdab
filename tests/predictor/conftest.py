"""Fixtures: real predictor servers on port 0 (see tests/predictor_testkit.py)."""

from __future__ import annotations

import pytest
from predictor_testkit import Running, free_port, poll, serve_engine, start_predictor, start_registry
from prometheus_client import CollectorRegistry

from mlos_common.bootstrap import ServerParts
from mlos_predictor.config import PredictorSettings
from mlos_predictor.engine import Engine, build_engine
from mlos_predictor.http_api import start_http
from mlos_predictor.server import start


@pytest.fixture
async def predictor():
    running = await start_predictor()
    yield running
    await running.stop()


@pytest.fixture
async def small_window_predictor():
    running = await start_predictor(window=100)
    yield running
    await running.stop()


@pytest.fixture
def poll_until():
    return poll


@pytest.fixture
async def predictor_factory():
    """Starts predictors on demand (e.g. on a port chosen in advance); stops them at the end."""
    started: list[Running] = []

    async def make(port: int = 0, window: int = 4096, **settings: object) -> Running:
        running = await start_predictor(port, window, **settings)
        started.append(running)
        return running

    yield make
    for running in started:
        await running.stop()


@pytest.fixture
def unused_port() -> int:
    return free_port()


@pytest.fixture
def prom() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def engine(prom: CollectorRegistry) -> Engine:
    """The five kinds on their priors, with Prometheus series on `prom`."""
    return build_engine(prom)


@pytest.fixture
async def engine_server(engine: Engine):
    """A real gRPC predictor answering from the `engine` fixture (tests may swap its models)."""
    running = await serve_engine(engine)
    yield running
    await running.server.stop(None)


@pytest.fixture
async def http_url(engine: Engine, prom: CollectorRegistry):
    """The seed daemon's HTTP API over the `engine` fixture, on a free port: its base URL."""
    port, close = await start_http(engine, "127.0.0.1", 0, registry=prom)
    yield f"http://127.0.0.1:{port}"
    await close()


@pytest.fixture
async def predictor_with_http():
    """The predictor as its process starts it (server.start), HTTP API on a free port:
    (gRPC address, HTTP base URL, Prometheus registry)."""
    registry = CollectorRegistry()
    parts = ServerParts()
    settings = PredictorSettings(grpc_port=0, metrics_port=-1, http_port=0)
    server, port, closers = await start(settings, parts, registry)
    await server.start()
    yield f"127.0.0.1:{port}", f"http://127.0.0.1:{parts.extra_ports['http_port']}", registry
    await server.stop(None)
    for close in closers:
        await close()


@pytest.fixture
async def registry(tmp_path):
    """A real registry server on port 0 (its client: .client, its address: .addr)."""
    running = await start_registry(tmp_path / "registry")
    yield running
    await running.stop()


@pytest.fixture(scope="session")
def simulation():
    """Simulated telemetry of every kind (seeded, a fifth of the evaluation's size)."""
    from mlos_predictor.simulate import simulate

    return simulate(seed=1, scale=0.2)

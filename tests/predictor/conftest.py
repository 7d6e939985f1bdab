"""Fixtures: real predictor servers on port 0 (see tests/predictor_testkit.py)."""

from __future__ import annotations

import pytest
from predictor_testkit import Running, free_port, poll, serve_engine, start_predictor
from prometheus_client import CollectorRegistry

from mlos_predictor.engine import Engine, build_engine


@pytest.fixture
async def predictor():
    running = await start_predictor()
    yield running
    await running.server.stop(None)


@pytest.fixture
async def small_window_predictor():
    running = await start_predictor(window=100)
    yield running
    await running.server.stop(None)


@pytest.fixture
def poll_until():
    return poll


@pytest.fixture
async def predictor_factory():
    """Starts predictors on demand (e.g. on a port chosen in advance); stops them at the end."""
    started: list[Running] = []

    async def make(port: int = 0, window: int = 4096) -> Running:
        running = await start_predictor(port, window)
        started.append(running)
        return running

    yield make
    for running in started:
        await running.server.stop(None)


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


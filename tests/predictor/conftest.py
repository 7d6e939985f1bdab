from __future__ import annotations


import asyncio
import socket
from dataclasses import dataclass
from typing import Awaitable, Callable

import pytest
from grpc import aio
from prometheus_client import CollectorRegistry

from mlos_common.bootstrap import ServerParts
from mlos_predictor.config import PredictorSettings
from mlos_predictor.server import start


@dataclass
class Running:
    server: aio.Server
    port: int
    registry: CollectorRegistry

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"


async def start_predictor(port: int = 0, window: int = 4096) -> Running:
    registry = CollectorRegistry()
    settings = PredictorSettings(grpc_port=port, metrics_port=-1, window=window)
    server, bound, _closers = await start(settings, ServerParts(), registry)
    await server.start()
    return Running(server, bound, registry)


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def poll(condition: Callable[[], Awaitable[bool]], timeout_s: float = 5.0, what: str = "condition") -> None:
    """Bounded polling of a condition (never a bare sleep to synchronise)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.01)


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

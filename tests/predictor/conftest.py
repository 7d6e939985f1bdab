"""Fixtures: real predictor servers on port 0 (see tests/predictor_testkit.py)."""

from __future__ import annotations

import pytest
from predictor_testkit import Running, free_port, poll, start_predictor


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

"""A real predictor server in-process, and bounded polling (shared by predictor and scheduler tests)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

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

"""Truthful readiness: the scheduler is ready only while its peers answer their health checks.

What ServerReady (and the gRPC health service) means with N executors:
- the registry answers SERVING, and at least one executor does;
- every start-up model has been loaded once (Triton's strict readiness);
- every loaded model version is held by at least one *usable* executor: its health check
  answers SERVING and its circuit breaker (breaker.py) is closed.
An executor that stops serving or opens its breaker makes the server unready only until the
models it held are loaded on another usable executor (the dispatcher does that at once, see
dispatch.py), or until it serves again. ModelReady(m) = the peers are ready and m is held by a
usable executor.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mlos_common.bootstrap import client_channel
from mlos_common.config import ServiceSettings

log = logging.getLogger(__name__)

# A peer named but not there yet (an executor pod the autoscaler has not made) fails its connection
# and, through DNS, its name resolution; gRPC backs off up to 120 s by default, then 30 s between
# resolutions. Capped here so a new executor is seen within seconds of appearing.
PEER_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 5000),
    ("grpc.dns_min_time_between_resolutions_ms", 5000),
]


@dataclass
class Peer:
    name: str
    addr: str
    serving: bool = False
    channel: aio.Channel | None = None
    settings: ServiceSettings | None = None  # TLS for the health check (health needs no token)

    async def check(self, timeout_s: float) -> bool:
        if self.channel is None:
            self.channel = client_channel(self.addr, self.settings, options=PEER_CHANNEL_OPTIONS)
        try:
            reply = await health_pb2_grpc.HealthStub(self.channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout_s
            )
            return reply.status == health_pb2.HealthCheckResponse.SERVING
        except aio.AioRpcError:
            return False


@dataclass
class PeerMonitor:
    peers: list[Peer]
    interval_s: float
    on_change: Callable[[], Awaitable[None]]
    every_round: bool = False  # call on_change after every round, not only when a peer changed
    _task: asyncio.Task | None = field(default=None, init=False)

    async def check_all(self) -> None:
        changed = False
        results = await asyncio.gather(*(p.check(min(self.interval_s, 1.0)) for p in self.peers))
        for peer, ok in zip(self.peers, results):
            if ok != peer.serving:
                log.info("peer %s (%s) is %s", peer.name, peer.addr, "SERVING" if ok else "NOT SERVING")
                peer.serving = ok
                changed = True
        if changed or self.every_round:
            await self.on_change()

    def start(self) -> None:
        async def loop() -> None:
            while True:
                try:
                    await self.check_all()
                except Exception:  # noqa: BLE001 - the monitor must outlive one bad round
                    log.exception("peer check failed")
                await asyncio.sleep(self.interval_s)

        self._task = asyncio.get_running_loop().create_task(loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for p in self.peers:
            if p.channel is not None:
                await p.channel.close()

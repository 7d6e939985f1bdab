"""TelemetryStreamer: the executor's side of ReportTelemetry, off the data plane.

`offer()` is synchronous and O(1): it appends to a bounded buffer, or counts a drop when the
buffer is full. It never waits on the predictor. A background task keeps one ReportTelemetry
stream open and feeds it from the buffer, at most one message (a TelemetryBatch of up to
MAX_BATCH records) per `flush_interval_s`, so telemetry costs both ends a message per interval
rather than one per execution; when the predictor is down or the stream breaks it
reconnects with exponential backoff (0.1 s doubling to 5 s). Delivery is at most once: records
already written into a stream that then breaks are lost (telemetry, not data).

Call offer()/start()/close() from the event loop's thread (the buffer's wake-up is an
asyncio.Event).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import TypeAlias

import grpc
from grpc import aio

from mlos.predictor.v1 import predictor_pb2, predictor_pb2_grpc
from mlos_common.bootstrap import channel_options, client_channel
from mlos_common.config import ServiceSettings
from mlos_predictor.convert import record_to_proto
from mlos_predictor.latency import ExecutionRecord

log = logging.getLogger(__name__)

INITIAL_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0
CONNECT_TIMEOUT_S = 5.0
CLOSE_FLUSH_S = 1.0
FLUSH_INTERVAL_S = 0.05
MAX_BATCH = 1024


Offerable: TypeAlias = (
    ExecutionRecord
    | predictor_pb2.ExecutionRecord
    | predictor_pb2.RateSample
    | predictor_pb2.ClientSample
    | predictor_pb2.HealthSample
    | predictor_pb2.MemorySample
)

# TelemetryBatch field of each sample type (execution records go to `records`)
_FIELD_OF: dict[type, str] = {
    predictor_pb2.RateSample: "rates",
    predictor_pb2.ClientSample: "clients",
    predictor_pb2.HealthSample: "health",
    predictor_pb2.MemorySample: "memory",
}


def batch_of(items: Iterable[Offerable]) -> predictor_pb2.TelemetryBatch:
    """One TelemetryBatch holding `items`, each in the field of its type."""
    batch = predictor_pb2.TelemetryBatch()
    for item in items:
        name = _FIELD_OF.get(type(item))
        if name is None:
            batch.records.append(record_to_proto(item))  # type: ignore[arg-type]
        else:
            getattr(batch, name).append(item)
    return batch


@dataclass(frozen=True, slots=True)
class StreamerStats:
    offered: int  # records accepted into the buffer
    dropped: int  # records refused because the buffer was full
    sent: int  # records written into a stream (not necessarily received)
    batches: int  # stream messages those records travelled in
    acked: int  # records the predictor acknowledged as accepted (known when a stream ends)
    rejected: int  # records the predictor acknowledged as rejected
    queued: int  # records waiting in the buffer now
    connected: bool
    reconnects: int  # streams opened after the first


class TelemetryStreamer:
    def __init__(
        self,
        addr: str,
        queue_size: int = 10000,
        *,
        settings: ServiceSettings | None = None,
        initial_backoff_s: float = INITIAL_BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
        flush_interval_s: float = FLUSH_INTERVAL_S,
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.addr = addr
        self.queue_size = queue_size
        self._settings = settings
        self._options = channel_options(settings or ServiceSettings()) + [
            # a fresh channel per attempt must not inherit a shared subchannel's backoff
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.initial_reconnect_backoff_ms", int(initial_backoff_s * 1000)),
            ("grpc.min_reconnect_backoff_ms", int(initial_backoff_s * 1000)),
            ("grpc.max_reconnect_backoff_ms", int(max_backoff_s * 1000)),
        ]
        self._flush_interval_s = flush_interval_s
        self._initial_backoff_s = initial_backoff_s
        self._max_backoff_s = max_backoff_s
        self._buf: deque[Offerable] = deque()
        self._wakeup = asyncio.Event()  # buffer got records, or close() was called
        self._closed = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._generation = 0  # bumps when a stream ends, so a stale feeder stops pulling
        self._connected = False
        self._streams = 0
        self._offered = self._dropped = self._sent = self._acked = self._rejected = self._batches = 0

    # -- data plane ---------------------------------------------------------------------------

    def offer(self, record: Offerable) -> bool:
        """Queues a record (an execution record or any sample of TelemetryBatch); returns False
        (and counts a drop) if the buffer is full or closed."""
        if len(self._buf) >= self.queue_size or self._closing:
            self._dropped += 1
            return False
        self._buf.append(record)
        self._offered += 1
        if not self._wakeup.is_set():
            self._wakeup.set()
        return True

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def connected(self) -> bool:
        return self._connected

    def stats(self) -> StreamerStats:
        return StreamerStats(
            offered=self._offered,
            dropped=self._dropped,
            sent=self._sent,
            batches=self._batches,
            acked=self._acked,
            rejected=self._rejected,
            queued=len(self._buf),
            connected=self._connected,
            reconnects=max(0, self._streams - 1),
        )

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"telemetry->{self.addr}")

    async def close(self, flush_s: float = CLOSE_FLUSH_S) -> None:
        """Stops accepting records, sends what it can within `flush_s`, then stops."""
        self._closing = True
        self._closed.set()
        self._wakeup.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), flush_s)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._buf:
            log.info("telemetry streamer closed with %d records unsent", len(self._buf))

    async def __aenter__(self) -> TelemetryStreamer:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- background ---------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = self._initial_backoff_s
        down_logged = False
        while True:
            if self._closing and not self._buf:
                return
            final = self._closing  # once closing, one last attempt, no retry loop
            connected = await self._one_stream()
            if connected:
                backoff = self._initial_backoff_s
                down_logged = False
            elif not down_logged:
                log.warning("predictor at %s unreachable; retrying with backoff up to %.1fs", self.addr, self._max_backoff_s)
                down_logged = True
            if final or (self._closing and not self._buf):
                return
            with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                await asyncio.wait_for(self._closed.wait(), backoff)
            backoff = min(backoff * 2, self._max_backoff_s)

    async def _one_stream(self) -> bool:
        """Connects and streams until the stream ends; returns whether it got connected."""
        channel = client_channel(self.addr, self._settings, options=self._options)
        try:
            if not await _wait_ready(channel, CONNECT_TIMEOUT_S):
                return False
            self._connected = True
            self._streams += 1
            if self._streams > 1:
                log.info("telemetry stream to %s reopened", self.addr)
            stub = predictor_pb2_grpc.PredictorStub(channel)
            try:
                ack = await stub.ReportTelemetry(self._feed(self._generation))
                self._acked += ack.accepted
                self._rejected += ack.rejected
            except aio.AioRpcError as exc:
                log.warning("telemetry stream to %s broke: %s %s", self.addr, exc.code().name, exc.details())
            return True
        finally:
            self._connected = False
            self._generation += 1
            await channel.close()

    async def _feed(self, generation: int) -> AsyncIterator[predictor_pb2.TelemetryBatch]:
        buf = self._buf
        while generation == self._generation:
            if buf:
                count = min(len(buf), MAX_BATCH)
                self._sent += count
                self._batches += 1
                yield batch_of(buf.popleft() for _ in range(count))
                if not self._closing:  # let the next records gather (close() cuts the wait short)
                    with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                        await asyncio.wait_for(self._closed.wait(), self._flush_interval_s)
                continue
            if self._closing:
                return
            self._wakeup.clear()
            await self._wakeup.wait()


async def _wait_ready(channel: aio.Channel, timeout_s: float) -> bool:
    """True once the channel is READY; False on failure to connect or timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    state = channel.get_state(try_to_connect=True)
    while state != grpc.ChannelConnectivity.READY:
        if state in (grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN):
            return False
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        try:
            await asyncio.wait_for(channel.wait_for_state_change(state), remaining)
        except TimeoutError:
            return False
        state = channel.get_state(try_to_connect=True)
    return True

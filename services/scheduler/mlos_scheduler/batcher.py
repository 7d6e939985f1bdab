"""Dynamic batching for one model version.

Event-driven (no polling task): a submit or a finished batch "pumps" the queue. When an
execution slot is free the queued requests that fit together are merged along the first
dimension and dispatched at once (the fast path: an idle model never waits). Under load,
requests that arrive while every slot is busy accumulate and leave as one batch when a slot
frees. `max_queue_delay_us` > 0 additionally lets a partial batch wait that long for company
while another batch is running.

Slots adapt to the model's weight: `slots` batches may be in flight, or `heavy_slots` once a
batch takes longer than `heavy_batch_s` on average (moving average of the measured batch time).
One slot lets a light model's requests gather into bigger batches while the executor is busy;
a heavy model gains more from keeping every execution slot of the executor busy, and its run
time dwarfs what smaller batches cost.

A queued request whose deadline passes is failed by its own timer, not when it reaches the
front (the gap in Triton #7512), and is never sent to an executor.

This is the small interface the deadline-aware scheduler will replace: `submit`, `stats`, `close`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Protocol

from mlos_common.errors import DeadlineExceeded, InvalidArgument, MlosError, Unavailable
from mlos_scheduler.domain import InferRequest, InferResult, ModelInfo
from mlos_scheduler.errors import QueueFull

log = logging.getLogger(__name__)

# Runs a batch: one result per request, in order, or the error that request failed with alone.
# Raising fails every request of the batch.
BatchRunner = Callable[[ModelInfo, list[InferRequest], float | None], Awaitable[list[InferResult | MlosError]]]

SCAN_LIMIT = 64  # queued requests examined when looking for batch partners
GROUP_LIMIT = 16  # requests of a model without a batch dimension dispatched together


class Batcher(Protocol):
    async def submit(self, request: InferRequest) -> InferResult: ...
    def stats(self) -> "BatcherStats": ...
    async def close(self, reason: str) -> None: ...


@dataclass
class BatcherStats:
    pending: int = 0
    in_flight: int = 0
    requests: int = 0
    batches: int = 0
    rows: int = 0

    @property
    def mean_batch_size(self) -> float:
        return self.rows / self.batches if self.batches else 0.0


@dataclass(slots=True)
class _Pending:
    request: InferRequest
    future: asyncio.Future
    enqueued: float
    signature: tuple
    timer: asyncio.TimerHandle | None = None


@dataclass
class DynamicBatcher:
    model: ModelInfo
    run_batch: BatchRunner
    max_queue_size: int
    slots: int = 2
    on_dispatch: Callable[[ModelInfo, list[InferRequest], list[float]], None] | None = None
    heavy_slots: int = 0  # slots once batches average over heavy_batch_s; 0 = `slots` always
    heavy_batch_s: float = 0.010
    batch_s_avg: float = 0.0  # moving average of a batch's time from dispatch to answer
    _queue: deque = field(default_factory=deque)
    _stats: BatcherStats = field(default_factory=BatcherStats)
    _closed: str = ""
    _delay_timer: asyncio.TimerHandle | None = None

    async def submit(self, request: InferRequest) -> InferResult:
        if self._closed:
            raise Unavailable(self._closed)
        if len(self._queue) >= self.max_queue_size:
            raise QueueFull(
                f"queue for model {self.model.name!r} is full: {len(self._queue)}/{self.max_queue_size} "
                "requests pending; retry later"
            )
        loop = asyncio.get_running_loop()
        item = _Pending(request, loop.create_future(), loop.time(), _signature(request))
        if request.deadline is not None:
            item.timer = loop.call_at(request.deadline, self._expire, item)
        self._queue.append(item)
        self._stats.requests += 1
        self._pump()
        return await item.future

    def _expire(self, item: _Pending) -> None:
        if not item.future.done():
            item.future.set_exception(
                DeadlineExceeded(
                    f"request to model {self.model.name!r} waited past its deadline in the queue "
                    f"({len(self._queue)} pending, {self._stats.in_flight} batches running)"
                )
            )
        # The dead entry is dropped when the pump next walks past it.

    def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        while self._stats.in_flight < self.slots_now:
            self._drop_dead_head()
            if not self._queue:
                return
            delay_s = self.model.max_queue_delay_us / 1e6
            if delay_s > 0 and self._stats.in_flight > 0 and self.model.max_batch_size > 1:
                oldest = self._queue[0].enqueued
                wait = oldest + delay_s - loop.time()
                if wait > 0 and self._queued_rows() < self.model.max_batch_size:
                    if self._delay_timer is None:
                        self._delay_timer = loop.call_later(wait, self._delay_elapsed)
                    return
            batch = self._take_batch()
            if not batch:
                return
            self._stats.in_flight += 1
            loop.create_task(self._run(batch))

    def _delay_elapsed(self) -> None:
        self._delay_timer = None
        self._pump()

    def _drop_dead_head(self) -> None:
        while self._queue and self._queue[0].future.done():
            self._queue.popleft()

    def _queued_rows(self) -> int:
        return sum(p.request.rows for p in self._queue if not p.future.done())

    def _take_batch(self) -> list[_Pending]:
        first = self._queue.popleft()
        batch = [first]
        limit = self.model.max_batch_size
        if limit <= 0:
            # No batch dimension: nothing merges, but queued requests leave together (one message,
            # one executor hop), each run on its own.
            while self._queue and len(batch) < GROUP_LIMIT:
                item = self._queue.popleft()
                if not item.future.done() and item.signature[1] == first.signature[1]:
                    batch.append(item)
                elif not item.future.done():
                    self._queue.appendleft(item)
                    break
            return batch
        rows = first.request.rows
        kept: list[_Pending] = []
        scanned = 0
        while self._queue and scanned < SCAN_LIMIT and rows < limit:
            item = self._queue.popleft()
            scanned += 1
            if item.future.done():
                continue
            if item.signature == first.signature and rows + item.request.rows <= limit:
                batch.append(item)
                rows += item.request.rows
            else:
                kept.append(item)
        self._queue.extendleft(reversed(kept))
        return batch

    @property
    def slots_now(self) -> int:
        """Batches that may be in flight now (see the module docstring)."""
        if self.heavy_slots and self.batch_s_avg > self.heavy_batch_s:
            return self.heavy_slots
        return self.slots

    async def _run(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for item in batch:
            if item.timer is not None:
                item.timer.cancel()
        live = [p for p in batch if not p.future.done()]
        try:
            if not live:
                return
            requests = [p.request for p in live]
            if self.on_dispatch is not None:
                self.on_dispatch(self.model, requests, [now - p.enqueued for p in live])
            deadlines = [r.deadline for r in requests if r.deadline is not None]
            timeout = max(deadlines) - now if len(deadlines) == len(requests) else None
            self._stats.batches += 1
            self._stats.rows += sum(r.rows for r in requests)
            try:
                results = await self.run_batch(self.model, requests, timeout)
                took = loop.time() - now
                self.batch_s_avg = 0.8 * self.batch_s_avg + 0.2 * took if self.batch_s_avg else took
            except MlosError as exc:
                for p in live:
                    if not p.future.done():
                        p.future.set_exception(exc)
                return
            except Exception as exc:  # noqa: BLE001 - every waiter must hear about it
                log.exception("batch for %s failed", self.model.name)
                for p in live:
                    if not p.future.done():
                        p.future.set_exception(exc)
                return
            if len(live) > 1 and _refused_together(results):
                await self._isolate(live)  # one request's bad data must not fail its neighbours
                return
            for p, result in zip(live, results, strict=True):
                _settle(p, result)
        finally:
            self._stats.in_flight -= 1
            if not self._closed:
                self._pump()

    async def _isolate(self, live: list[_Pending]) -> None:
        """Runs each request of a merged batch that the runtime refused on its own (concurrently),
        so only the culprit fails."""
        loop = asyncio.get_running_loop()

        async def alone(p: _Pending) -> None:
            deadline = p.request.deadline
            try:
                (result,) = await self.run_batch(
                    self.model, [p.request], None if deadline is None else deadline - loop.time()
                )
            except Exception as exc:  # noqa: BLE001 - every waiter must hear about it
                result = exc
            _settle(p, result)

        await asyncio.gather(*(alone(p) for p in live if not p.future.done()))

    def stats(self) -> BatcherStats:
        self._stats.pending = sum(1 for p in self._queue if not p.future.done())
        return self._stats

    async def close(self, reason: str) -> None:
        self._closed = reason
        if self._delay_timer is not None:
            self._delay_timer.cancel()
        while self._queue:
            item = self._queue.popleft()
            if item.timer is not None:
                item.timer.cancel()
            if not item.future.done():
                item.future.set_exception(Unavailable(reason))


def _refused_together(results: list) -> bool:
    """True when a merged batch failed as a whole on its data (one InvalidArgument for all)."""
    first = results[0]
    return isinstance(first, InvalidArgument) and all(r is first for r in results)


def _settle(p: _Pending, result: object) -> None:
    if p.future.done():
        return
    if isinstance(result, BaseException):
        p.future.set_exception(result)
    else:
        p.future.set_result(result)


def _signature(request: InferRequest) -> tuple:
    """Requests merge only when every input agrees beyond the first dimension."""
    return (
        tuple((t.name, t.datatype, t.shape[1:]) for t in request.inputs),
        tuple(request.outputs),
    )


__all__ = ["Batcher", "BatcherStats", "DynamicBatcher", "BatchRunner"]

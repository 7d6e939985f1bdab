"""Batch formation of the batcher (a mixin): when a partial batch leaves, who joins it, and
re-running a merged batch the runtime refused request by request.

See batcher.py's docstring for the rules; this holds the part that walks the queue.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlos_common.errors import DeadlineExceeded
from mlos_scheduler.domain import InferRequest, ModelInfo
from mlos_scheduler.queues import QueuePolicy

if TYPE_CHECKING:
    from mlos_scheduler.window import AdaptiveWindow

SCAN_LIMIT = 64  # queued requests examined when looking for batch partners
GROUP_LIMIT = 16  # requests of a model without a batch dimension dispatched together


@dataclass(slots=True)
class Pending:
    request: InferRequest
    future: asyncio.Future
    signature: tuple
    enqueued: float
    p_miss: float | None = None
    predicted_s: float | None = None  # predicted completion at admission
    timer: asyncio.TimerHandle | None = None


class BatchFormation:
    model: ModelInfo
    target_rows: int
    overhead: Any
    window: AdaptiveWindow
    _queue: QueuePolicy
    _preferred: list[int]
    estimate: Any
    run_batch: Any
    policy: Any

    def _wait_for_company(self, now: float) -> float:
        """Seconds a partial batch may still wait (0 = go now); see the module docstring."""
        if self.target_rows <= 1 or self._queue.rows >= self.target_rows:
            return 0.0
        if self._preferred and self._queue.rows >= self._preferred[0]:
            return 0.0
        oldest = min(e.arrival for e in self._queue)
        wait = oldest + self.window.window_s - now
        if wait <= 0:
            return 0.0
        deadlines = [e.deadline for e in self._queue if e.deadline is not None]
        if deadlines:
            own = self.estimate(self._queue.rows)
            wait = min(wait, min(deadlines) - now - own.mean_s - self.overhead.link_s)
        return max(wait, 0.0)

    def _cap(self) -> int:
        if not self._preferred:
            return self.target_rows
        fitting = [s for s in self._preferred if s <= self._queue.rows]
        return fitting[-1] if fitting else self.model.max_batch_size

    def _take_batch(self, now: float) -> list[Pending]:
        first = self._next_live(now)
        if first is None:
            return []
        batch = [first]
        if self.model.max_batch_size <= 0:
            # No batch dimension: nothing merges, but queued requests leave together (one message,
            # one executor hop), each run on its own.
            while len(batch) < GROUP_LIMIT and (item := self._next_live(now)) is not None:
                batch.append(item)
            return batch
        rows, limit, kept, scanned = first.request.rows, self._fitting(first, now), [], 0
        while rows < limit and scanned < SCAN_LIMIT and (entry := self._queue.pop()) is not None:
            scanned += 1
            item = entry.payload
            if item.signature == first.signature and rows + entry.rows <= limit and not self._late(item, now):
                batch.append(item)
                rows += entry.rows
            else:
                kept.append(entry)
        self._queue.push_front([e for e in kept if not e.payload.future.done()])
        return batch

    def _fitting(self, first: Pending, now: float) -> int:
        """The batch size cap, lowered (policy deadline) until the batch's predicted time still
        lets its most urgent request, `first`, make its deadline; never below its own rows."""
        limit = self._cap()
        deadline = first.request.deadline
        if deadline is None or self.policy.order != "deadline":
            return limit
        budget = deadline - now - self.overhead.link_s  # the batch itself must end in time
        while limit > first.request.rows and self.estimate(limit).mean_s > budget:
            limit = max(limit // 2, first.request.rows)
        return limit

    def _next_live(self, now: float) -> Pending | None:
        while (entry := self._queue.pop()) is not None:
            if not self._late(entry.payload, now):
                return entry.payload
        return None

    def _late(self, item: Pending, now: float) -> bool:
        """Fails a popped request whose deadline has passed (it must never start) -> True."""
        if item.future.done():
            return True
        deadline = item.request.deadline
        if deadline is None or deadline > now:
            return False
        item.future.set_exception(DeadlineExceeded(f"request to model {self.model.name!r} reached a batch after its deadline"))
        return True

    async def _isolate(self, live: list[Pending]) -> None:
        """Runs each request of a merged batch that the runtime refused on its own (concurrently),
        so only the culprit fails."""
        loop = asyncio.get_running_loop()

        async def alone(p: Pending) -> None:
            deadline = p.request.deadline
            try:
                (result,) = await self.run_batch(
                    self.model, [p.request], None if deadline is None else deadline - loop.time()
                )
            except Exception as exc:  # noqa: BLE001 - every waiter must hear about it
                result = exc
            settle(p, result)

        await asyncio.gather(*(alone(p) for p in live if not p.future.done()))


def settle(p: Pending, result: object) -> None:
    if p.future.done():
        return
    if isinstance(result, BaseException):
        p.future.set_exception(result)
    else:
        p.future.set_result(result)


def signature(request: InferRequest) -> tuple:
    """Requests merge only when every input agrees beyond the first dimension."""
    return (
        tuple((t.name, t.datatype, t.shape[1:]) for t in request.inputs),
        tuple(request.outputs),
    )



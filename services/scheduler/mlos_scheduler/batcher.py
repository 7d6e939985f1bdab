"""Deadline-aware dynamic batching for one model version: `submit`, `predict`, `stats`, `close`.

Event-driven (no polling task): a submit, a finished batch or a window timer "pumps" the queue.

Order. The queue policy (queues.py) decides who leaves next: `deadline` = priority levels of
earliest-deadline-first heaps with aging; `fifo` = arrival order (the naive baseline).

Admission (policy deadline, `predict` on, request with a deadline). Before queuing, predict.py
predicts its completion from the work ahead of it, the batch it will join (execution times from
the profile replica) and the measured link share. Predicted to miss with probability above
`miss_threshold` of its level -> refused at once with DEADLINE_EXCEEDED saying predicted vs allowed time,
unless the request is best-effort. Admitted requests get a timer at their *latest start*
(deadline - predicted execution - link share): still queued then, they fail at once (they can
no longer make it) instead of when they reach the front. Under fifo the timer is the deadline.

Batch formation. When a slot is free: an idle model (nothing running, nothing else queued)
dispatches at once (the fast path; policy.fast_path False turns it off, to measure it).
Otherwise a partial batch waits for company until its oldest request has waited the window
(window.py: adaptive on queue depth, or the model's own max_queue_delay_us), never past the
tightest queued deadline's latest start, and leaves at once when the queued rows reach the
target (a preferred batch size, else max_batch_size).
Requests merge only when every input agrees beyond the first dimension. A request whose
deadline has passed is never sent (no late start); one a client cancels leaves the queue at once.

Slots: `slots` batches may be in flight, or `heavy_slots` once a batch takes longer than
`heavy_batch_s` on average (a heavy model gains from every execution slot of its executors).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from mlos_common.errors import DeadlineExceeded, Internal, InvalidArgument, MlosError, Unavailable
from mlos_scheduler.admission import AdmissionBook
from mlos_scheduler.batch_policy import BatchPolicy
from mlos_scheduler.domain import InferRequest, InferResult, ModelInfo
from mlos_scheduler.errors import QueueFull
from mlos_scheduler.formation import BatchFormation, Pending, settle, signature
from mlos_scheduler.predict import ArrivalRates, Overhead, Prediction, QueueView, predict
from mlos_scheduler.profiles import ExecEstimate
from mlos_scheduler.queues import Entry, make_queue
from mlos_scheduler.window import AdaptiveWindow

log = logging.getLogger(__name__)

# Runs a batch: one result per request, in order, or the error that request failed with alone.
# Raising fails every request of the batch.
BatchRunner = Callable[[ModelInfo, list[InferRequest], float | None], Awaitable[list[InferResult | MlosError]]]
Estimator = Callable[[int], ExecEstimate]  # rows -> execution time of one batch


CLIENT_DEADLINE_SLACK_S = 0.002  # a cancellation this close to the deadline is the client's deadline firing


@dataclass
class BatcherStats:
    pending: int = 0
    in_flight: int = 0
    requests: int = 0
    batches: int = 0
    rows: int = 0
    fast_path: int = 0

    @property
    def mean_batch_size(self) -> float:
        return self.rows / self.batches if self.batches else 0.0


@dataclass
class DynamicBatcher(BatchFormation):
    model: ModelInfo
    run_batch: BatchRunner
    max_queue_size: int
    slots: int = 1
    on_dispatch: Callable[[ModelInfo, list[InferRequest], list[float]], None] | None = None
    heavy_slots: int = 0  # slots once batches average over heavy_batch_s; 0 = `slots` always
    heavy_batch_s: float = 0.010
    policy: BatchPolicy = field(default_factory=BatchPolicy)
    estimate: Estimator = lambda rows: ExecEstimate(0.005, 0.005, "prior")  # noqa: E731
    window: AdaptiveWindow = field(default_factory=AdaptiveWindow)  # the scheduler passes its policy's bands
    admission: AdmissionBook = field(default_factory=AdmissionBook)
    batch_s_avg: float = 0.0  # moving average of a batch's time from dispatch to answer
    overhead: Overhead = field(default_factory=Overhead)
    rates: ArrivalRates = field(default_factory=ArrivalRates)
    _stats: BatcherStats = field(default_factory=BatcherStats)
    _closed: str = ""
    _timer: asyncio.TimerHandle | None = None
    _running: dict[int, tuple[float, ExecEstimate]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        policy = self.policy
        self.levels = policy.levels_of(self.model.priority_levels)
        self._queue = make_queue(policy.order, self.levels, policy.aging_s)
        if self.model.max_queue_delay_us:
            self.window.fixed_us = float(self.model.max_queue_delay_us)
        sizes = sorted(s for s in self.model.preferred_batch_sizes if 0 < s <= self.model.max_batch_size)
        self._preferred = sizes
        self.target_rows = sizes[-1] if sizes else max(self.model.max_batch_size, 0)

    # ---- admission ----

    def predict(self, rows: int, priority: int, deadline: float | None, now: float) -> Prediction:
        """What would happen to a request sent now (queues nothing)."""
        entries, rows_ahead = self._queue.ahead(priority, deadline, now)
        overhead = self.overhead

        def service(n: int) -> ExecEstimate:
            return overhead.service(self.estimate(n))

        in_flight = []
        for start, est in self._running.values():
            full = overhead.service(est)
            in_flight.append((max(full.mean_s - (now - start), 0.1 * full.mean_s), full.std_s))
        slots, target = self.slots_now, self.target_rows
        per_row_s = service(target).mean_s / target if target > 0 else service(1).mean_s
        residual, residual_std = overhead.residual_s(priority)
        view = QueueView(entries, rows_ahead, tuple(in_flight), slots, target, residual, residual_std,
                         self._queue.rows, higher_load=self.rates.above(priority, now) * per_row_s / slots,
                         errors=overhead.errors.get(priority))
        allowed = None if deadline is None else deadline - now
        return predict(service, view, rows, allowed, self.policy.threshold(priority))

    async def submit(self, request: InferRequest) -> InferResult:
        if self._closed:
            raise Unavailable(self._closed)
        if len(self._queue) >= self.max_queue_size:
            raise QueueFull(
                f"queue for model {self.model.name!r} is full: {len(self._queue)}/{self.max_queue_size} "
                "requests pending; retry later"
            )
        loop = asyncio.get_running_loop()
        now = loop.time()
        name, version, priority, deadline = self.model.name, self.model.version, request.priority, request.deadline
        self.window.observe(len(self._queue))
        item = Pending(request, loop.create_future(), signature(request), now)
        latest_start = deadline
        if deadline is not None:
            if deadline <= now:
                raise DeadlineExceeded(f"request to model {name!r} arrived after its deadline")
            if self.policy.admits_by_prediction:
                pred = self.predict(request.rows, priority, deadline, now)
                if pred.miss_probability > self.policy.threshold(priority) and not request.best_effort:
                    self.admission.decided(name, version, priority, "rejected_predicted")
                    raise DeadlineExceeded(f"request to model {name!r} is predicted to miss its deadline: {pred.explain()}")
                item.p_miss, item.predicted_s = pred.miss_probability, pred.modelled_s
                if not request.best_effort:
                    latest_start = deadline - pred.execution_s - pred.network_s
            self.admission.decided(name, version, priority, "admitted")
        self.rates.add(priority, request.rows, now)
        entry = Entry(item, request.rows, priority, now, deadline)
        if latest_start is not None:
            item.timer = loop.call_at(latest_start, self._expire, entry, deadline is not None and latest_start < deadline)
        self._queue.push(entry)
        self._stats.requests += 1
        self._pump()
        try:
            result = await item.future
        except asyncio.CancelledError:
            if self._queue.discard(entry):
                self._pump()  # its place may have been holding a batch back
            if item.timer is not None:
                item.timer.cancel()
            if deadline is not None and loop.time() >= deadline - CLIENT_DEADLINE_SLACK_S:
                # The client's own deadline fired first (its gRPC deadline is the request's): a miss.
                self._outcome(item, now, missed=True)
            else:
                self.admission.cancelled(name, version, priority)
            raise
        except DeadlineExceeded:
            if deadline is not None:
                self.admission.outcome(name, version, priority, True, item.p_miss)
            raise
        if deadline is not None:
            self._outcome(item, now, missed=loop.time() > deadline)
        return result

    def _outcome(self, item: Pending, admitted_at: float, missed: bool) -> None:
        """An admitted request with a deadline ended: score its prediction and learn its error."""
        priority = item.request.priority
        self.admission.outcome(self.model.name, self.model.version, priority, missed, item.p_miss)
        if item.predicted_s is not None:
            elapsed = asyncio.get_running_loop().time() - admitted_at
            self.overhead.request_done(priority, elapsed, item.predicted_s)

    def _expire(self, entry: Entry, early: bool) -> None:
        item: Pending = entry.payload
        if not self._queue.discard(entry) or item.future.done():
            return
        self.admission.decided(self.model.name, self.model.version, entry.priority, "expired_queued")
        why = "can no longer meet its deadline" if early else "waited past its deadline"
        item.future.set_exception(DeadlineExceeded(
            f"request to model {self.model.name!r} {why} in the queue ({len(self._queue)} pending, "
            f"{self._stats.in_flight} batches running)"
        ))

    # ---- dispatch ----

    def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        while self._stats.in_flight < self.slots_now and len(self._queue):
            now = loop.time()
            idle = self.policy.fast_path and self._stats.in_flight == 0 and len(self._queue) == 1
            if not idle:
                wait = self._wait_for_company(now)
                if wait > 0:
                    if self._timer is None:
                        self._timer = loop.call_later(wait, self._window_elapsed)
                    return
            batch = self._take_batch(now)
            if not batch:
                continue
            if idle:
                self._stats.fast_path += 1
            self._stats.in_flight += 1
            loop.create_task(self._run(batch))

    def _window_elapsed(self) -> None:
        self._timer = None
        if not self._closed:
            self._pump()

    @property
    def slots_now(self) -> int:
        """Batches that may be in flight now (see the module docstring)."""
        if self.heavy_slots and self.batch_s_avg > self.heavy_batch_s:
            return self.heavy_slots
        return self.slots

    async def _run(self, batch: list[Pending]) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for item in batch:
            if item.timer is not None:
                item.timer.cancel()
        live = [p for p in batch if not p.future.done()]
        rows = sum(p.request.rows for p in live)
        est = self.estimate(rows or 1)
        self._running[id(batch)] = (now, est)
        try:
            if not live:
                return
            requests = [p.request for p in live]
            if self.on_dispatch is not None:
                self.on_dispatch(self.model, requests, [now - p.enqueued for p in live])
            deadlines = [r.deadline for r in requests if r.deadline is not None]
            timeout = max(deadlines) - now if len(deadlines) == len(requests) else None
            self._stats.batches += 1
            self._stats.rows += rows
            try:
                results = await self.run_batch(self.model, requests, timeout)
                if len(results) != len(live):
                    raise Internal(f"executor answered {len(results)} results for {len(live)} requests")
            except Exception as exc:  # noqa: BLE001 - every waiter must hear about it
                if not isinstance(exc, MlosError):
                    log.exception("batch for %s failed", self.model.name)
                for p in live:
                    settle(p, exc)
                return
            self._learn(rows, loop.time() - now, est)
            if len(live) > 1 and _refused_together(results):
                await self._isolate(live)  # one request's bad data must not fail its neighbours
                return
            for p, result in zip(live, results):
                settle(p, result)
        finally:
            self._running.pop(id(batch), None)
            self._stats.in_flight -= 1
            if not self._closed:
                self._pump()

    def _learn(self, rows: int, took: float, est: ExecEstimate) -> None:
        self.batch_s_avg = 0.8 * self.batch_s_avg + 0.2 * took if self.batch_s_avg else took
        self.overhead.batch_done(took, est.mean_s)

    @property
    def idle(self) -> bool:
        """Nothing queued and no batch in flight."""
        return not len(self._queue) and not self._running

    def stats(self) -> BatcherStats:
        self._stats.pending = len(self._queue)
        return self._stats

    async def close(self, reason: str) -> None:
        self._closed = reason
        if self._timer is not None:
            self._timer.cancel()
        while (entry := self._queue.pop()) is not None:
            item = entry.payload
            if item.timer is not None:
                item.timer.cancel()
            settle(item, Unavailable(reason))


def _refused_together(results: list) -> bool:
    """True when a merged batch failed as a whole on its data (one InvalidArgument for all)."""
    first = results[0]
    return isinstance(first, InvalidArgument) and all(r is first for r in results)


__all__ = ["BatcherStats", "BatchRunner", "DynamicBatcher", "Estimator"]

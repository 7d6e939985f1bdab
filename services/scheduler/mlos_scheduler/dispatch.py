"""Dispatch: where a model is placed and which executor runs each batch.

No grpc here: executors are reached through ExecutorPort. The Scheduler owns the serving set
and the queues; it asks the Dispatcher to place a model (`place`), hands its batcher
`run_batch`, and asks it to drop a model's placement on unload (`unplace`).

Rules (an executor is *usable* while its health check answers SERVING and its breaker, see
breaker.py, is closed):
- Placement: a model is loaded on ONE executor at first, the least loaded usable one (least
  outstanding predicted work, then fewest models held); one that refuses the load for lack of
  room (RESOURCE_EXHAUSTED: its memory budget) or cannot be reached passes it on to the next;
  when all refused for room, RESOURCE_EXHAUSTED with each one's reason. `replicate` adds another holder.
- Routing: each batch goes to the usable executor holding the model whose predicted completion
  (routing.RouteBook: its outstanding predicted work / its execution slots + this batch's
  estimate) is least; ties go to the one placed first. When no holder is usable, the least
  loaded other usable executor is asked to load the model (deduplicated) and gets the batch.
- Retry: only a transport failure (Unavailable) is retried, on another executor (the same one
  once more when no other can take it: its link reopens), and only while
  time allows: the first try may use the batch's timeout, a retry only what the tightest request
  deadline in the batch leaves. Nothing else is retried (INTERNAL/UNKNOWN, bad input, a deadline
  that passed on the executor). `may_retry` is the one decision, and refuses once a stream has
  produced output (generation streams pass output_seen=True after their first token).
- Lost model: an executor that answers "not loaded" (it restarted) is asked to load the model
  again - once per batch, and at most once for all the batches that were sent before that
  reload finished - and the batch is routed again while its time allows.
- Failure risk (risk.py): holders the predictor's failure model flags get no batches while a
  holder that is not flagged can take them; a model whose usable holders are all flagged is
  loaded in the background on a usable executor that is not; with none, routing is unchanged.
- Failure: K transport failures in a row open the executor's breaker; models left without a
  usable holder are then loaded elsewhere in the background (`rehome`), and after open_s one
  probe (a real Status call) closes the breaker again or keeps it open for another open_s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from mlos_common.errors import DeadlineExceeded, MlosError, ResourceExhausted, Unavailable
from mlos_scheduler.answers import ComputeObserver, batch_results, lone_result
from mlos_scheduler.breakers import BreakerBoard
from mlos_scheduler.domain import InferRequest, InferResult, ModelInfo
from mlos_scheduler.errors import ModelMissing, ModelNotReady, NoExecutor
from mlos_scheduler.executors import ExecutorPort
from mlos_scheduler.merging import merge_inputs
from mlos_scheduler.profiles import Warmup
from mlos_scheduler.risk import FailureRisk
from mlos_scheduler.routing import Estimate, RouteBook, RoutingMetrics
from mlos_scheduler.stats import StatsBook

log = logging.getLogger(__name__)

ModelKey = tuple[str, int]


def ready_again(holders: list[ExecutorPort], tried: list[ExecutorPort]) -> list[ExecutorPort]:
    """Holders that failed this batch once only: tried again when nothing else can take it (its
    link reopens on the next try, e.g. after the executor restarted)."""
    return [e for e in holders if tried.count(e) == 1]


def may_retry(error: MlosError, output_seen: bool) -> bool:
    """Whether a failed try may be sent again to another executor: only a transport failure, and
    never once the stream produced output (the client already holds part of an answer)."""
    return isinstance(error, Unavailable) and not output_seen


@dataclass
class Dispatcher:
    executors: list[ExecutorPort]
    stats: StatsBook = field(default_factory=StatsBook)
    execute_timeout_s: float = 60.0
    estimate: Estimate | None = None  # (model, rows) -> seconds; None = EMA of measured round trips
    breaker_failures: int = 3
    breaker_open_s: float = 2.0
    metrics: RoutingMetrics = field(default_factory=RoutingMetrics)
    on_compute: ComputeObserver | None = None  # each answered batch: (model, rows, compute seconds)
    on_warmup: Callable[[ModelInfo, list[Warmup]], None] | None = None  # timings an executor took at load
    placed: dict[ModelKey, list[ExecutorPort]] = field(default_factory=dict)  # holders, first placed first
    risk: FailureRisk | None = None  # the predictor's failure scores; None = not consulted

    def __post_init__(self) -> None:
        self.book = RouteBook(self.estimate)
        self.board = BreakerBoard(
            self.executors, self.breaker_failures, self.breaker_open_s, self.metrics.breaker, self.rehome, self._spawn
        )
        self.breakers = self.board.breakers
        self._models: dict[ModelKey, ModelInfo] = {}
        self._loading: dict[tuple[str, ModelKey], asyncio.Future] = {}
        self._loaded_at: dict[tuple[str, ModelKey], float] = {}  # last (re)load finished, perf_counter s
        self._tasks: set[asyncio.Task] = set()

    # ---- readiness ----

    def usable(self, executor: ExecutorPort) -> bool:
        return executor.healthy and self.board.usable(executor)

    def serving(self, key: ModelKey) -> bool:
        """A usable executor holds this model version."""
        return any(self.usable(e) for e in self.placed.get(key, ()))

    # ---- placement ----

    async def place(self, model: ModelInfo, timeout_s: float | None) -> list[ExecutorPort]:
        """Loads `model` on the least loaded usable executor, unless a usable one holds it already;
        returns its holders (a live list)."""
        if self.serving((model.name, model.version)):
            return self.placed[(model.name, model.version)]
        candidates = [e for e in self.executors if self.usable(e)] or list(self.executors)
        if not candidates:
            raise NoExecutor("no executor is configured")
        errors, unavailable = [], False
        for executor in sorted(candidates, key=self._load_order):
            try:
                await self.replicate(model, executor, timeout_s)
                return self.placed[(model.name, model.version)]
            except (Unavailable, ResourceExhausted) as exc:  # down, or no room there: try the next
                errors.append(f"{executor.addr}: {exc.message}")
                unavailable = unavailable or isinstance(exc, Unavailable)
        error = NoExecutor if unavailable else ResourceExhausted  # every one refused for lack of room
        raise error(f"could not load {model.name!r} v{model.version}: {'; '.join(errors)}")

    async def replicate(self, model: ModelInfo, executor: ExecutorPort, timeout_s: float | None) -> None:
        """Loads `model` on `executor` and adds it to the holders; concurrent calls share one load."""
        key = (model.name, model.version)
        self._models[key] = model
        job = (executor.addr, key)
        future = self._loading.get(job)
        if future is None:
            future = self._loading[job] = asyncio.ensure_future(self._load(model, executor, timeout_s))
            future.add_done_callback(lambda _f: self._loading.pop(job, None))
        await asyncio.shield(future)

    async def _load(self, model: ModelInfo, executor: ExecutorPort, timeout_s: float | None) -> None:
        try:
            warmup = await executor.load(model, timeout_s)
        except Unavailable:
            self.board.failed(executor)
            raise
        self.board.answered(executor)
        if warmup and self.on_warmup is not None:
            self.on_warmup(model, warmup)
        key = (model.name, model.version)
        self._loaded_at[(executor.addr, key)] = time.perf_counter()
        if key in self.placed:  # placed before: a move, a reload after a restart, or a replica
            self.metrics.reloaded(executor.addr)
        holders = self.placed.setdefault(key, [])
        if executor not in holders:
            holders.append(executor)

    def _load_order(self, executor: ExecutorPort) -> tuple[bool, float, int]:
        held = sum(executor in holders for holders in self.placed.values())
        risky = self.risk is not None and self.risk.risky(executor)
        return risky, self.book.outstanding_s(executor), held

    async def unplace(self, model: ModelInfo) -> None:
        """Unloads `model` from every executor holding it; failures are logged, not raised."""
        self._models.pop((model.name, model.version), None)
        for executor in self.placed.pop((model.name, model.version), []):
            try:
                await executor.unload(model)
            except MlosError as exc:
                log.warning("unload of %s on %s failed: %s", model.name, executor.addr, exc.message)

    async def rehome(self) -> None:
        """Loads every placed model that has no usable holder on another usable executor."""
        for key, holders in list(self.placed.items()):
            model = self._models.get(key)
            if model is None or any(self.usable(e) for e in holders):
                continue
            try:
                await self._route(model, 1, [], self.execute_timeout_s)
            except MlosError as exc:
                log.warning("model %s v%d has no usable executor: %s", key[0], key[1], exc.message)

    # ---- routing ----

    async def route(self, model: ModelInfo, tried: list[ExecutorPort], timeout_s: float,
                    rank: Callable[[ExecutorPort], float]) -> ExecutorPort:
        """An executor for one stream of `model` (a generation), chosen as for a batch, except that
        usable holders are compared by `rank` (least first) instead of predicted completion."""
        return await self._route(model, 1, tried, timeout_s, rank)

    async def _route(self, model: ModelInfo, rows: int, tried: list[ExecutorPort], timeout_s: float,
                     rank: Callable[[ExecutorPort], float] | None = None) -> ExecutorPort:
        holders = self.placed.get((model.name, model.version), [])
        ready = [e for e in holders if self.usable(e) and e not in tried]
        if ready:
            if self.risk is not None and self.risk.flagged:  # risk.py: away from risky holders
                others = [e for e in self.executors if self.usable(e) and e not in holders]
                ready, spare = self.risk.steer(ready, others)
                if spare:
                    self._move(model, min(spare, key=self._load_order))
            return min(ready, key=rank or (lambda e: self.book.completion_s(e, model, rows)))
        others = [e for e in self.executors if self.usable(e) and e not in tried and e not in holders]
        reasons = [f"{e.addr}: {self._why_not(e, tried)}" for e in self.executors if e not in others]
        for executor in sorted(others, key=self._load_order):
            try:
                await self.replicate(model, executor, timeout_s)
                log.info("model %s v%d moved to executor %s", model.name, model.version, executor.addr)
                return executor
            except (Unavailable, ResourceExhausted) as exc:  # down, or no room there
                tried.append(executor)
                reasons.append(f"{executor.addr}: load failed ({exc.message})")
        again = [e for e in ready_again(holders, tried) if self.usable(e)]  # a stale stream fails once, then reopens
        if again:
            return again[0]
        raise NoExecutor(f"no executor can run model {model.name!r} v{model.version}: {'; '.join(reasons)}")

    def _move(self, model: ModelInfo, executor: ExecutorPort) -> None:
        """Loads `model` on `executor` in the background (one load at a time)."""
        if (executor.addr, (model.name, model.version)) in self._loading:
            return

        async def load() -> None:
            try:
                await self.replicate(model, executor, self.execute_timeout_s)
                log.info("model %s v%d loaded on %s, away from risky executors", model.name, model.version, executor.addr)
            except MlosError as exc:
                log.warning("could not load %s v%d on %s: %s", model.name, model.version, executor.addr, exc.message)

        self._spawn(load())

    def _why_not(self, executor: ExecutorPort, tried: list[ExecutorPort]) -> str:
        if executor in tried:
            return "failed this batch"
        if not executor.healthy:
            return "health check not SERVING"
        return f"circuit breaker {self.breakers[executor.addr].state.name.lower()}"

    async def run_batch(
        self, model: ModelInfo, requests: list[InferRequest], timeout_s: float | None
    ) -> list[InferResult | MlosError]:
        """A merged batch is one piece of work; requests of a model without a batch dimension are
        one piece each, sent together (one message, one worker-thread hop on the executor)."""
        started = time.perf_counter_ns()
        batched = model.max_batch_size > 0
        work = [merge_inputs(requests, True)] if batched else [r.inputs for r in requests]
        # A merged batch's outputs are split afterwards, so only a lone request's go straight to its windows.
        windows = [r.output_windows for r in requests] if not batched or len(requests) == 1 else None
        input_ns = time.perf_counter_ns() - started
        if (model.name, model.version) not in self.placed:
            raise ModelNotReady(f"model {model.name!r} v{model.version} is no longer loaded")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout_s if timeout_s is not None else self.execute_timeout_s)
        tightest = [r.deadline for r in requests if r.deadline is not None]
        retry_until = min([deadline, *tightest])
        rows = sum(r.rows for r in requests)
        tried: list[ExecutorPort] = []
        reloaded: list[ExecutorPort] = []
        last: MlosError | None = None
        while True:
            remaining = (deadline if last is None else retry_until) - loop.time()
            if remaining <= 0:
                if last is not None:
                    raise last
                raise DeadlineExceeded(f"no time left to run model {model.name!r}")
            executor = await self._route(model, rows, tried, remaining)
            remaining = (deadline if last is None else retry_until) - loop.time()
            if remaining <= 0:
                continue
            sent_s = time.perf_counter()
            estimate_s = self.book.estimate_s(executor, model, rows)
            self.book.started(executor, estimate_s)
            try:
                answers = await executor.execute(model, work, requests[0].outputs, remaining, windows)
            except Unavailable as exc:
                self.book.finished(executor, estimate_s, model, None)
                self.board.failed(executor)
                if not may_retry(exc, output_seen=False):
                    raise
                last = exc
                tried.append(executor)
                self.metrics.retried(executor.addr, "unavailable")
                continue
            roundtrip_s = time.perf_counter() - sent_s
            self.book.finished(executor, estimate_s, model, roundtrip_s)
            self.board.answered(executor)
            if isinstance(answers[0], ModelMissing) and executor not in reloaded:
                last = answers[0]
                reloaded.append(executor)
                self.metrics.retried(executor.addr, "not_loaded")
                await self._reload(model, executor, sent_s, retry_until - loop.time(), tried)
                continue
            self.stats.executor_roundtrip(executor.addr, int(roundtrip_s * 1e9))
            if batched:
                return batch_results(self.stats, model, requests, answers[0], input_ns, self.on_compute)
            return [lone_result(self.stats, model, r, a, input_ns, self.on_compute)
                    for r, a in zip(requests, answers, strict=True)]

    async def _reload(self, model: ModelInfo, executor: ExecutorPort, sent_s: float, timeout_s: float,
                      tried: list[ExecutorPort]) -> None:
        """The executor lost the model: load it again there, unless a reload finished after this
        batch was sent (then the model is back already)."""
        if timeout_s <= 0 or self._loaded_at.get((executor.addr, (model.name, model.version)), 0.0) > sent_s:
            return
        log.info("executor %s lost model %s v%d (restarted?); loading it again", executor.addr, model.name, model.version)
        try:
            await self.replicate(model, executor, timeout_s)
        except Unavailable:
            tried.append(executor)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        self.board.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for executor in self.executors:
            await executor.close()

"""Dispatch: where a model is placed and which executor runs each batch.

No grpc here: executors are reached through ExecutorPort. The Scheduler owns the serving set
and the queues; it asks the Dispatcher to place a model (`place`), hands its batcher
`run_batch`, and asks it to drop a model's placement on unload (`unplace`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from mlos_common.errors import DeadlineExceeded, MlosError, Unavailable
from mlos_scheduler.domain import InferRequest, InferResult, ModelInfo
from mlos_scheduler.errors import ModelNotReady, NoExecutor
from mlos_scheduler.executors import Executed, ExecutorPort
from mlos_scheduler.merging import merge_inputs, split_outputs
from mlos_scheduler.stats import StatsBook

log = logging.getLogger(__name__)

ModelKey = tuple[str, int]


@dataclass
class Dispatcher:
    executors: list[ExecutorPort]
    stats: StatsBook = field(default_factory=StatsBook)
    execute_timeout_s: float = 60.0
    placed: dict[ModelKey, list[ExecutorPort]] = field(default_factory=dict)  # executors holding a version

    async def place(self, model: ModelInfo, timeout_s: float | None) -> list[ExecutorPort]:
        """Loads `model` on an executor (the least busy that answers); returns where it is now."""
        candidates = [e for e in self.executors if e.healthy] or list(self.executors)
        if not candidates:
            raise NoExecutor("no executor is configured")
        errors = []
        for executor in sorted(candidates, key=lambda e: e.in_flight):
            try:
                await executor.load(model, timeout_s)
                self.placed[(model.name, model.version)] = placed = [executor]
                return placed
            except Unavailable as exc:
                errors.append(f"{executor.addr}: {exc.message}")
        raise NoExecutor(f"could not load {model.name!r} v{model.version}: {'; '.join(errors)}")

    async def unplace(self, model: ModelInfo) -> None:
        """Unloads `model` from every executor holding it; failures are logged, not raised."""
        for executor in self.placed.pop((model.name, model.version), []):
            try:
                await executor.unload(model)
            except MlosError as exc:
                log.warning("unload of %s on %s failed: %s", model.name, executor.addr, exc.message)

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
        executors = self.placed.get((model.name, model.version), [])
        if not executors:
            raise ModelNotReady(f"model {model.name!r} v{model.version} is no longer loaded")
        limit = timeout_s if timeout_s is not None else self.execute_timeout_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        last: MlosError | None = None
        # Executing is a pure function of the inputs, so retrying on UNAVAILABLE is safe while time allows.
        for executor in sorted(executors, key=lambda e: (not e.healthy, e.in_flight)):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            sent_ns = time.perf_counter_ns()
            try:
                answers = await executor.execute(model, work, requests[0].outputs, remaining, windows)
            except Unavailable as exc:
                executor.healthy = False
                last = exc
                continue
            self.stats.executor_roundtrip(executor.addr, time.perf_counter_ns() - sent_ns)
            if batched:
                return self._split(model, requests, answers[0], input_ns)
            return [self._one(model, r, a, input_ns) for r, a in zip(requests, answers, strict=True)]
        if last is not None:
            raise last
        raise DeadlineExceeded(f"no time left to run model {model.name!r}")

    def _split(self, model: ModelInfo, requests: list[InferRequest], answer: Executed, input_ns: int
               ) -> list[InferResult | MlosError]:
        if isinstance(answer, MlosError):
            return [answer] * len(requests)
        outputs, compute_ns = answer
        split_start = time.perf_counter_ns()
        results: list[InferResult | MlosError] = [
            InferResult(model.name, model.version, r.id, outs)
            for r, outs in zip(requests, split_outputs(outputs, requests), strict=True)
        ]
        rows = sum(r.rows for r in requests)
        self.stats.executed(
            model.name, model.version, rows, len(requests), input_ns, compute_ns, time.perf_counter_ns() - split_start
        )
        return results

    def _one(self, model: ModelInfo, request: InferRequest, answer: Executed, input_ns: int) -> InferResult | MlosError:
        if isinstance(answer, MlosError):
            return answer
        outputs, compute_ns = answer
        self.stats.executed(model.name, model.version, request.rows, 1, input_ns, compute_ns, 0)
        return InferResult(model.name, model.version, request.id, outputs)

    async def close(self) -> None:
        for executor in self.executors:
            await executor.close()

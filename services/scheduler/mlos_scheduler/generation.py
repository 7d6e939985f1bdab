"""Generations (models whose task is "generate"): refusals, limits, executor choice and retries.

No grpc here. Scheduler.generate finds (or loads) the model, then passes on the chunks of
Generations.run, which resolves priority and deadline as for inference (the `resolve` it is
given: the request's priority level; its timeout, else the model's default_timeout_us).

Rules:
- a model whose task is not "generate" is refused INVALID_ARGUMENT (`check_task`; Scheduler
  checks it before loading a model for the request);
- max_tokens over the model's context (its serving config's context_length, else the one read
  from the file) is refused INVALID_ARGUMENT naming sampling_parameters.max_tokens; with neither
  known, the executor judges;
- at most `max_open` (the scheduler's max_queue_size) generations of a model version are open
  at once; one more is refused RESOURCE_EXHAUSTED naming the limit;
- the executor: a usable holder of the model with the fewest generations open from here
  (Dispatcher.route: with no usable holder the model is loaded on another executor);
- a try that fails Unavailable before its first chunk goes to another executor (or once more
  to the same, whose link reopens) while the deadline allows; an executor that lost the model
  (ModelMissing: it restarted) loads it again, once, and the try is repeated; nothing is
  retried once a chunk came (the client holds part of the answer);
- first_token_timeout_us counts from arrival: each try gets what is left of it;
- closing the iterator early (aclose, or the consumer cancelled) stops the generation on its
  executor; it counts as cancelled in the statistics (generation_stats.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field, replace

from mlos_common.errors import DeadlineExceeded, MlosError, Unavailable
from mlos_scheduler.dispatch import Dispatcher, may_retry
from mlos_scheduler.domain import GenerateRequest, GenerationChunk, ModelInfo
from mlos_scheduler.errors import BadRequest, ModelMissing, QueueFull
from mlos_scheduler.executors import ExecutorPort
from mlos_scheduler.generation_stats import GenerationRecord
from mlos_scheduler.stats import StatsBook

ModelKey = tuple[str, int]


def check_task(model: ModelInfo) -> None:
    """Refuses a model that does not generate text (BadRequest: INVALID_ARGUMENT)."""
    if not model.generates:
        raise BadRequest(
            f"model {model.name!r} does not generate text (its task is {model.task!r}); send it tensor "
            "inputs with ModelInfer, or use a generation model (task 'generate')"
        )


def context_tokens(model: ModelInfo) -> int:
    """Tokens one context of the model holds: its serving config's, else the file's; 0 = unknown."""
    if model.context_length:
        return model.context_length
    value = dict(model.facts).get("context_length", "")
    return int(value) if value.isdigit() else 0


def check_request(model: ModelInfo, request: GenerateRequest) -> None:
    check_task(model)
    context = context_tokens(model)
    if context and request.sampling.max_tokens > context:
        raise BadRequest(
            f"sampling_parameters.max_tokens is {request.sampling.max_tokens} but model {model.name!r} "
            f"holds {context} tokens per context (prompt included); ask for at most {context}"
        )


@dataclass
class Generations:
    dispatcher: Dispatcher
    stats: StatsBook
    max_open: int = 1024                      # open generations per model version
    open: dict[ModelKey, int] = field(default_factory=dict)
    on_executor: dict[str, int] = field(default_factory=dict)  # executor addr -> generations open there

    async def run(
        self, model: ModelInfo, request: GenerateRequest, resolve: Callable[[GenerateRequest], None], started_ns: int,
    ) -> AsyncGenerator[GenerationChunk, None]:
        """The generation's chunks, in order; the last has final set. `resolve` sets the request's
        priority level and deadline; `started_ns` is its arrival (time.perf_counter_ns)."""
        key = (model.name, model.version)
        try:
            check_request(model, request)
            resolve(request)
            if self.open.get(key, 0) >= self.max_open:
                raise QueueFull(
                    f"model {model.name!r} v{model.version} has {self.max_open} generations open, its limit "
                    "(max_queue_size); retry later"
                )
        except MlosError as exc:
            self.stats.failed(model.name, model.version, exc.code, time.perf_counter_ns() - started_ns)
            raise
        record = self.stats.generation.start(model.name, model.version, request.priority, request.stream, started_ns)
        self.open[key] = self.open.get(key, 0) + 1
        try:
            async with aclosing(self._tries(model, request, record, _first_by(request, started_ns))) as chunks:
                async for chunk in chunks:
                    record.chunk(chunk)
                    if chunk.final and chunk.finish_reason != "cancelled":
                        self.stats.succeeded(model.name, model.version, 1, time.perf_counter_ns() - started_ns)
                    yield chunk
        except MlosError as exc:
            record.failed(exc.code)
            self.stats.failed(model.name, model.version, exc.code, time.perf_counter_ns() - started_ns)
            raise
        finally:
            record.cancelled()  # no effect when it ended: the consumer left before the final chunk
            self.open[key] -= 1

    async def _tries(
        self, model: ModelInfo, request: GenerateRequest, record: GenerationRecord, first_by: float | None,
    ) -> AsyncGenerator[GenerationChunk, None]:
        loop = asyncio.get_running_loop()
        tried: list[ExecutorPort] = []
        reloaded: list[ExecutorPort] = []
        last: MlosError | None = None
        while True:
            timeout_s, _ = _time_left(model, request.deadline, first_by, last, loop)
            executor = await self.dispatcher.route(model, tried, _or(timeout_s, self.dispatcher.execute_timeout_s), self._open_on)
            timeout_s, first_s = _time_left(model, request.deadline, first_by, last, loop)
            attempt = replace(request, first_token_timeout_us=0 if first_s is None else max(1, int(first_s * 1e6)))
            seen = False
            self.on_executor[executor.addr] = self.on_executor.get(executor.addr, 0) + 1
            record.sent()
            try:
                async with aclosing(executor.generate(model, attempt, timeout_s)) as chunks:
                    async for chunk in chunks:
                        if not seen:
                            seen = True
                            self.dispatcher.board.answered(executor)
                        yield chunk
                return
            except Unavailable as exc:
                if not may_retry(exc, output_seen=seen):
                    raise
                self.dispatcher.board.failed(executor)
                self.dispatcher.metrics.retried(executor.addr, "unavailable")
                tried.append(executor)
                last = exc
            except ModelMissing as exc:
                if seen or executor in reloaded:
                    raise
                reloaded.append(executor)
                self.dispatcher.metrics.retried(executor.addr, "not_loaded")
                last = exc
                try:
                    await self.dispatcher.replicate(model, executor, _or(timeout_s, self.dispatcher.execute_timeout_s))
                except Unavailable:
                    tried.append(executor)
            finally:
                self.on_executor[executor.addr] -= 1

    def _open_on(self, executor: ExecutorPort) -> float:
        return self.on_executor.get(executor.addr, 0)


def _first_by(request: GenerateRequest, started_ns: int) -> float | None:
    """Loop time by which the first token must come (first_token_timeout_us from arrival), or None."""
    if not request.first_token_timeout_us:
        return None
    arrived = asyncio.get_running_loop().time() - (time.perf_counter_ns() - started_ns) / 1e9
    return arrived + request.first_token_timeout_us / 1e6


def _time_left(
    model: ModelInfo, deadline: float | None, first_by: float | None, last: MlosError | None,
    loop: asyncio.AbstractEventLoop,
) -> tuple[float | None, float | None]:
    """(seconds left for the whole generation, for its first token); None = no limit. Raises the
    last try's error, else DeadlineExceeded, when either is spent."""
    now = loop.time()
    for by, name in ((deadline, "timeout"), (first_by, "first_token_timeout")):
        if by is not None and by <= now:
            raise last or DeadlineExceeded(f"no time left to start a generation on model {model.name!r} ({name} passed)")
    return (None if deadline is None else deadline - now), (None if first_by is None else first_by - now)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value

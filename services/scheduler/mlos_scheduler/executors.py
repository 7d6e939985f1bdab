"""The scheduler's view of an executor: a port the core calls, backed by gRPC here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

from opentelemetry import propagate, trace

from mlos.common.v1 import tensor_pb2
from mlos.executor.v1 import executor_pb2 as epb
from mlos_common.errors import MlosError, Unavailable, error_for_code
from mlos_common.shm import ShmSpan
from mlos_executor.client import ExecutorClient
from mlos_executor.errors import is_not_loaded
from mlos_scheduler.domain import GenerateRequest, GenerationChunk, ModelInfo, Tensor
from mlos_scheduler.errors import ModelMissing
from mlos_scheduler.profiles import Warmup

# One piece of work's answer: (output tensors, compute_ns), or the error it failed with alone.
Executed: TypeAlias = tuple[list[Tensor], int] | MlosError


class ExecutorPort(Protocol):
    addr: str
    executor_id: str  # the id it reports in Status (names it in telemetry); "" until known
    healthy: bool  # its health check answered SERVING last round (set by the peer monitor only)
    in_flight: int
    execution_slots: int  # runs the executor may execute at once (1 until known)

    async def load(self, model: ModelInfo, timeout_s: float | None) -> list[Warmup]:
        """Loads the model; returns the executor's warm-up timings (empty when it ran none)."""
        ...

    async def probe(self, timeout_s: float) -> None:
        """A real round trip to the executor (its Status); raises Unavailable when it does not answer."""
        ...

    async def unload(self, model: ModelInfo) -> None: ...
    async def execute(
        self, model: ModelInfo, work: list[list[Tensor]], outputs: list[str], timeout_s: float | None,
        output_windows: list[dict[str, ShmSpan]] | None = None,
    ) -> list[Executed]:
        """Runs each piece of work (a merged batch, or one request's inputs); one answer each.

        `output_windows` (one per piece, or None): outputs the executor may write straight into
        a client's window; such an output comes back with `window` set and no raw.

        Raises Unavailable when the executor cannot be reached (nothing can be said of any piece);
        a piece that fails on the executor (bad input, runtime error, deadline) fails alone;
        pieces of a model the executor does not hold answer ModelMissing.
        """
        ...

    def generate(
        self, model: ModelInfo, request: GenerateRequest, timeout_s: float | None
    ) -> AsyncGenerator[GenerationChunk, None]:
        """Runs one generation; its chunks in order, the last with final set.

        `request.priority` is the resolved level (1 = highest) and `request.first_token_timeout_us`
        the time left for the first token (0 = none); `timeout_s` bounds the whole generation.
        Closing the iterator early (aclose, or the consumer cancelled) stops the generation on
        the executor. Raises Unavailable when the executor cannot be reached or its stream
        broke, ModelMissing when it does not hold the model, and the executor's typed error
        (DeadlineExceeded, InvalidArgument ...) when the generation failed there.
        """
        ...

    async def close(self) -> None: ...


@dataclass
class RemoteExecutor:
    client: ExecutorClient
    healthy: bool = True
    in_flight: int = 0
    execution_slots: int = 1
    link_mode: str = "auto"  # "auto": the executor's Unix link when co-located; "grpc": always gRPC
    executor_id: str = ""
    addr: str = field(init=False)
    _status_seen: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.addr = self.client.addr

    async def load(self, model: ModelInfo, timeout_s: float | None) -> list[Warmup]:
        reply = await self.client.load_model(
            model.name, model.version, model.sha256, model.max_batch_size, timeout_s, generation=_generation_config(model),
            task=model.task,
        )
        if not self._status_seen or (self.link_mode == "auto" and not self.client.link.unix_name):
            status = await self.client.status()
            self._status_seen = True
            self.executor_id = status.executor_id
            self.execution_slots = max(1, status.execution_slots)
            if self.link_mode == "auto":
                await self.client.link.prefer_unix(status.link_socket)
        return [Warmup(w.batch_size, w.mean_ms / 1000, w.max_ms / 1000, w.runs) for w in reply.warmup]

    async def probe(self, timeout_s: float) -> None:
        self.executor_id = (await self.client.status(timeout_s)).executor_id

    async def unload(self, model: ModelInfo) -> None:
        await self.client.unload(model.name, model.version)

    async def execute(
        self, model: ModelInfo, work: list[list[Tensor]], outputs: list[str], timeout_s: float | None,
        output_windows: list[dict[str, ShmSpan]] | None = None,
    ) -> list[Executed]:
        key = epb.ModelKey(name=model.name, version=model.version)
        traceparent = _traceparent()
        link = self.client.link
        futures = [
            link.submit(
                epb.Work(model=key, output_names=outputs, traceparent=traceparent), timeout_s, inputs,
                output_windows[i] if output_windows else None,
            )
            for i, inputs in enumerate(work)
        ]
        self.in_flight += 1
        try:
            replies = await asyncio.gather(*futures, return_exceptions=True)
        finally:
            self.in_flight -= 1
        for reply in replies:
            if isinstance(reply, Unavailable):
                raise reply
        return [_executed(r) for r in replies]

    async def generate(
        self, model: ModelInfo, request: GenerateRequest, timeout_s: float | None
    ) -> AsyncGenerator[GenerationChunk, None]:
        work = epb.Work(model=epb.ModelKey(name=model.name, version=model.version), traceparent=_traceparent(),
                        generate=_generate_pb(request))
        stream = self.client.link.submit_stream(work, timeout_s)
        try:
            async for result in stream:
                if result.error_code:
                    raise _failure(result)
                yield _chunk(result.chunk)
        finally:
            stream.cancel()  # no effect once the final chunk came

    async def close(self) -> None:
        await self.client.close()


def _generate_pb(request: GenerateRequest) -> epb.Generate:
    s = request.sampling
    return epb.Generate(
        prompt=request.prompt, max_tokens=s.max_tokens, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,
        seed=s.seed, stop=s.stop, priority=request.priority, first_token_timeout_us=request.first_token_timeout_us,
        stream=request.stream,
    )


def _chunk(c: epb.GenerationChunk) -> GenerationChunk:
    return GenerationChunk(c.text, c.tokens, c.final, c.finish_reason, c.prompt_tokens, c.first_token_ns)


def _executed(reply: epb.WorkResult | BaseException) -> Executed:
    if isinstance(reply, MlosError):
        return reply
    if isinstance(reply, BaseException):
        raise reply
    if reply.error_code:
        return _failure(reply)
    return [
        Tensor(o.name, o.datatype, tuple(o.shape), b"", ShmSpan(o.shm.key, o.shm.offset, o.shm.byte_size))
        if o.HasField("shm") else Tensor(o.name, o.datatype, tuple(o.shape), o.raw)
        for o in reply.outputs
    ], reply.compute_ns


def _failure(reply: epb.WorkResult) -> MlosError:
    """A failed result's typed error; ModelMissing when the executor does not hold the model."""
    if is_not_loaded(reply.error_code, reply.error_message):
        return ModelMissing(reply.error_message)
    return error_for_code(reply.error_code, reply.error_message)


def _generation_config(model: ModelInfo) -> tensor_pb2.ModelServingConfig | None:
    """The serving settings the executor needs: a tensor model's instances, threads and warm-up plan
    (None when all are the defaults), a GGUF model's llama.cpp settings."""
    if model.task == "infer":
        if model.instance_count <= 1 and not model.threads and not model.warmup_batch_sizes:
            return None
        return tensor_pb2.ModelServingConfig(instance_count=model.instance_count, threads=model.threads,
                                             warmup_batch_sizes=model.warmup_batch_sizes)
    return tensor_pb2.ModelServingConfig(
        device=model.device, context_length=model.context_length, threads=model.threads,
        chunk_tokens=model.chunk_tokens, gpu_layers=model.gpu_layers, contexts=model.contexts,
    )


def _traceparent() -> str:
    """The current trace context for the executor, only when someone records the trace."""
    if not trace.get_current_span().is_recording():
        return ""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent", "")

"""Scheduler-side helpers for generation tests: the generation models, a stack prepared for them
(their lookup, a short cancel grace), requests, and what the scripted executors received."""

from __future__ import annotations

from generation_testkit import ScriptedGenerations, generation_model, with_models
from sched_testkit import Stack

from mlos.executor.v1 import executor_pb2 as pb_executor
from mlos_scheduler.domain import GenerateRequest, GenerationChunk, ModelInfo, Sampling
from mlos_scheduler.executors import RemoteExecutor

MODELS = [
    generation_model("gen"),                                                    # 3 priority levels: default 2
    generation_model("gen2"),                                                   # for the statistics test alone
    generation_model("gen3", default_priority=1),
    generation_model("small", context_length=0, facts=(("context_length", "16"),)),  # context from the file
]
MAX_OPEN = 2


def scripted_of(stack: Stack) -> list[ScriptedGenerations]:
    servicers = [e.servicer for e in stack.executors]
    assert all(isinstance(s, ScriptedGenerations) for s in servicers)
    return servicers  # type: ignore[return-value]


def prepared(stack: Stack, models: list[ModelInfo] = MODELS) -> Stack:
    """`stack` with `models` in its lookup and a short cancel grace on its executor links."""
    stack.core.lookup = with_models(stack.core.lookup, models)
    for e in stack.core.executors:
        assert isinstance(e, RemoteExecutor)
        e.client.link.stream_grace_s = 0.05
    return stack


def request(prompt: bytes = b"hello there", model: str = "gen", max_tokens: int = 5, **fields) -> GenerateRequest:
    return GenerateRequest(model, "", "r1", prompt, Sampling(max_tokens=max_tokens, temperature=0.0, seed=7),
                           stream=fields.pop("stream", True), **fields)


def remote(stack: Stack) -> RemoteExecutor:
    """The stack's one executor, as the scheduler reaches it."""
    (executor,) = stack.core.executors
    assert isinstance(executor, RemoteExecutor)
    return executor


async def collect(stack: Stack, req: GenerateRequest) -> list[GenerationChunk]:
    return [c async for c in stack.core.generate(req)]


def seen(stack: Stack) -> list[int]:
    """How many generations each executor received so far (for `since`)."""
    return [len(s.received) for s in scripted_of(stack)]


def since(stack: Stack, before: list[int]) -> list[tuple[ScriptedGenerations, pb_executor.Work]]:
    """(executor, work) of each generation received after `before` = seen(stack)."""
    return [(s, w) for s, n in zip(scripted_of(stack), before, strict=True) for w in s.received[n:]]



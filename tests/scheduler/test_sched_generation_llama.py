"""Scheduler.generate against the real executor and llama.cpp, on the tiny llama GGUF the repo
writes (mlos_cli/gguf_models.py): the chunks the scheduler passes on are the executor's own, an
urgent request overtakes a long one, closing the consumer cancels on the executor, and the
executor's deadline and bad-input answers come back typed. The executor fetches the file from
disk and the scheduler's lookup names it (the registry's GGUF registration is tested there);
the stack is conftest's `llama`."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest
from generation_sched_testkit import collect, remote, request

from mlos.executor.v1 import executor_pb2 as epb
from mlos.inference import grpc_service_pb2 as pb
from mlos_common.errors import DeadlineExceeded, InvalidArgument

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.asyncio(loop_scope="session")

PROMPT = b"the cat sat on the mat"


async def test_the_scheduler_passes_on_the_executors_own_chunks(llama):
    chunks = await collect(llama, request(PROMPT, model="tiny", max_tokens=24))
    assert sum(c.tokens for c in chunks) == 24 and all(c.tokens <= 4 for c in chunks)
    assert chunks[0].prompt_tokens > 0 and chunks[0].first_token_ns > 0
    assert chunks[-1].final and chunks[-1].finish_reason == "length"
    direct = remote(llama).client.link.submit_stream(epb.Work(
        model=epb.ModelKey(name="tiny", version=1),
        generate=epb.Generate(prompt=PROMPT, max_tokens=24, temperature=0.0, seed=7, stream=True, priority=2),
    ), None)
    assert b"".join(c.text for c in chunks) == b"".join([r.chunk.text async for r in direct])


async def test_an_urgent_generation_overtakes_a_long_one(llama):
    ended: list[str] = []
    started = asyncio.Event()

    async def run(name: str, prompt: bytes, max_tokens: int, priority: int) -> None:
        async for chunk in llama.core.generate(request(prompt, model="tiny", max_tokens=max_tokens, priority=priority)):
            started.set()
            if chunk.final:
                ended.append(name)

    long = asyncio.get_running_loop().create_task(run("long", PROMPT, 150, 3))
    await started.wait()
    await run("urgent", b"a dog", 5, 1)
    await long
    assert ended == ["urgent", "long"]
    reply = await llama.stub.ModelStatistics(pb.ModelStatisticsRequest(name="tiny"), timeout=10)
    stats = reply.model_stats[0].response_stats
    assert stats["first_token/priority=1"].success.count == 1 and stats["first_token/priority=3"].success.count == 1


async def test_closing_the_consumer_cancels_the_generation_on_the_executor(llama):
    before = llama.metrics.get_sample_value(
        "mlos_generation_cancellations_total", {"model": "tiny", "version": "1", "priority": "2"}) or 0
    async with aclosing(llama.core.generate(request(PROMPT, model="tiny", max_tokens=200))) as chunks:
        await anext(chunks)
    # the cancel left before this one's work, and the executor ends a cancelled generation within a step
    await collect(llama, request(b"a dog", model="tiny", max_tokens=3))
    (model,) = (await remote(llama).client.status()).models
    assert model.generation.cancelled >= 1 and model.generation.active == 0
    assert llama.metrics.get_sample_value(
        "mlos_generation_cancellations_total", {"model": "tiny", "version": "1", "priority": "2"}) == before + 1


async def test_the_executors_refusals_come_back_typed(llama):
    loop = asyncio.get_running_loop()
    with pytest.raises(DeadlineExceeded):
        await collect(llama, request(PROMPT, model="tiny", max_tokens=200, deadline=loop.time() + 0.005))
    with pytest.raises(InvalidArgument, match="text_input"):
        await collect(llama, request(b"the cat " * 200, model="tiny", max_tokens=8))
    chunks = await collect(llama, request(PROMPT, model="tiny", max_tokens=3))
    assert chunks[-1].finish_reason == "length"

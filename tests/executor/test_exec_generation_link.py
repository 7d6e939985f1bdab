"""Generations on the Execute stream through WorkLink.submit_stream, over gRPC and the Unix link:
chunks in order, final, errors, cancel, a broken stream, the local timers, and tensor work on the
same stream meanwhile. The peer is ScriptedGenerations (tests/generation_testkit.py): the real
executor servicer that answers generations from a script."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from exec_testkit import ExecutorServed, StartExecutor, tensor
from generation_testkit import ScriptedGenerations, scripted, words

from mlos.common.v1 import tensor_pb2
from mlos.executor.v1 import executor_pb2 as pb
from mlos_common.errors import DeadlineExceeded, Unavailable
from mlos_common.tensors import array_from_raw
from mlos_executor.link_stream import GenerationStream

GEN = pb.ModelKey(name="gen", version=1)
GRACE_S = 0.05


@pytest.fixture(params=["grpc", "unix"])
async def executor(request, start_executor: StartExecutor) -> ExecutorServed:
    """An executor holding the generation model `gen` v1, over gRPC or its Unix link."""
    ex = await start_executor(servicer_factory=scripted)
    await ex.client.load_model("gen", 1, "", generation=tensor_pb2.ModelServingConfig(context_length=64))
    if request.param == "unix":
        assert await ex.client.link.prefer_unix(ex.servicer.link_socket)
    ex.client.link.stream_grace_s = GRACE_S
    return ex


def servicer(executor: ExecutorServed) -> ScriptedGenerations:
    assert isinstance(executor.servicer, ScriptedGenerations)
    return executor.servicer


def generation(prompt: bytes, max_tokens: int = 5, stream: bool = True, first_token_timeout_us: int = 0) -> pb.Work:
    return pb.Work(model=GEN, generate=pb.Generate(
        prompt=prompt, max_tokens=max_tokens, stream=stream, priority=1, first_token_timeout_us=first_token_timeout_us,
    ))


async def results(stream: GenerationStream) -> list[pb.WorkResult]:
    return [r async for r in stream]


async def test_chunks_arrive_in_order_and_end_with_the_final_one(executor):
    link = executor.client.link
    stream = link.submit_stream(generation(b"tell me", max_tokens=7), None)
    got = await results(stream)
    assert [r.chunk.tokens for r in got] == [2, 2, 2, 1]
    assert b"".join(r.chunk.text for r in got) == words(7)
    assert [r.chunk.final for r in got] == [False, False, False, True]
    assert got[-1].chunk.finish_reason == "length"
    assert got[0].chunk.prompt_tokens == 2
    assert {r.id for r in got} == {stream.work_id}
    assert stream.done and link.open_streams == 0
    received = servicer(executor).received[-1]
    assert (received.generate.prompt, received.generate.priority, received.inputs) == (b"tell me", 1, [])


async def test_generations_on_one_stream_each_get_their_own_chunks(executor):
    link = executor.client.link
    streams = [link.submit_stream(generation(b"p", max_tokens=n), None) for n in (3, 6, 1)]
    outs = await asyncio.gather(*(results(s) for s in streams))
    for n, stream, got in zip((3, 6, 1), streams, outs, strict=True):
        assert b"".join(r.chunk.text for r in got) == words(n)
        assert {r.id for r in got} == {stream.work_id}
    assert link.streams_opened == 1 and link.messages_sent == 1


async def test_a_generation_that_is_not_streamed_comes_as_one_result(executor):
    got = await results(executor.client.link.submit_stream(generation(b"p", max_tokens=5, stream=False), None))
    assert [(r.chunk.tokens, r.chunk.final, r.chunk.text) for r in got] == [(5, True, words(5))]


async def test_an_error_result_ends_the_stream_after_the_chunks_before_it(executor):
    got = await results(executor.client.link.submit_stream(generation(b"fail"), None))
    assert got[0].chunk.text == words(1)
    assert (got[1].error_code, got[1].error_message) == ("INTERNAL", "scripted failure after one token")
    assert len(got) == 2


async def test_a_generation_of_a_model_not_held_fails_alone(executor):
    link = executor.client.link
    work = generation(b"p")
    work.model.name = "ghost"
    (result,) = await results(link.submit_stream(work, None))
    assert result.error_code == "FAILED_PRECONDITION" and "is not loaded on" in result.error_message
    assert b"".join(r.chunk.text for r in await results(link.submit_stream(generation(b"p"), None))) == words(5)


async def test_cancel_reaches_the_executor_and_its_final_chunk_ends_the_stream(executor):
    stream = executor.client.link.submit_stream(generation(b"hold"), None)
    first = await anext(stream)
    assert first.chunk.text == words(1)
    stream.cancel()
    await servicer(executor).cancelled(stream.work_id)
    rest = await results(stream)
    assert [(r.chunk.final, r.chunk.finish_reason) for r in rest] == [(True, "cancelled")]
    assert executor.client.link.open_streams == 0


async def test_a_cancel_the_executor_never_answers_ends_the_stream_after_the_grace(executor):
    link = executor.client.link
    stream = link.submit_stream(generation(b"deaf"), None)
    await anext(stream)
    stream.cancel()
    stream.cancel()  # once is enough
    assert await results(stream) == []
    await servicer(executor).cancelled(stream.work_id)
    assert servicer(executor).cancels.count(stream.work_id) == 1
    assert link.open_streams == 0


async def test_the_local_timer_fails_a_generation_past_its_timeout_and_cancels_it(executor):
    stream = executor.client.link.submit_stream(generation(b"silent"), timeout_s=0.05)
    with pytest.raises(DeadlineExceeded, match="the whole generation"):
        await results(stream)
    await servicer(executor).cancelled(stream.work_id)
    assert servicer(executor).received[-1].timeout_us == 50_000


async def test_the_local_timer_fails_a_generation_without_a_first_token_in_time(executor):
    link = executor.client.link
    stream = link.submit_stream(generation(b"silent", first_token_timeout_us=30_000), timeout_s=60)
    with pytest.raises(DeadlineExceeded, match="its first token"):
        await results(stream)
    await servicer(executor).cancelled(stream.work_id)
    # one that starts in time only has the whole limit left after its first chunk
    held = link.submit_stream(generation(b"hold", first_token_timeout_us=30_000), timeout_s=60)
    await anext(held)
    await servicer(executor).received_work(2)
    held.cancel()
    assert [r.chunk.finish_reason for r in await results(held)] == ["cancelled"]


async def test_a_broken_stream_fails_open_generations_unavailable(executor):
    link = executor.client.link
    stream = link.submit_stream(generation(b"hold"), None)
    await anext(stream)
    await executor.servicer.close_unix_link()
    await executor.server.stop(None)
    with pytest.raises(Unavailable, match=executor.addr):
        await results(stream)
    assert link.open_streams == 0
    stream.cancel()  # a failed stream has nothing to cancel


async def test_tensor_work_goes_on_while_a_generation_is_open(executor, registry, model_files):
    mv = await registry.client.register("plus", model_files.plus_one)
    await executor.client.load("plus", mv.version, mv.sha256)
    link = executor.client.link
    stream = link.submit_stream(generation(b"hold"), None)
    await anext(stream)
    x = np.ones((2, 3), np.float32)
    work = pb.Work(model=pb.ModelKey(name="plus", version=mv.version), inputs=[tensor("X", x)])
    result = await link.submit(work, 10.0)
    (y,) = result.outputs
    np.testing.assert_array_equal(array_from_raw(y.name, y.datatype, y.shape, y.raw), x + 1)
    assert not stream.done
    stream.cancel()
    assert [r.chunk.finish_reason for r in await results(stream)] == ["cancelled"]
    assert link.streams_opened == 1

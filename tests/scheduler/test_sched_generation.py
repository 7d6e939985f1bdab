"""Scheduler.generate through real gRPC to two executors that answer generations from a script
(tests/generation_testkit.py; the llama.cpp backend replaces the script when it lands): chunks,
refusals, the open-generation limit, executor choice, cancellation, deadlines, a lost model,
and the statistics (Prometheus and ModelStatistics' response_stats)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing

import pytest
import pytest_asyncio
from generation_sched_testkit import MAX_OPEN, collect, prepared, request, scripted_of, seen, since
from generation_testkit import scripted, words
from sched_testkit import Stack, running_stack

from mlos.inference import grpc_service_pb2 as pb
from mlos_common.errors import DeadlineExceeded, InvalidArgument, ResourceExhausted
from mlos_scheduler.domain import GenerationChunk

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def gen(tmp_path_factory: pytest.TempPathFactory, demo) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path_factory.mktemp("gen"), demo, load=("iris",), executors=2,
                             servicer_factory=scripted, max_queue_size=MAX_OPEN) as stack:
        yield prepared(stack)


async def test_chunks_come_in_order_with_the_resolved_priority_and_limits(gen):
    before = seen(gen)
    chunks = await collect(gen, request(max_tokens=5))
    assert [c.tokens for c in chunks] == [2, 2, 1]
    assert b"".join(c.text for c in chunks) == words(5)
    assert chunks[-1].final and chunks[-1].finish_reason == "length"
    assert chunks[0].prompt_tokens == 2
    ((_, work),) = since(gen, before)
    g = work.generate
    assert (g.prompt, g.max_tokens, g.temperature, g.seed, g.stream) == (b"hello there", 5, 0.0, 7, True)
    assert (g.priority, g.first_token_timeout_us, work.timeout_us) == (2, 0, 0)  # the model's default level, no limits

    loop = asyncio.get_running_loop()
    before = seen(gen)
    chunks = await collect(gen, request(model="gen3", deadline=loop.time() + 30, first_token_timeout_us=5_000_000))
    ((_, work),) = since(gen, before)
    assert work.generate.priority == 1  # gen3's default
    assert 25_000_000 < work.timeout_us <= 30_000_000
    assert 4_000_000 < work.generate.first_token_timeout_us <= 5_000_000
    assert b"".join(c.text for c in chunks) == words(5)


async def test_a_model_that_does_not_generate_is_refused_before_it_is_loaded(gen):
    for name in ("ocr_cls", "iris"):  # not loaded, loaded
        with pytest.raises(InvalidArgument, match="does not generate text"):
            await collect(gen, request(model=name))
    assert gen.core.find("ocr_cls", "") is None


async def test_max_tokens_over_the_context_is_refused_naming_the_field(gen):
    with pytest.raises(InvalidArgument, match=r"sampling_parameters.max_tokens is 65 .* holds 64 tokens"):
        await collect(gen, request(max_tokens=65))
    with pytest.raises(InvalidArgument, match=r"sampling_parameters.max_tokens is 17 .* holds 16 tokens"):
        await collect(gen, request(model="small", max_tokens=17))
    assert b"".join(c.text for c in await collect(gen, request(model="small", max_tokens=16))) == words(16)


async def test_a_priority_over_the_levels_is_refused(gen):
    with pytest.raises(InvalidArgument, match="'priority' is 4 but model 'gen' has 3 priority levels"):
        await collect(gen, request(priority=4))


async def test_open_generations_per_model_are_bounded_and_closing_one_cancels_it(gen):
    held, works = [], []
    for _ in range(MAX_OPEN):
        before = seen(gen)
        held.append(gen.core.generate(request(b"hold")))
        assert (await anext(held[-1])).text == words(1)
        works.extend(since(gen, before))
    before = seen(gen)
    with pytest.raises(ResourceExhausted, match=f"{MAX_OPEN} generations open, its limit \\(max_queue_size\\)"):
        await collect(gen, request())
    assert since(gen, before) == []  # the refused one never left
    await held[1].aclose()
    servicer, work = works[1]
    await servicer.cancelled(work.id)
    assert b"".join(c.text for c in await collect(gen, request(max_tokens=3))) == words(3)
    await held[0].aclose()


async def test_a_cancelled_consumer_stops_the_generation_on_the_executor(gen):
    got: list[GenerationChunk] = []
    arrived = asyncio.Event()

    async def consume() -> None:
        async for chunk in gen.core.generate(request(b"hold")):
            got.append(chunk)
            arrived.set()

    before = seen(gen)
    task = asyncio.get_running_loop().create_task(consume())
    await arrived.wait()
    ((servicer, work),) = since(gen, before)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await servicer.cancelled(work.id)
    assert [c.text for c in got] == [words(1)]


async def test_the_executor_with_fewest_open_generations_gets_the_next(gen):
    model = await gen.core.load("gen")
    for e in gen.core.executors:
        await gen.core.dispatcher.replicate(model, e, 10)
    before = seen(gen)
    async with aclosing(gen.core.generate(request(b"hold"))) as one, aclosing(gen.core.generate(request(b"hold"))) as two:
        await anext(one)
        await anext(two)
        assert [a - b for a, b in zip(seen(gen), before, strict=True)] == [1, 1]


async def test_a_generation_past_its_deadline_or_first_token_limit_fails_and_is_cancelled(gen):
    loop = asyncio.get_running_loop()
    before = seen(gen)
    with pytest.raises(DeadlineExceeded, match="the whole generation"):
        await collect(gen, request(b"silent", deadline=loop.time() + 0.1))
    ((servicer, work),) = since(gen, before)
    await servicer.cancelled(work.id)
    with pytest.raises(DeadlineExceeded, match="its first token"):
        await collect(gen, request(b"silent", first_token_timeout_us=100_000))
    with pytest.raises(DeadlineExceeded, match="no time left to start a generation on model 'gen' \\(timeout passed\\)"):
        await collect(gen, request(deadline=loop.time() - 1))


async def test_an_executor_that_lost_the_model_loads_it_again(gen):
    model = await gen.core.load("gen")
    holders = gen.core.dispatcher.placed[("gen", model.version)]
    servicers = scripted_of(gen)
    for s in servicers:
        s.forget("gen", model.version)
    loads = sum(len(s.loads) for s in servicers)
    assert b"".join(c.text for c in await collect(gen, request(max_tokens=3))) == words(3)
    assert sum(len(s.loads) for s in servicers) == loads + 1
    assert holders == gen.core.dispatcher.placed[("gen", model.version)]


async def test_statistics_per_model_and_priority(gen):
    m = gen.metrics
    labels = {"model": "gen2", "version": "1", "priority": "2"}
    chunks = await collect(gen, request(model="gen2", max_tokens=7))  # chunks of 2, 2, 2, 1
    assert [c.tokens for c in chunks] == [2, 2, 2, 1]
    assert m.get_sample_value("mlos_generation_first_token_seconds_count", labels) == 1
    assert m.get_sample_value("mlos_generation_inter_token_seconds_count", labels) == 3
    assert m.get_sample_value("mlos_generation_tokens_total", labels) == 7
    assert m.get_sample_value("mlos_generation_tokens_per_second_count", labels) == 1
    assert m.get_sample_value("mlos_generation_finished_total", {**labels, "reason": "length"}) == 1
    async with aclosing(gen.core.generate(request(b"hold", model="gen2"))) as held:
        await anext(held)
    with pytest.raises(Exception, match="scripted failure"):
        await collect(gen, request(b"fail", model="gen2"))
    assert m.get_sample_value("mlos_generation_cancellations_total", labels) == 1
    assert m.get_sample_value("mlos_generation_finished_total", {**labels, "reason": "cancelled"}) == 1
    assert m.get_sample_value("mlos_generation_finished_total", {**labels, "reason": "internal"}) == 1
    assert m.get_sample_value("mlos_generation_tokens_total", labels) == 9

    reply = await gen.stub.ModelStatistics(pb.ModelStatisticsRequest(name="gen2"), timeout=10)
    (s,) = reply.model_stats
    r = s.response_stats
    assert set(r) == {f"{k}{p}" for k in ("first_token", "next_token", "generation") for p in ("", "/priority=2")}
    for p in ("", "/priority=2"):
        assert r[f"first_token{p}"].success.count == 3  # the finished one, the held one, the failed one
        assert r[f"next_token{p}"].success.count == 5   # tokens after each first chunk
        g = r[f"generation{p}"]
        assert (g.success.count, g.cancel.count, g.fail.count) == (1, 1, 1)
        assert g.success.ns > r[f"first_token{p}"].success.ns / 3 > 0
    assert (s.inference_stats.success.count, s.inference_stats.fail.count) == (1, 1)

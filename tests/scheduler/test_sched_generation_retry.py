"""Scheduler.generate when an executor goes away: retried elsewhere before the first chunk, never
after it. Two executors answering generations from a script (tests/generation_testkit.py), each
test on its own stack (one executor is stopped)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from generation_sched_testkit import collect, prepared, request
from generation_testkit import ScriptedGenerations, scripted, words
from sched_testkit import InProcessExecutor, Stack, running_stack

from mlos_common.errors import Unavailable

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def both(tmp_path: Path, demo) -> AsyncIterator[tuple[Stack, InProcessExecutor, InProcessExecutor]]:
    """A stack whose two executors both hold `gen`: (stack, the one chosen first, the other)."""
    async with running_stack(tmp_path, demo, load=("iris",), executors=2, servicer_factory=scripted) as stack:
        prepared(stack)
        model = await stack.core.load("gen")
        for e in stack.core.executors:
            await stack.core.dispatcher.replicate(model, e, 10)
        first, other = (next(x for x in stack.executors if x.addr == e.addr)
                        for e in stack.core.dispatcher.placed[("gen", model.version)])
        yield stack, first, other


def servicer(executor: InProcessExecutor) -> ScriptedGenerations:
    assert isinstance(executor.servicer, ScriptedGenerations)
    return executor.servicer


async def test_a_generation_whose_executor_is_gone_goes_to_another_before_its_first_chunk(both):
    stack, first, other = both
    received = len(servicer(other).received)
    await first.stop()
    chunks = await collect(stack, request(max_tokens=3))
    assert b"".join(c.text for c in chunks) == words(3)
    assert len(servicer(other).received) == received + 1
    retried = {"executor": first.addr, "reason": "unavailable"}
    assert stack.metrics.get_sample_value("mlos_scheduler_batch_retries_total", retried) == 1


async def test_a_generation_that_produced_a_chunk_is_not_retried(both):
    stack, first, other = both
    received = len(servicer(other).received)
    chunks = stack.core.generate(request(b"hold"))
    assert (await anext(chunks)).text == words(1)
    await first.stop()
    with pytest.raises(Unavailable, match=f"executor {first.addr}"):
        await anext(chunks)
    assert len(servicer(other).received) == received
    failed = {"model": "gen", "version": "1", "reason": "UNAVAILABLE"}
    assert stack.metrics.get_sample_value("mlos_inference_request_failure_total", failed) == 1

"""ExecutorPort.load returns the executor's warm-up timings as Warmup, which seed a ProfileBook."""

from __future__ import annotations

import pytest
from sched_testkit import Stack

from mlos_scheduler.profiles import ProfileBook, Warmup

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_remote_load_returns_warmup_that_seeds_the_book(stack: Stack) -> None:
    model = await stack.core.lookup("iris", 0)
    assert model.max_batch_size > 1
    timings = await stack.core.executors[0].load(model, 30)
    assert [(w.batch_size, w.runs) for w in timings] == [(1, 3), (model.max_batch_size, 3)]
    assert all(isinstance(w, Warmup) and 0 < w.mean_s <= w.max_s < 10 for w in timings)
    book = ProfileBook()
    book.seed_warmup(model.name, model.version, timings)
    est = book.estimate(model.name, model.version, model.max_batch_size)
    assert est.basis == "warmup" and est.mean_s >= timings[0].mean_s

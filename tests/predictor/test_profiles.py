"""Latency profiles: the book's per-batch-size series, the shared hub, and WatchLatencyProfiles
through a real server on port 0."""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np
import pytest
from predictor_testkit import ManualClock

from mlos_common.errors import InvalidArgument
from mlos_predictor.client import PredictorClient
from mlos_predictor.config import PredictorSettings
from mlos_predictor.latency import ExecutionRecord, LatencyBook
from mlos_predictor.profiles import ProfileHub
from mlos_predictor.server import create_server


def rec(model: str = "m", version: int = 1, ms: float = 1.0, batch: int = 1, ok: bool = True) -> ExecutionRecord:
    return ExecutionRecord(model_name=model, model_version=version, batch_size=batch, compute_ns=int(ms * 1e6), ok=ok)


# ---- domain ----


def test_profiles_per_batch_size_match_numpy_and_summary_unchanged() -> None:
    book = LatencyBook(window=100)
    rng = np.random.default_rng(3)
    by_batch = {1: rng.uniform(1, 2, 40), 8: rng.uniform(5, 9, 30)}
    for batch, values in by_batch.items():
        for v in values:
            book.record(rec(ms=float(v), batch=batch))
    book.record(rec(ms=500.0, batch=8, ok=False))  # failures never enter a profile
    hub = ProfileHub(book, clock=ManualClock())
    profiles, _ = hub.snapshot()
    assert sorted(p.batch_size for p in profiles) == [1, 8]
    for p in profiles:
        ms = np.round(by_batch[p.batch_size] * 1e6) / 1e6
        assert p.count == ms.size
        assert p.mean_ms == pytest.approx(ms.mean())
        assert p.std_ms == pytest.approx(ms.std())
        assert p.p95_ms == pytest.approx(np.percentile(ms, 95))
        assert p.max_ms == pytest.approx(ms.max())
    (summary,) = book.summary("m", 1)  # the per-model series still covers every batch size
    assert (summary.count, summary.window, summary.failures) == (71, 70, 1)


def test_many_watchers_share_one_computation_per_change() -> None:
    book = LatencyBook()
    clock = ManualClock()
    hub = ProfileHub(book, refresh_s=0.025, clock=clock)
    for batch in (1, 2, 4):
        book.record(rec(batch=batch))
    marks = [hub.snapshot()[1] for _ in range(50)]
    assert hub.computations == 3
    book.record(rec(batch=2, ms=3.0))
    clock.now += 0.03
    changed = [hub.changed(mark) for mark in marks]
    assert hub.computations == 4  # one profile changed: computed once for 50 watchers
    for profiles, _ in changed:
        assert [(p.batch_size, p.count) for p in profiles] == [(2, 2)]
    book.record(rec(batch=4))
    clock.now += 0.01  # within refresh_s: the cache is not recomputed yet
    assert hub.changed(changed[0][1])[0] == [] and hub.computations == 4
    clock.now += 0.02
    assert [p.batch_size for p in hub.changed(changed[0][1])[0]] == [4]


def test_changed_filters_by_model_and_keeps_change_order() -> None:
    book = LatencyBook()
    hub = ProfileHub(book, refresh_s=0.0)
    _, mark = hub.snapshot()
    for model, batch in (("a", 1), ("b", 1), ("a", 4), ("a", 1)):
        book.record(rec(model=model, batch=batch))
    profiles, _ = hub.changed(mark, "a")
    assert [(p.model_name, p.batch_size, p.count) for p in profiles] == [("a", 4, 1), ("a", 1, 2)]


# ---- through gRPC ----


@contextlib.asynccontextmanager
async def served(book: LatencyBook, hub: ProfileHub):
    server, port = create_server(PredictorSettings(grpc_port=0, metrics_port=-1), book, hub=hub)
    await server.start()
    try:
        async with PredictorClient(f"127.0.0.1:{port}") as client:
            yield client
    finally:
        await server.stop(None)


async def test_watch_snapshot_then_only_changes(predictor) -> None:
    async with PredictorClient(predictor.addr) as client:
        await client.report([rec(batch=1, ms=1.0), rec(batch=1, ms=3.0), rec(batch=4, ms=6.0), rec(model="z")])
        updates = client.watch_profiles(interval_ms=50)
        first = await anext(updates)
        assert first.snapshot
        got = {(p.model_name, p.batch_size): p for p in first.profiles}
        assert set(got) == {("m", 1), ("m", 4), ("z", 1)}
        assert (got["m", 1].count, got["m", 1].mean_ms, got["m", 1].max_ms) == (2, 2.0, 3.0)
        assert got["m", 1].std_ms == pytest.approx(1.0)

        await client.report([rec(batch=4, ms=10.0)])
        second = await asyncio.wait_for(anext(updates), 10)
        assert not second.snapshot
        assert [(p.model_name, p.batch_size, p.count, p.mean_ms) for p in second.profiles] == [("m", 4, 2, 8.0)]

        await client.report([rec(batch=16, ms=20.0)])
        third = await asyncio.wait_for(anext(updates), 10)
        assert [(p.batch_size, p.count) for p in third.profiles] == [(16, 1)]
        await updates.aclose()


async def test_watch_filters_by_model(predictor) -> None:
    async with PredictorClient(predictor.addr) as client:
        await client.report([rec(model="a"), rec(model="b")])
        updates = client.watch_profiles("a", interval_ms=50)
        first = await anext(updates)
        assert first.snapshot and [p.model_name for p in first.profiles] == ["a"]
        await client.report([rec(model="b", batch=2)])
        await client.report([rec(model="a", batch=2)])
        second = await asyncio.wait_for(anext(updates), 10)
        assert [(p.model_name, p.batch_size) for p in second.profiles] == [("a", 2)]
        await updates.aclose()


@pytest.mark.parametrize("interval_ms", [1, 49, 60_001, 10**9])
async def test_watch_bad_interval_invalid_argument(predictor, interval_ms: int) -> None:
    async with PredictorClient(predictor.addr) as client:
        with pytest.raises(InvalidArgument, match="interval_ms must be between 50 and 60000"):
            await anext(client.watch_profiles(interval_ms=interval_ms))
        assert (await anext(client.watch_profiles())).snapshot  # still serving; 0 = the default


async def test_watcher_going_away_ends_its_generator(poll_until) -> None:
    book = LatencyBook()
    hub = ProfileHub(book)
    async with served(book, hub) as client:
        updates = [client.watch_profiles(interval_ms=50) for _ in range(3)]
        for u in updates:
            assert (await anext(u)).snapshot
        assert hub.watchers == 3
        for u in updates[:2]:
            await u.aclose()

        async def two_gone() -> bool:
            return hub.watchers == 1

        await poll_until(two_gone, what="cancelled watchers to end")
        await updates[2].aclose()

        async def all_gone() -> bool:
            return hub.watchers == 0

        await poll_until(all_gone, what="the last watcher to end")

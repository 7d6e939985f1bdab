"""TelemetryStreamer against real predictors: delivery, drops, reconnects, close."""

from __future__ import annotations

from mlos_common.errors import NotFound
from mlos_predictor.client import PredictorClient, TelemetryStreamer
from mlos_predictor.latency import ExecutionRecord


def rec(i: int = 0, model: str = "bert") -> ExecutionRecord:
    return ExecutionRecord(model_name=model, model_version=1, batch_size=1, compute_ns=1_000_000 + i)


async def count_of(addr: str, model: str = "bert") -> int:
    async with PredictorClient(addr) as client:
        try:
            (s,) = await client.latency_summary(model)
        except NotFound:
            return 0
    return s.count


async def test_delivers_to_live_server(predictor, poll_until) -> None:
    async with TelemetryStreamer(predictor.addr) as streamer:
        for i in range(500):
            assert streamer.offer(rec(i))

        async def all_there() -> bool:
            return await count_of(predictor.addr) == 500

        await poll_until(all_there, what="500 records at the predictor")
        assert streamer.connected
    stats = streamer.stats()
    assert (stats.offered, stats.sent, stats.dropped, stats.queued) == (500, 500, 0, 0)
    assert stats.acked == 500  # the ack arrives when close() ends the stream


async def test_drops_when_full_without_blocking(unused_port) -> None:
    # nothing listens and the streamer is not even started: offer() must still return at once
    streamer = TelemetryStreamer(f"127.0.0.1:{unused_port}", queue_size=10)
    results = [streamer.offer(rec(i)) for i in range(25)]
    assert results == [True] * 10 + [False] * 15
    assert streamer.dropped == 15
    assert streamer.stats().queued == 10
    await streamer.close()


async def test_reconnects_when_server_starts_later(unused_port, predictor_factory, poll_until) -> None:
    addr = f"127.0.0.1:{unused_port}"
    streamer = TelemetryStreamer(addr)
    streamer.start()
    try:
        for i in range(50):
            streamer.offer(rec(i))
        # the server comes up after the streamer: records waited in the buffer
        await predictor_factory(port=unused_port)

        async def delivered() -> bool:
            return await count_of(addr) == 50

        await poll_until(delivered, what="buffered records after the predictor started")
    finally:
        await streamer.close()
    assert streamer.dropped == 0


async def test_survives_predictor_restart(unused_port, predictor_factory, poll_until) -> None:
    addr = f"127.0.0.1:{unused_port}"
    first = await predictor_factory(port=unused_port)
    async with TelemetryStreamer(addr) as streamer:
        for i in range(20):
            streamer.offer(rec(i))

        async def first_got_all() -> bool:
            return await count_of(addr) == 20

        await poll_until(first_got_all, what="records at the first predictor")
        await first.server.stop(None)

        async def noticed() -> bool:
            return not streamer.connected

        await poll_until(noticed, what="the streamer to notice the predictor went away")
        for i in range(30):
            streamer.offer(rec(i))
        await predictor_factory(port=unused_port)

        async def second_got_all() -> bool:
            return await count_of(addr) == 30

        await poll_until(second_got_all, what="records at the restarted predictor")
        assert streamer.stats().reconnects >= 1


async def test_close_flushes_and_is_bounded(unused_port) -> None:
    # predictor down: close() gives up within its flush budget and leaves the records unsent
    streamer = TelemetryStreamer(f"127.0.0.1:{unused_port}")
    streamer.start()
    streamer.offer(rec())
    await streamer.close(flush_s=0.5)
    assert streamer.stats().queued == 1
    assert not streamer.offer(rec())  # closed: counted as a drop
    assert streamer.dropped == 1


async def test_records_offered_one_by_one_travel_in_batches(predictor, poll_until) -> None:
    import asyncio

    async with TelemetryStreamer(predictor.addr, flush_interval_s=0.05) as streamer:
        for i in range(300):  # one per executed batch, as an executor offers them
            streamer.offer(rec(i))
            await asyncio.sleep(0)

        async def all_there() -> bool:
            return await count_of(predictor.addr) == 300

        await poll_until(all_there, what="300 records at the predictor")
    stats = streamer.stats()
    assert stats.sent == 300
    assert stats.batches < 30, f"{stats.batches} messages for 300 records"

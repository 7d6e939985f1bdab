"""The scheduler's ProfileFeed against a real predictor server: profiles land in the ProfileBook
as telemetry, and the feed comes back after the predictor restarts on the same port."""

from __future__ import annotations

from predictor_testkit import free_port, poll, start_predictor

from mlos_predictor.client import PredictorClient, ProfileUpdate
from mlos_predictor.convert import profile_from_proto, profile_to_proto
from mlos_predictor.latency import ExecutionRecord
from mlos_predictor.profiles import LatencyProfile
from mlos_scheduler.profile_feed import ProfileFeed
from mlos_scheduler.profiles import ProfileBook


def records(ms: float, n: int, batch: int = 2) -> list[ExecutionRecord]:
    return [ExecutionRecord("m", 1, batch, int(ms * 1e6)) for _ in range(n)]


async def test_feed_fills_the_book_and_reconnects_after_predictor_restart() -> None:
    port = free_port()
    predictor = await start_predictor(port)
    book = ProfileBook(telemetry_min_count=10)
    feed = ProfileFeed(predictor.addr, book, interval_ms=50, initial_backoff_s=0.05, max_backoff_s=0.2)
    try:
        async with PredictorClient(predictor.addr) as client:
            await client.report(records(4.0, 12))
        feed.start()

        async def telemetry_at(mean_ms: float):
            async def check() -> bool:
                est = book.estimate("m", 1, 2)
                return est.basis == "telemetry" and abs(est.mean_s - mean_ms / 1000) < 1e-9
            return check

        await poll(await telemetry_at(4.0), what="the snapshot's profile in the book")
        assert feed.connected and feed.snapshots == 1
        assert book.points("m", 1) == {2: (0.004, 0.0, "telemetry")}

        await predictor.server.stop(None)

        async def lost() -> bool:
            return not feed.connected

        await poll(lost, what="the feed to notice the predictor is gone")
        assert book.estimate("m", 1, 2).mean_s == 0.004  # figures from before stay meanwhile

        predictor = await start_predictor(port)  # a fresh predictor: an empty book

        async def resubscribed() -> bool:
            return feed.snapshots == 2

        await poll(resubscribed, what="the feed to subscribe again")
        written = feed.profiles
        async with PredictorClient(predictor.addr) as client:
            await client.report(records(8.0, 5))

        async def one_more() -> bool:
            return feed.profiles > written

        await poll(one_more, what="the new predictor's first profile")
        assert book.estimate("m", 1, 2).mean_s == 0.004  # 5 executions do not replace trusted figures
        async with PredictorClient(predictor.addr) as client:
            await client.report(records(8.0, 5))
        await poll(await telemetry_at(8.0), what="the new predictor's trusted profile")
    finally:
        await feed.close()
        await predictor.server.stop(None)
    assert not feed.connected


async def test_no_predictor_address_means_no_feed() -> None:
    feed = ProfileFeed("", ProfileBook())
    feed.start()
    assert feed.book.estimate("m", 1, 1).basis == "prior"
    await feed.close()
    assert feed.snapshots == 0


def test_the_learned_forecast_is_the_mean_and_the_spread_stays_the_profiles() -> None:
    book = ProfileBook(telemetry_min_count=10)
    feed = ProfileFeed("", book)
    measured = LatencyProfile("m", 1, 4, 50, mean_ms=4.0, std_ms=0.5, p50_ms=4.0, p95_ms=5.0, p99_ms=6.0, max_ms=7.0)
    learned = LatencyProfile("m", 1, 8, 50, mean_ms=6.0, std_ms=0.8, p50_ms=6.0, p95_ms=7.0, p99_ms=8.0, max_ms=9.0,
                             expected_ms=9.0)
    assert profile_from_proto(profile_to_proto(learned)) == learned  # the forecast survives the wire
    feed.apply(ProfileUpdate([measured, learned], snapshot=True))
    assert book.points("m", 1) == {4: (0.004, 0.0005, "telemetry"), 8: (0.009, 0.0008, "telemetry")}
    assert (feed.profiles, feed.learned) == (2, 1)

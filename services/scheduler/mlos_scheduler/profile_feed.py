"""ProfileFeed: the scheduler's subscription to the predictor's latency profiles.

A background task keeps one WatchLatencyProfiles stream open and writes every profile it
receives into the ProfileBook as a "telemetry" point (mean and std in seconds, with the
execution count, so points from too few executions stay untrusted). When a profile carries
`expected_ms` > 0 - the learned latency model's forecast of the next execution at that batch
size - that forecast is the point's mean; the spread stays the profile's std. When the predictor is
down or the stream breaks it reconnects with exponential backoff (initial_backoff_s doubling to
max_backoff_s, reset once a snapshot arrives). Nothing on a request's path waits for it: the
book is read locally. Points from a predictor that went away stay in the book until a newer
profile replaces them (a restarted predictor starts empty; old figures beat none).
An empty address means no feed: start() does nothing and the book keeps its other sources.
The reconnecting task is feed.PredictorFeed's.
"""

from __future__ import annotations

import logging

from mlos_common.config import ServiceSettings
from mlos_predictor.client import PredictorClient, ProfileUpdate
from mlos_scheduler.feed import INITIAL_BACKOFF_S, MAX_BACKOFF_S, PredictorFeed
from mlos_scheduler.profiles import ProfileBook

log = logging.getLogger(__name__)


class ProfileFeed(PredictorFeed):
    what = "latency profiles"
    ended = "the predictor ended the stream"

    def __init__(
        self,
        addr: str,
        book: ProfileBook,
        *,
        settings: ServiceSettings | None = None,
        interval_ms: int = 0,
        initial_backoff_s: float = INITIAL_BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
    ) -> None:
        """`interval_ms`: the predictor's minimum spacing of updates (0 = its default, 500 ms)."""
        super().__init__(addr, settings=settings, initial_backoff_s=initial_backoff_s, max_backoff_s=max_backoff_s)
        self.book = book
        self._interval_ms = interval_ms
        self.snapshots = 0  # streams that delivered their snapshot (reconnects = snapshots - 1)
        self.updates = 0  # messages received, snapshots included
        self.profiles = 0  # profiles written into the book
        self.learned = 0  # of those: carrying the learned latency model's forecast (expected_ms)

    async def _follow(self, client: PredictorClient) -> None:
        async for update in client.watch_profiles(interval_ms=self._interval_ms):
            if update.snapshot:
                self._connected()
                self.snapshots += 1
                log.info("latency profiles from %s: subscribed (stream %d)", self.addr, self.snapshots)
            self.apply(update)

    def apply(self, update: ProfileUpdate) -> None:
        """Writes one WatchLatencyProfiles message into the book."""
        self.updates += 1
        for p in update.profiles:
            learned = p.expected_ms > 0
            mean_ms = p.expected_ms if learned else p.mean_ms
            self.book.set(
                p.model_name, p.model_version, p.batch_size, mean_ms / 1000, p.std_ms / 1000, "telemetry",
                count=p.count,
            )
            self.learned += learned
        self.profiles += len(update.profiles)

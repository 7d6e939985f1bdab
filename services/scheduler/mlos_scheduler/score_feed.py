"""ScoreFeed: polls the predictor's failure and threat scores into the scheduler's ScoreTable.

A background task calls GetScores for each kind every `interval_s` on one channel and replaces
the kind's scores in the table (scores.py), stamped with the time they arrived, so the table can
age them out. When a poll fails (predictor down, GetScores not served) it opens a fresh channel
after a backoff (initial_backoff_s doubling to max_backoff_s, reset by a good poll). After every
attempt, good or not, `on_poll` runs: the routing and the threat gate review their decisions
(log changes, update gauges) - so a predictor that went away stops steering them once its
scores go stale. Nothing on a request's path waits for it. An empty address means no feed.
The reconnecting task is feed.PredictorFeed's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from mlos.predictor.v1 import predictor_pb2
from mlos_common.config import ServiceSettings
from mlos_predictor.client import PredictorClient
from mlos_scheduler.feed import INITIAL_BACKOFF_S, MAX_BACKOFF_S, PredictorFeed
from mlos_scheduler.scores import Score, ScoreTable

log = logging.getLogger(__name__)

KINDS = ("failure", "threat")


def score_of(msg: predictor_pb2.EntityScore, received_s: float) -> Score:
    return Score(msg.entity, msg.prediction.value, msg.prediction.reason, msg.unix_ms, received_s)


class ScoreFeed(PredictorFeed):
    what = "scores"

    def __init__(
        self,
        addr: str,
        table: ScoreTable,
        *,
        interval_s: float = 0.5,
        kinds: Sequence[str] = KINDS,
        on_poll: Callable[[], None] | None = None,
        settings: ServiceSettings | None = None,
        initial_backoff_s: float = INITIAL_BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
    ) -> None:
        super().__init__(
            addr, settings=settings, initial_backoff_s=initial_backoff_s, max_backoff_s=max_backoff_s,
            timeout_s=max(1.0, 4 * interval_s),
        )
        self.table = table
        self.interval_s = interval_s
        self.kinds = tuple(kinds)
        self._on_poll = on_poll
        self.polls = 0  # successful polls (every kind), all time
        self.failures = 0  # failed attempts, all time

    async def _follow(self, client: PredictorClient) -> None:
        while True:
            for kind in self.kinds:
                reply = await client.scores(kind)
                now_s = self.table.clock()
                self.table.replace(kind, (score_of(s, now_s) for s in reply.scores))
            if not self.connected:
                log.info("scores from %s: polling every %.0f ms", self.addr, self.interval_s * 1000)
            self._connected()
            self.polls += 1
            self._reviewed()
            await asyncio.sleep(self.interval_s)

    def _lost(self) -> None:
        if self.failures == 0 and not self.connected:
            log.warning("scores from %s unavailable (%s); retrying with backoff", self.addr, self.last_error)
        super()._lost()
        self.failures += 1
        self._reviewed()  # ageing: stale scores stop steering while the predictor is away

    def _reviewed(self) -> None:
        if self._on_poll is not None:
            self._on_poll()

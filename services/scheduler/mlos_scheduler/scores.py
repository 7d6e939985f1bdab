"""The scheduler's table of the predictor's latest scores (failure per executor, threat per client).

score_feed.py fills it from GetScores every interval; the routing (risk.py) and the front door's
threat gate (threat.py) read it locally, so no request waits on the predictor.

Ageing: a score is acted on only while it is *fresh*: the feed received it (the predictor still
said so) less than `stale_after_s` ago - a few poll intervals, so a predictor that went away
stops steering decisions soon - and the telemetry it was computed from is no older than
`max_age_s` (when the predictor states that time), so a client or executor that went quiet is
not judged by what it did long ago. Stale scores stay in the table (for inspection) until the
next poll of their kind replaces the kind's scores.

Each kind may be *watched* with a threshold: the table then keeps the entities at or above it
apart (`flagged`), so a caller on a hot path looks up one small dict, usually empty.
All times: `clock()` seconds (monotonic) and unix milliseconds for telemetry. One event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

DEFAULT_MAX_AGE_S = 60.0


@dataclass(frozen=True, slots=True)
class Score:
    entity: str  # executor id (failure) or client (threat)
    value: float  # failure: probability; threat: score in [0, 1]
    reason: str  # the predictor's words: the feature that stands out most
    unix_ms: int  # time of the telemetry the score comes from; 0 = not stated
    received_s: float  # clock() when the feed received it


class ScoreTable:
    def __init__(
        self,
        stale_after_s: float,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        if stale_after_s <= 0:
            raise ValueError(f"stale_after_s must be > 0, got {stale_after_s}")
        self.stale_after_s = stale_after_s
        self.max_age_s = max_age_s
        self.clock = clock
        self._wall_ms = wall_ms
        self._scores: dict[str, dict[str, Score]] = {}
        self._thresholds: dict[str, float] = {}
        self._flagged: dict[str, dict[str, Score]] = {}
        self.updates = 0  # replace() calls, all time

    def watch(self, kind: str, threshold: float) -> None:
        """Keeps the entities of `kind` scoring at least `threshold` apart (see `flagged`)."""
        self._thresholds[kind] = threshold
        self._flagged[kind] = {e: s for e, s in self._scores.get(kind, {}).items() if s.value >= threshold}

    def replace(self, kind: str, scores: Iterable[Score]) -> None:
        """Every score of `kind` the predictor gave now (entities it no longer scores are dropped)."""
        table = {s.entity: s for s in scores}
        self._scores[kind] = table
        threshold = self._thresholds.get(kind)
        if threshold is not None:
            self._flagged[kind] = {e: s for e, s in table.items() if s.value >= threshold}
        self.updates += 1

    def fresh(self, score: Score, now_s: float | None = None) -> bool:
        """Whether `score` may be acted on now (see the module's ageing rules)."""
        now_s = self.clock() if now_s is None else now_s
        if now_s - score.received_s >= self.stale_after_s:
            return False
        return not score.unix_ms or self._wall_ms() - score.unix_ms <= self.max_age_s * 1000

    def expires_in_s(self, score: Score, now_s: float | None = None) -> float:
        """Seconds until `score` goes stale unless the predictor says it again (0 when stale)."""
        now_s = self.clock() if now_s is None else now_s
        return max(0.0, score.received_s + self.stale_after_s - now_s)

    def get(self, kind: str, entity: str) -> Score | None:
        """The fresh score of `entity`, or None (unknown or stale)."""
        score = self._scores.get(kind, {}).get(entity)
        return score if score is not None and self.fresh(score) else None

    def above(self, kind: str, entity: str, now_s: float | None = None) -> Score | None:
        """The fresh score of `entity` when it is at or above its watched kind's threshold, else
        None. O(1); cheapest when nothing of the kind is flagged."""
        flagged = self._flagged.get(kind)
        score = flagged.get(entity) if flagged else None
        return score if score is not None and self.fresh(score, now_s) else None

    def flagged(self, kind: str) -> dict[str, Score]:
        """Entities of a watched kind at or above its threshold, fresh or not (check `fresh`)."""
        return self._flagged.get(kind, {})

    def scores(self, kind: str) -> list[Score]:
        """Every score of `kind` held, fresh or not, by entity."""
        return sorted(self._scores.get(kind, {}).values(), key=lambda s: s.entity)

"""Latency profiles per (model, version, batch size), and the hub that serves them to watchers.

A profile is the compute-time distribution of one model version at one batch size over the
latency book's window (successful executions only). WatchLatencyProfiles sends a snapshot of
every profile first, then only the profiles that changed, at most every interval.

Sharing: the hub computes a profile (numpy over its window) at most once per refresh, and
refreshes at most every `refresh_s`, whatever the number of watchers; a watcher's tick only
reads the hub's cache. So N watchers cost N cheap cache walks per interval, not N computations.
A watcher may see a change up to `refresh_s` after it happened. One event loop, like the book.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np

from mlos_predictor.errors import BadQuery
from mlos_predictor.latency import LatencyBook, ProfileKey

DEFAULT_INTERVAL_MS = 500
MIN_INTERVAL_MS = 50
MAX_INTERVAL_MS = 60_000
REFRESH_S = MIN_INTERVAL_MS / 1000 / 2


@dataclass(frozen=True, slots=True)
class LatencyProfile:
    model_name: str
    model_version: int
    batch_size: int
    count: int  # executions in the window the figures come from
    mean_ms: float
    std_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    expected_ms: float = 0.0  # the learned latency model's forecast of the next execution; 0 = none


def profile_of(key: ProfileKey, samples_ms: np.ndarray, expected_ms: float = 0.0) -> LatencyProfile:
    """The profile of one window of compute times (at least one sample)."""
    p50, p95, p99 = (float(v) for v in np.percentile(samples_ms, (50.0, 95.0, 99.0)))
    return LatencyProfile(
        model_name=key[0], model_version=key[1], batch_size=key[2], count=int(samples_ms.size),
        mean_ms=float(samples_ms.mean()), std_ms=float(samples_ms.std()),
        p50_ms=p50, p95_ms=p95, p99_ms=p99, max_ms=float(samples_ms.max()), expected_ms=expected_ms,
    )


Expected = Callable[[list[ProfileKey]], list[float]]  # profile keys -> forecast ms each (0 = none)


def interval_s_of(interval_ms: int) -> float:
    """A watch interval in seconds: 0 = the default; BadQuery outside [MIN, MAX]_INTERVAL_MS."""
    if interval_ms == 0:
        return DEFAULT_INTERVAL_MS / 1000
    if not MIN_INTERVAL_MS <= interval_ms <= MAX_INTERVAL_MS:
        raise BadQuery(
            f"interval_ms must be between {MIN_INTERVAL_MS} and {MAX_INTERVAL_MS} "
            f"(0 = the default {DEFAULT_INTERVAL_MS}), got {interval_ms}"
        )
    return interval_ms / 1000


class ProfileHub:
    """The profiles of a LatencyBook, computed once per change and shared by every watcher."""

    def __init__(
        self,
        book: LatencyBook,
        refresh_s: float = REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
        expected: Expected | None = None,
    ) -> None:
        """`expected`: the learned latency forecast of each changed profile (expected_ms),
        asked once per refresh for all of them; None = 0 everywhere."""
        self._book = book
        self._expected = expected
        self._refresh_s = refresh_s
        self._clock = clock
        self._computed: OrderedDict[ProfileKey, tuple[int, LatencyProfile]] = OrderedDict()  # oldest change first
        self._mark = 0  # the book's change number the cache reflects
        self._refreshed_at = -math.inf
        self.computations = 0  # profiles computed, all time
        self.watchers = 0  # watch() generators running now

    def refresh(self) -> int:
        """Recomputes the profiles changed since the last refresh, unless that was under
        refresh_s ago; returns the book change number the cache reflects."""
        book = self._book
        now = self._clock()
        if book.change != self._mark and now - self._refreshed_at >= self._refresh_s:
            changed = book.changed_since(self._mark)
            keys = [key for key, _ in changed]
            forecasts = self._expected(keys) if self._expected is not None else [0.0] * len(keys)
            for (key, number), expected_ms in zip(changed, forecasts, strict=True):
                self._computed[key] = (number, profile_of(key, book.profile_samples(key), expected_ms))
                self._computed.move_to_end(key)
                self.computations += 1
            self._mark = book.change
            self._refreshed_at = now
        return self._mark

    def snapshot(self, model: str = "") -> tuple[list[LatencyProfile], int]:
        """Every profile (of `model`; empty = all) and the change number it reflects."""
        mark = self.refresh()
        return [p for _, p in self._computed.values() if not model or p.model_name == model], mark

    def changed(self, since: int, model: str = "") -> tuple[list[LatencyProfile], int]:
        """The profiles (of `model`) changed after change number `since`, oldest change first."""
        mark = self.refresh()
        out: list[LatencyProfile] = []
        for number, profile in reversed(self._computed.values()):
            if number <= since:
                break
            if not model or profile.model_name == model:
                out.append(profile)
        out.reverse()
        return out, mark

    async def watch(self, model: str, interval_s: float) -> AsyncIterator[tuple[list[LatencyProfile], bool]]:
        """(profiles, snapshot): the snapshot first (even if empty), then each non-empty set of
        changed profiles, at most every interval_s. Ends only when the consumer stops it."""
        self.watchers += 1
        try:
            profiles, mark = self.snapshot(model)
            yield profiles, True
            while True:
                await asyncio.sleep(interval_s)
                profiles, mark = self.changed(mark, model)
                if profiles:
                    yield profiles, False
        finally:
            self.watchers -= 1

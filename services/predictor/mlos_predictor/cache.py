"""TTL result cache per kind, bounded with LRU eviction.

Keys are a row's float64 bytes (`row.tobytes()`): the dict hashes them, so two rows share an
entry exactly when every feature is bit-for-bit equal (no false hits from a lossy digest).
An entry lives `ttl_s` after it was stored (a hit does not extend it); a read that finds it
older counts as `expired` (and as a miss) and drops it. Past `capacity` entries the least
recently used one is dropped (`evicted`). A TTL of 0 turns caching off for that kind.

Single-threaded by design (the service's event loop); the clock is injectable so tests can
move time without sleeping.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class CacheStats:
    kind: str
    size: int
    capacity: int
    ttl_ms: float
    hits: int
    misses: int
    expired: int
    evicted: int

    @property
    def hit_rate(self) -> float:
        """hits / (hits + misses); 0 before any lookup."""
        looked = self.hits + self.misses
        return self.hits / looked if looked else 0.0


class TtlCache(Generic[V]):
    """One kind's cache: get/put by bytes key, counters since creation (clear keeps them)."""

    def __init__(self, kind: str, ttl_s: float, capacity: int, clock: Clock = time.monotonic) -> None:
        if ttl_s < 0 or capacity < 1:
            raise ValueError(f"{kind} cache: ttl_s must be >= 0 and capacity >= 1 (got {ttl_s}, {capacity})")
        self.kind = kind
        self.ttl_s = ttl_s
        self.capacity = capacity
        self._clock = clock
        self._entries: OrderedDict[bytes, tuple[float, V]] = OrderedDict()  # key -> (expires_at, value)
        self.hits = self.misses = self.expired = self.evicted = 0

    def get(self, key: bytes) -> V | None:
        """The fresh value stored under `key`, or None (a miss)."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        if entry[0] <= self._clock():
            del self._entries[key]
            self.expired += 1
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    def put(self, key: bytes, value: V) -> None:
        if self.ttl_s == 0:
            return
        entries = self._entries
        entries[key] = (self._clock() + self.ttl_s, value)
        entries.move_to_end(key)
        if len(entries) > self.capacity:
            entries.popitem(last=False)
            self.evicted += 1

    def clear(self) -> int:
        """Drops every entry; returns how many there were (fresh or not)."""
        n = len(self._entries)
        self._entries.clear()
        return n

    def stats(self) -> CacheStats:
        """Counters and the number of fresh entries (expired ones are dropped first)."""
        now = self._clock()
        stale = [k for k, (expires_at, _) in self._entries.items() if expires_at <= now]
        for key in stale:
            del self._entries[key]
        self.expired += len(stale)
        return CacheStats(
            self.kind, len(self._entries), self.capacity, self.ttl_s * 1000.0,
            self.hits, self.misses, self.expired, self.evicted,
        )  # fmt: skip


class ResultCaches(Generic[V]):
    """A TtlCache per kind. `ttl_ms` gives each kind's TTL (the kinds' defaults, overridden by
    settings); every kind gets `capacity` entries at most."""

    def __init__(self, ttl_ms: Mapping[str, float], capacity: int, clock: Clock = time.monotonic) -> None:
        self._caches: dict[str, TtlCache[V]] = {
            kind: TtlCache(kind, ms / 1000.0, capacity, clock) for kind, ms in ttl_ms.items()
        }

    def __getitem__(self, kind: str) -> TtlCache[V]:
        return self._caches[kind]

    def clear(self, kinds: Iterable[str]) -> int:
        """Clears the caches of `kinds`; returns the entries dropped."""
        return sum(self._caches[k].clear() for k in kinds)

    def stats(self, kinds: Iterable[str]) -> list[CacheStats]:
        return [self._caches[k].stats() for k in kinds]

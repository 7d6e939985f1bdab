"""The TTL result cache: freshness, LRU bound, counters. Time moves by an injected clock."""

from __future__ import annotations

import pytest
from predictor_testkit import ManualClock

from mlos_predictor.cache import ResultCaches, TtlCache


def test_hit_until_ttl_then_expired_miss() -> None:
    clock = ManualClock()
    cache: TtlCache[str] = TtlCache("failure", ttl_s=1.0, capacity=10, clock=clock)
    assert cache.get(b"a") is None
    cache.put(b"a", "A")
    clock.now = 0.75
    assert cache.get(b"a") == "A"  # a hit does not extend the entry's life
    clock.now = 1.0  # stored at 0 with a 1 s TTL
    assert cache.get(b"a") is None
    s = cache.stats()
    assert (s.hits, s.misses, s.expired, s.evicted, s.size) == (1, 2, 1, 0, 0)
    assert s.hit_rate == pytest.approx(1 / 3) and s.ttl_ms == 1000.0


def test_lru_eviction_keeps_recently_used() -> None:
    cache: TtlCache[int] = TtlCache("memory", ttl_s=60.0, capacity=2, clock=ManualClock())
    cache.put(b"a", 1)
    cache.put(b"b", 2)
    assert cache.get(b"a") == 1  # a is now the most recently used
    cache.put(b"c", 3)  # evicts b
    assert (cache.get(b"b"), cache.get(b"a"), cache.get(b"c")) == (None, 1, 3)
    s = cache.stats()
    assert (s.size, s.capacity, s.evicted) == (2, 2, 1)


def test_stats_drop_expired_entries_from_size() -> None:
    clock = ManualClock()
    cache: TtlCache[int] = TtlCache("threat", ttl_s=0.5, capacity=10, clock=clock)
    cache.put(b"a", 1)
    clock.now += 0.25
    cache.put(b"b", 2)
    clock.now += 0.3  # a is stale, b is not
    s = cache.stats()
    assert (s.size, s.expired, s.hits, s.misses) == (1, 1, 0, 0)


def test_zero_ttl_caches_nothing_and_clear_counts() -> None:
    off: TtlCache[int] = TtlCache("latency", ttl_s=0.0, capacity=10, clock=ManualClock())
    off.put(b"a", 1)
    assert off.get(b"a") is None and off.stats().size == 0
    caches: ResultCaches[int] = ResultCaches({"workload": 100.0, "memory": 50.0}, capacity=10, clock=ManualClock())
    caches["workload"].put(b"a", 1)
    caches["workload"].put(b"b", 2)
    caches["memory"].put(b"a", 3)
    assert caches.clear(["workload"]) == 2
    assert [s.size for s in caches.stats(["workload", "memory"])] == [0, 1]
    assert caches["workload"].stats().ttl_ms == 100.0


@pytest.mark.parametrize(("ttl_s", "capacity"), [(-1.0, 10), (1.0, 0)])
def test_bad_settings_refused(ttl_s: float, capacity: int) -> None:
    with pytest.raises(ValueError, match="ttl_s must be >= 0 and capacity >= 1"):
        TtlCache("failure", ttl_s, capacity)

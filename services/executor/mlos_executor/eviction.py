"""Which loaded models to evict so that a load fits the memory budget: least recently used first,
never one with work in flight.

`choose_victims(candidates, need_bytes)` is the whole policy: among the candidates with no work
in flight (no batch running or queued for a worker thread, no generation open), the least
recently used go first until their footprints add up to `need_bytes`. When even every idle model
together would not free enough it returns None and nothing should be evicted: a load that
cannot fit is refused without emptying the executor for nothing. The model being loaded is never
a candidate (the caller leaves it out). No grpc here.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from mlos_executor.budget import MB, Key

log = logging.getLogger(__name__)

REASON_MEMORY = "memory_budget"  # the `reason` label of mlos_executor_evictions_total: room for a load
REASON_OVER = "over_budget"  # a load measured more than predicted: back under the budget


@dataclass(frozen=True, slots=True)
class Candidate:
    key: Key
    last_used_ns: int  # monotonic time of its last request (its load when it never ran)
    busy: int  # work in flight: batches running or queued + open generations
    bytes: int  # its footprint in the budget


@dataclass(frozen=True, slots=True)
class Eviction:
    """One model evicted to make room (logged, counted, kept in Status)."""

    key: Key
    bytes: int
    reason: str
    for_key: Key  # the load it made room for
    idle_s: float  # since its last request


def choose_victims(candidates: list[Candidate], need_bytes: int) -> list[Candidate] | None:
    """The least recently used idle candidates whose bytes add up to `need_bytes`, oldest first;
    [] when nothing is needed; None when all idle candidates together are not enough."""
    if need_bytes <= 0:
        return []
    chosen: list[Candidate] = []
    freed = 0
    for c in sorted((c for c in candidates if c.busy == 0), key=lambda c: c.last_used_ns):
        chosen.append(c)
        freed += c.bytes
        if freed >= need_bytes:
            return chosen
    return None


def busy_summary(candidates: list[Candidate]) -> str:
    """The models that could not be evicted because work is in flight, in words."""
    busy = [c for c in candidates if c.busy]
    if not busy:
        return ""
    parts = [f"{n} v{v} {c.bytes / MB:.1f} MB ({c.busy} in flight)" for c in busy for n, v in [c.key]]
    return "; not evictable, work in flight: " + ", ".join(parts)


@dataclass
class Evictor:
    """Makes room in the budget (MemoryBudget.reserve's `make_room`): picks victims among
    `candidates(loading)` (every loaded model but the one loading), `unload`s them, logs each
    eviction, counts it and hands it to `on_evict` (the metrics)."""

    candidates: Callable[[Key], list[Candidate]]
    unload: Callable[[Key], object]
    on_evict: Callable[[Eviction], None] | None = None
    evictions: int = 0
    recent: deque[Eviction] = field(default_factory=lambda: deque(maxlen=16))

    def make_room(self, loading: Key, need_bytes: int, reason: str = REASON_MEMORY) -> str:
        """Evicts idle models, least recently used first, to free `need_bytes` for `loading`;
        "" when done, else (evicting nothing) why not, for the refusal."""
        candidates = self.candidates(loading)
        victims = choose_victims(candidates, need_bytes)
        if victims is None:
            idle = sum(c.bytes for c in candidates if not c.busy)
            return (f"; evicting every idle model would free only {idle / MB:.1f} MB of the "
                    f"{need_bytes / MB:.1f} MB missing{busy_summary(candidates)}")
        now_ns = time.monotonic_ns()
        for victim in victims:
            self.unload(victim.key)
            eviction = Eviction(victim.key, victim.bytes, reason, loading, (now_ns - victim.last_used_ns) / 1e9)
            self.evictions += 1
            self.recent.append(eviction)
            log.info("evicted %s v%d (%.1f MB, idle %.1f s, least recently used) for %s v%d: %.1f MB were "
                     "missing from the memory budget (%s)", *victim.key, victim.bytes / MB,
                     eviction.idle_s, *loading, need_bytes / MB, reason)
            if self.on_evict is not None:
                self.on_evict(eviction)
        return ""

    def trim(self, loaded: Key, over_bytes: int) -> None:
        """`loaded` measured more than its prediction and the models now take `over_bytes` more
        than the budget: evicts idle models to get back under it, or says it cannot."""
        if over_bytes <= 0:
            return
        note = self.make_room(loaded, over_bytes, REASON_OVER)
        if note:
            log.warning("%s v%d took more memory than predicted: the models are %.1f MB over the memory budget%s",
                        *loaded, over_bytes / MB, note)

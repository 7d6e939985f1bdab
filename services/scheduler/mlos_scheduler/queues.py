"""Queue policies of one model's batcher: in which order queued requests leave.

A policy holds `Entry`s and answers `pop()` with the next one to run. Entries that end while
queued (deadline, cancellation) are removed with `discard()` at once, so `len()` and `rows`
only ever count live requests — the queue limit and the pending gauge never see dead ones.

- `FifoQueue`: arrival order (the naive baseline).
- `DeadlineQueue`: one earliest-deadline-first heap per priority level (1 = highest). The next
  entry is the level head with the smallest *urgency* = deadline + (priority - 1) * aging_s:
  one priority level is worth `aging_s` of deadline. A higher priority goes first unless a
  lower one's deadline is more than `aging_s` (per level of difference) earlier, so no level
  starves: every newcomer's urgency is at least its arrival time, hence an entry waits at most
  until its urgency has passed. Entries without a deadline count as due `horizon_s` after arrival.

Both are plain data structures with no clock and no asyncio: the batcher owns timing.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(eq=False, slots=True)
class Entry:
    """One queued request; `payload` is the batcher's (request, future, ...) record."""

    payload: Any
    rows: int
    priority: int            # 1 = highest
    arrival: float           # loop time
    deadline: float | None   # loop time
    urgency: float = 0.0     # DeadlineQueue's sort key (set on push)
    seq: int = 0
    live: bool = True


class QueuePolicy(Protocol):
    rows: int  # rows of the live entries

    def push(self, entry: Entry) -> None: ...
    def pop(self) -> Entry | None: ...
    def push_front(self, entries: list[Entry]) -> None:
        """Puts back entries just popped (and not run), ahead of everything else they precede."""
        ...
    def discard(self, entry: Entry) -> bool:
        """Removes a queued entry; False when it already left."""
        ...
    def __len__(self) -> int: ...
    def ahead(self, priority: int, deadline: float | None, arrival: float) -> tuple[int, int]:
        """(entries, rows) that would leave before a request with these attributes."""
        ...
    def __iter__(self) -> Iterator[Entry]: ...


class FifoQueue:
    """Arrival order; discarded entries are skipped lazily but never counted."""

    def __init__(self) -> None:
        self._q: deque[Entry] = deque()
        self._live = 0
        self.rows = 0

    def push(self, entry: Entry) -> None:
        self._q.append(entry)
        self._live += 1
        self.rows += entry.rows

    def pop(self) -> Entry | None:
        while self._q:
            entry = self._q.popleft()
            if entry.live:
                entry.live = False
                self._live -= 1
                self.rows -= entry.rows
                return entry
        return None

    def push_front(self, entries: list[Entry]) -> None:
        for entry in reversed(entries):
            entry.live = True
            self._q.appendleft(entry)
            self._live += 1
            self.rows += entry.rows

    def discard(self, entry: Entry) -> bool:
        if not entry.live:
            return False
        entry.live = False
        self._live -= 1
        self.rows -= entry.rows
        if self._q and self._q[0] is entry:
            self._q.popleft()
        return True

    def __len__(self) -> int:
        return self._live

    def ahead(self, priority: int, deadline: float | None, arrival: float) -> tuple[int, int]:
        return self._live, self.rows

    def __iter__(self) -> Iterator[Entry]:
        return (e for e in self._q if e.live)


@dataclass
class _Level:
    heap: list = field(default_factory=list)  # (deadline key, seq, entry)
    live: int = 0
    rows: int = 0
    latest: float = float("-inf")  # the largest deadline key ever pushed while non-empty


class DeadlineQueue:
    """Priority levels of EDF heaps with the aging rule of the module docstring."""

    def __init__(self, levels: int, aging_s: float, horizon_s: float = 1.0) -> None:
        if levels < 1:
            raise ValueError("levels must be >= 1")
        self.levels = levels
        self.aging_s = aging_s
        self.horizon_s = horizon_s
        self._levels = [_Level() for _ in range(levels)]
        self._seq = itertools.count()
        self._live = 0
        self.rows = 0

    def _due(self, deadline: float | None, arrival: float) -> float:
        return deadline if deadline is not None else arrival + self.horizon_s

    def push(self, entry: Entry) -> None:
        level = self._levels[min(max(entry.priority, 1), self.levels) - 1]
        due = self._due(entry.deadline, entry.arrival)
        entry.seq = next(self._seq)
        entry.urgency = due + (entry.priority - 1) * self.aging_s
        entry.live = True
        heapq.heappush(level.heap, (due, entry.seq, entry))
        if level.live == 0:
            level.latest = due
        level.latest = max(level.latest, due)
        level.live += 1
        level.rows += entry.rows
        self._live += 1
        self.rows += entry.rows

    def pop(self) -> Entry | None:
        best: _Level | None = None
        best_urgency = float("inf")
        for level in self._levels:
            heap = level.heap
            while heap and not heap[0][2].live:
                heapq.heappop(heap)
            if heap and heap[0][2].urgency < best_urgency:
                best, best_urgency = level, heap[0][2].urgency
        if best is None:
            return None
        entry = heapq.heappop(best.heap)[2]
        self._forget(entry, best)
        return entry

    def push_front(self, entries: list[Entry]) -> None:
        for entry in entries:  # keys are kept, so they return to exactly their old places
            level = self._levels[min(max(entry.priority, 1), self.levels) - 1]
            entry.live = True
            heapq.heappush(level.heap, (self._due(entry.deadline, entry.arrival), entry.seq, entry))
            level.live += 1
            level.rows += entry.rows
            self._live += 1
            self.rows += entry.rows

    def _forget(self, entry: Entry, level: _Level) -> None:
        entry.live = False
        level.live -= 1
        level.rows -= entry.rows
        self._live -= 1
        self.rows -= entry.rows

    def discard(self, entry: Entry) -> bool:
        if not entry.live:
            return False
        level = self._levels[min(max(entry.priority, 1), self.levels) - 1]
        self._forget(entry, level)
        if len(level.heap) > 2 * level.live + 64:  # many dead slots deep inside: rebuild
            level.heap = [item for item in level.heap if item[2].live]
            heapq.heapify(level.heap)
        return True  # else its heap slot is dropped when it surfaces

    def __len__(self) -> int:
        return self._live

    def ahead(self, priority: int, deadline: float | None, arrival: float) -> tuple[int, int]:
        """Counts whole levels of higher priority, and within the request's own level the
        entries due no later. Lower levels aged ahead of it are not counted (an estimate)."""
        index = min(max(priority, 1), self.levels) - 1
        entries = sum(level.live for level in self._levels[:index])
        rows = sum(level.rows for level in self._levels[:index])
        own = self._levels[index]
        due = self._due(deadline, arrival)
        if own.live and due >= own.latest:
            return entries + own.live, rows + own.rows
        for key, _, entry in own.heap:
            if entry.live and key <= due:
                entries += 1
                rows += entry.rows
        return entries, rows

    def __iter__(self) -> Iterator[Entry]:
        for level in self._levels:
            yield from (item[2] for item in level.heap if item[2].live)


def make_queue(policy: str, levels: int, aging_s: float) -> QueuePolicy:
    if policy == "fifo":
        return FifoQueue()
    if policy == "deadline":
        return DeadlineQueue(levels, aging_s)
    raise ValueError(f"unknown queue policy {policy!r}")


__all__ = ["DeadlineQueue", "Entry", "FifoQueue", "QueuePolicy", "make_queue"]

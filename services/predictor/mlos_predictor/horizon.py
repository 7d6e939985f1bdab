"""Labels of the form "an event happens to this entity within the horizon", known only later.

A row of entity e taken at time t is labelled 1 if an event of e falls in (t, t + horizon],
else 0, once the watermark (the latest telemetry time seen for the kind, from any entity) has
passed t + horizon. Time is telemetry time (unix_ms of the samples), never the wall clock, so
recorded or simulated telemetry is labelled exactly as live telemetry is. The failure book's
events are restarts, silences and error bursts; the threat book's are misbehaving windows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from mlos_predictor.rowstore import Row, RowStore


class HorizonLabels:
    def __init__(self, store: RowStore, horizon_ms: int, on_sweep: Callable[[int], None] | None = None) -> None:
        if horizon_ms <= 0:
            raise ValueError(f"horizon_ms must be > 0, got {horizon_ms}")
        self.store = store
        self.horizon_ms = horizon_ms
        self.watermark = 0
        self._pending: dict[str, deque[Row]] = {}
        self._events: dict[str, deque[int]] = {}
        self._swept_at = 0
        self._on_sweep = on_sweep  # called with the watermark before a sweep labels every entity

    def add_row(self, row: Row) -> None:
        self._pending.setdefault(row.entity, deque()).append(row)

    def add_event(self, entity: str, unix_ms: int) -> None:
        events = self._events.setdefault(entity, deque())
        if not events or unix_ms > events[-1]:
            events.append(unix_ms)

    def forget(self, entity: str) -> None:
        self._pending.pop(entity, None)
        self._events.pop(entity, None)

    def advance(self, unix_ms: int, entity: str) -> None:
        """Moves the watermark to `unix_ms` (if later) and labels what became known: `entity`'s
        rows at once, every entity's at most every tenth of a horizon of telemetry time."""
        self.watermark = max(self.watermark, unix_ms)
        if self.watermark - self._swept_at >= self.horizon_ms // 10:
            self._swept_at = self.watermark
            if self._on_sweep is not None:
                self._on_sweep(self.watermark)
            for name in list(self._pending):
                self._resolve(name)
        else:
            self._resolve(entity)

    def _resolve(self, entity: str) -> None:
        pending = self._pending.get(entity)
        if not pending:
            return
        events = self._events.get(entity, deque())
        known_until = self.watermark - self.horizon_ms
        while pending and pending[0].unix_ms <= known_until:
            row = pending.popleft()
            while events and events[0] <= row.unix_ms:
                events.popleft()  # rows come in time order: an event before this row is no later row's
            end = row.unix_ms + self.horizon_ms
            self.store.label(row, 1.0 if events and events[0] <= end else 0.0)
        if not pending:
            del self._pending[entity]

    def pending(self) -> int:
        return sum(len(p) for p in self._pending.values())

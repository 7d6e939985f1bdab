"""The failure book: executors' health samples as feature rows, labelled by what happened next.

Features (kinds.SPECS["failure"] order), from one HealthSample and the executor's history:
error_rate = errors / executions (0 without executions); latency_drift as reported; resident
memory growth in MB/min over the last minute (0 until two samples a second apart are known);
rss / budget (0 without a budget); restarts in the last hour (a decrease of uptime_s is a
restart); executions per second.

Label: the executor failed or degraded within `horizon_ms` after the row: it restarted, its
samples stopped for more than 3 of its intervals (the event is placed at the third missed
interval), or a sample reported error_rate >= 0.5. A row is labelled once the watermark (the
latest health sample of any executor) has passed its horizon (horizon.py), so the rows of an
executor that went silent are labelled by the others' telemetry or by its own return.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from mlos_predictor.books import entity_state
from mlos_predictor.horizon import HorizonLabels
from mlos_predictor.kinds import SPECS, validate_row
from mlos_predictor.rowstore import Row, RowStore
from mlos_predictor.samples import HealthSample

MIB = float(1 << 20)
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
SILENT_INTERVALS = 3
ERROR_BURST = 0.5


@dataclass(slots=True)
class _Executor:
    rss: deque[tuple[int, int]] = field(default_factory=deque)  # (unix_ms, rss_bytes) of the last minute
    restarts: deque[int] = field(default_factory=deque)  # unix_ms of restarts in the last hour
    last_ms: int = 0
    interval_ms: float = 0.0
    uptime_s: float = 0.0
    silence_marked: bool = False  # a silence event after last_ms is recorded


class FailureBook:
    def __init__(self, capacity: int, horizon_ms: int = 30_000, max_entities: int = 10000) -> None:
        self.spec = SPECS["failure"]
        self.store = RowStore(self.spec.width, capacity, max_entities)
        self.labels = HorizonLabels(self.store, horizon_ms, on_sweep=self._mark_silences)
        self._executors: dict[str, _Executor] = {}

    def add(self, s: HealthSample) -> str | None:
        new = s.executor_id not in self._executors
        ex = entity_state(self._executors, self.store, s.executor_id, s.unix_ms, _Executor)
        if isinstance(ex, str):
            return ex
        restarted = not new and s.uptime_s < ex.uptime_s
        features = self._features(ex, s, restarted)
        reason = validate_row(self.spec, features)
        if reason is not None:
            return reason
        self._executors[s.executor_id] = ex
        if not new:
            silence_at = ex.last_ms + SILENT_INTERVALS * ex.interval_ms
            if s.unix_ms > silence_at and not ex.silence_marked:
                self.labels.add_event(s.executor_id, int(silence_at))
        if restarted:
            ex.rss.clear()  # memory of the old process says nothing about the new one
            ex.restarts.append(s.unix_ms)
            self.labels.add_event(s.executor_id, s.unix_ms)
        if features[0] >= ERROR_BURST:
            self.labels.add_event(s.executor_id, s.unix_ms)
        ex.rss.append((s.unix_ms, s.rss_bytes))
        ex.last_ms, ex.interval_ms, ex.uptime_s, ex.silence_marked = s.unix_ms, s.window_s * 1000, s.uptime_s, False
        row = Row(s.unix_ms, s.executor_id, features)
        self.store.observe(row)
        self.labels.add_row(row)
        self.labels.advance(s.unix_ms, s.executor_id)
        return None

    @staticmethod
    def _features(ex: _Executor, s: HealthSample, restarted: bool) -> tuple[float, ...]:
        while ex.rss and ex.rss[0][0] < s.unix_ms - MINUTE_MS:
            ex.rss.popleft()
        while ex.restarts and ex.restarts[0] <= s.unix_ms - HOUR_MS:
            ex.restarts.popleft()
        growth = 0.0
        if ex.rss and not restarted and s.unix_ms - ex.rss[0][0] >= 1000:
            t0, rss0 = ex.rss[0]
            growth = (s.rss_bytes - rss0) / MIB / ((s.unix_ms - t0) / MINUTE_MS)
        return (
            s.errors / s.executions if s.executions else 0.0,
            s.latency_drift,
            growth,
            s.rss_bytes / s.memory_budget_bytes if s.memory_budget_bytes else 0.0,
            float(len(ex.restarts) + (1 if restarted else 0)),
            s.executions / s.window_s,
        )

    def _mark_silences(self, watermark: int) -> None:
        """Records a silence event for every executor quiet for more than 3 of its intervals."""
        for name, ex in self._executors.items():
            silence_at = ex.last_ms + SILENT_INTERVALS * ex.interval_ms
            if not ex.silence_marked and watermark > silence_at:
                ex.silence_marked = True
                self.labels.add_event(name, int(silence_at))

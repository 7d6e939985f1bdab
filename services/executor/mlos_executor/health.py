"""The executor's health per interval: the predictor's `failure` kind learns from it (HealthSample).

`HealthMonitor.record` sees every execution (O(1), on the data plane, from the telemetry sink);
`snapshot` closes the interval and returns its figures:
- executions and errors in the interval;
- latency drift: per (model, version, batch size) series, a recent EWMA of compute time (alpha
  RECENT_ALPHA, about the last 5 runs) over a long-run one (alpha LONG_ALPHA, about the last 50);
  the interval's drift is the mean of those ratios over the series that ran in it, weighted by
  their runs, counting only series with MIN_RUNS runs behind them; 1.0 when none qualifies
  (steady, or nothing to tell). Clipped to [0, 1000] (the failure feature's range);
- uptime_s since the monitor was made (the process's start: a decrease tells the predictor it
  restarted). The caller adds rss_bytes, memory_budget_bytes and loaded_models to the sample.
At most MAX_SERIES series are followed (new ones beyond are not). No grpc here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from mlos_executor.core import ExecutionSample

RECENT_ALPHA = 0.3
LONG_ALPHA = 0.02
MIN_RUNS = 5
MAX_SERIES = 4096
MAX_DRIFT = 1000.0


@dataclass(frozen=True, slots=True)
class HealthInterval:
    """What one interval saw (the HealthSample's own figures; the caller adds memory and models)."""

    unix_ms: int
    window_s: float
    executions: int
    errors: int
    latency_drift: float
    uptime_s: float


class _Series:
    __slots__ = ("recent_ns", "long_ns", "runs")

    def __init__(self, ns: float) -> None:
        self.recent_ns = self.long_ns = ns
        self.runs = 1


class HealthMonitor:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started_s = self._window_start_s = clock()
        self._series: dict[tuple[str, int, int], _Series] = {}
        self._ran: dict[tuple[str, int, int], int] = {}  # runs per series in this interval
        self._executions = self._errors = 0

    def record(self, s: ExecutionSample) -> None:
        self._executions += 1
        if not s.ok:
            self._errors += 1
            return
        key = (s.model_name, s.model_version, s.batch_size)
        series = self._series.get(key)
        if series is None:
            if len(self._series) >= MAX_SERIES:
                return
            self._series[key] = _Series(float(s.compute_ns))
        else:
            series.recent_ns += RECENT_ALPHA * (s.compute_ns - series.recent_ns)
            series.long_ns += LONG_ALPHA * (s.compute_ns - series.long_ns)
            series.runs += 1
        self._ran[key] = self._ran.get(key, 0) + 1

    def latency_drift(self) -> float:
        """Recent / long-run compute time over the series that ran this interval (1.0 = steady)."""
        weighted = weight = 0.0
        for key, runs in self._ran.items():
            series = self._series[key]
            if series.runs >= MIN_RUNS and series.long_ns > 0:
                weighted += runs * series.recent_ns / series.long_ns
                weight += runs
        return min(MAX_DRIFT, weighted / weight) if weight else 1.0

    def snapshot(self) -> HealthInterval:
        """The interval's figures; a new interval starts."""
        now_s = self._clock()
        snap = HealthInterval(
            int(time.time() * 1000), now_s - self._window_start_s, self._executions, self._errors,
            self.latency_drift(), now_s - self._started_s,
        )
        self._window_start_s = now_s
        self._executions = self._errors = 0
        self._ran.clear()
        return snap

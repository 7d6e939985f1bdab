"""Latency book: per (model, version), the compute times of the last `window` executions.

Beside each (model, version) series the book keeps one per (model, version, batch size), the
latency profiles WatchLatencyProfiles publishes (see mlos_predictor.profiles); `changed_since`
says which of those took new samples after a change number, in O(changed).

Each series is a preallocated float64 ring (milliseconds), so recording is O(1) with no
allocation; percentiles are computed with numpy over the filled part of the ring when asked.
All-time counters (executions, failures, batch sizes) sit beside the ring. Failed executions
are counted but never enter the percentiles. Not thread-safe: use it from one event loop.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram

from mlos_predictor.errors import BadQuery, UnknownModel

log = logging.getLogger(__name__)

ProfileKey = tuple[str, int, int]  # (model, version, batch size)

MAX_COMPUTE_NS = 3600 * 1_000_000_000  # an execution claiming an hour or more is bogus
PERCENTILES = (50.0, 95.0, 99.0)
COMPUTE_MS_BUCKETS = (
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
)


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    """One executed batch, as an executor reports it."""

    model_name: str
    model_version: int
    batch_size: int
    compute_ns: int
    ok: bool = True
    executor_id: str = ""
    unix_ms: int = 0


@dataclass(frozen=True, slots=True)
class LatencySummary:
    model_name: str
    model_version: int  # 0 = all versions together
    count: int  # executions seen, all time (failures included)
    window: int  # successful executions the percentiles are computed over
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_batch_size: float  # over all executions seen
    failures: int


def rejection_reason(rec: ExecutionRecord) -> str | None:
    """Why a record is unusable, or None. Failed executions may report compute_ns == 0."""
    if not rec.model_name:
        return "empty model name"
    if rec.model_version < 0:
        return f"negative model version {rec.model_version}"
    if rec.batch_size < 1:
        return f"batch size {rec.batch_size} < 1"
    if rec.compute_ns >= MAX_COMPUTE_NS:
        return f"compute time {rec.compute_ns} ns is an hour or more"
    if rec.compute_ns < 0 or (rec.ok and rec.compute_ns == 0):
        return f"compute time {rec.compute_ns} ns is not positive"
    return None


class _Series:
    """Ring of the last `window` successful compute times (ms) plus all-time counters."""

    __slots__ = ("ring", "pos", "filled", "count", "failures", "batch_sum", "total_ms")

    def __init__(self, window: int) -> None:
        self.ring = np.zeros(window, dtype=np.float64)
        self.pos = 0
        self.filled = 0
        self.count = 0
        self.failures = 0
        self.batch_sum = 0
        self.total_ms = 0.0  # sum of the ring's filled part, kept as samples enter and leave

    def add(self, rec: ExecutionRecord, ms: float) -> None:
        self.count += 1
        self.batch_sum += rec.batch_size
        if not rec.ok:
            self.failures += 1
            return
        size = self.ring.shape[0]
        if self.filled == size:
            self.total_ms -= self.ring[self.pos]
        self.total_ms += ms
        self.ring[self.pos] = ms
        self.pos = (self.pos + 1) % size
        if self.filled < size:
            self.filled += 1

    def samples(self) -> np.ndarray:
        return self.ring[: self.filled]  # order does not matter for percentiles


class LatencyMetrics:
    """Prometheus metrics of the book, on the service's own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        records = Counter(
            "mlos_predictor_telemetry_records",
            "Execution records received, by result (accepted or rejected).",
            ["result"],
            registry=registry,
        )
        self.accepted = records.labels("accepted")
        self.rejected = records.labels("rejected")
        self.compute_ms = Histogram(
            "mlos_predictor_compute_ms",
            "Compute time of successful executions reported by executors, in milliseconds, by model.",
            ["model"],
            buckets=COMPUTE_MS_BUCKETS,
            registry=registry,
        )
        self._by_model: dict[str, Histogram] = {}

    def observe(self, model: str, ms: float) -> None:
        child = self._by_model.get(model)
        if child is None:
            child = self._by_model[model] = self.compute_ms.labels(model)
        child.observe(ms)


class LatencyBook:
    def __init__(
        self, window: int = 4096, max_models: int = 10000, registry: CollectorRegistry | None = None
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self.max_models = max_models
        self._series: dict[str, dict[int, _Series]] = {}  # model -> version -> series
        self._n_series = 0
        self._profiles: dict[ProfileKey, _Series] = {}  # (model, version, batch size) -> series
        self._changes: OrderedDict[ProfileKey, int] = OrderedDict()  # key -> change number, oldest first
        self.change = 0  # number of the latest change to any profile
        self._metrics = LatencyMetrics(registry) if registry is not None else None
        self.accepted = 0
        self.rejected = 0

    def record(self, rec: ExecutionRecord) -> bool:
        """Adds one execution; returns False (and counts a rejection) if the record is unusable."""
        reason = rejection_reason(rec)
        series = None
        if reason is None:
            series = self._series_for(rec.model_name, rec.model_version)
            if series is None:
                reason = f"tracking {self.max_models} series already"
        if series is None:
            self.rejected += 1
            if self._metrics is not None:
                self._metrics.rejected.inc()
            log.debug("rejected telemetry for %r: %s", rec.model_name, reason)
            return False
        ms = rec.compute_ns / 1e6
        series.add(rec, ms)
        if rec.ok:
            self._add_profile_sample(rec, ms)
        self.accepted += 1
        if self._metrics is not None:
            self._metrics.accepted.inc()
            if rec.ok:
                self._metrics.observe(rec.model_name, ms)
        return True

    def _series_for(self, model: str, version: int) -> _Series | None:
        versions = self._series.get(model)
        if versions is not None:
            series = versions.get(version)
            if series is not None:
                return series
        if self._n_series >= self.max_models:
            return None
        series = _Series(self.window)
        self._series.setdefault(model, {})[version] = series
        self._n_series += 1
        return series

    def _add_profile_sample(self, rec: ExecutionRecord, ms: float) -> None:
        key = (rec.model_name, rec.model_version, rec.batch_size)
        series = self._profiles.get(key)
        if series is None:
            if len(self._profiles) >= self.max_models:
                log.debug("no profile for %s: tracking %d profiles already", key, self.max_models)
                return
            series = self._profiles[key] = _Series(self.window)
        series.add(rec, ms)
        self.change += 1
        self._changes[key] = self.change
        self._changes.move_to_end(key)

    def profile_keys(self) -> list[ProfileKey]:
        return list(self._profiles)

    def profile_samples(self, key: ProfileKey) -> np.ndarray:
        """The compute times (ms) of the profile's window; raises KeyError for an unknown key."""
        return self._profiles[key].samples()

    def profile_mean_ms(self, key: ProfileKey) -> float | None:
        """Mean compute ms of the profile's window; None before its first successful execution."""
        series = self._profiles.get(key)
        if series is None or series.filled == 0:
            return None
        return max(series.total_ms, 0.0) / series.filled

    def mean_item_s(self) -> dict[str, float]:
        """Per model: mean compute seconds per batch item over its profiles' windows (every
        version and batch size, weighted by executions); models without an execution are absent."""
        sums: dict[str, list[float]] = {}
        for (name, _version, batch), series in self._profiles.items():
            if series.filled:
                acc = sums.setdefault(name, [0.0, 0.0])
                acc[0] += max(series.total_ms, 0.0)
                acc[1] += series.filled * batch
        return {name: ms / items / 1000.0 for name, (ms, items) in sums.items()}

    def changed_since(self, change: int) -> list[tuple[ProfileKey, int]]:
        """(key, its change number) of every profile changed after `change`, oldest first."""
        out: list[tuple[ProfileKey, int]] = []
        for key in reversed(self._changes):
            number = self._changes[key]
            if number <= change:
                break
            out.append((key, number))
        out.reverse()
        return out

    def models(self) -> list[str]:
        return sorted(self._series)

    def summary(self, model_name: str = "", model_version: int = 0) -> list[LatencySummary]:
        """Summaries for one model or all (empty name); version 0 aggregates all versions.

        Raises UnknownModel for a named model (or version of it) without telemetry.
        """
        if model_version < 0:
            raise BadQuery(f"model version must be >= 0 (0 = all versions), got {model_version}")
        if model_name:
            versions = self._series.get(model_name)
            if versions is None or (model_version and model_version not in versions):
                raise UnknownModel(model_name, model_version)
            names = [model_name]
        else:
            names = self.models()
        out: list[LatencySummary] = []
        for name in names:
            versions = self._series[name]
            if model_version:
                if model_version in versions:
                    out.append(_summarize(name, model_version, [versions[model_version]]))
            else:
                out.append(_summarize(name, 0, list(versions.values())))
        return out


def _summarize(name: str, version: int, series: list[_Series]) -> LatencySummary:
    if len(series) == 1:
        samples = series[0].samples()
    else:
        samples = np.concatenate([s.samples() for s in series])
    count = sum(s.count for s in series)
    batch_sum = sum(s.batch_sum for s in series)
    if samples.size:
        p50, p95, p99 = (float(v) for v in np.percentile(samples, PERCENTILES))
    else:
        p50 = p95 = p99 = 0.0
    return LatencySummary(
        model_name=name,
        model_version=version,
        count=count,
        window=int(samples.size),
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        mean_batch_size=batch_sum / count if count else 0.0,
        failures=sum(s.failures for s in series),
    )

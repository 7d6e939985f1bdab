"""Per-kind prediction metrics: what GetMetrics and GET /api/ml/metrics report, and Prometheus.

Per kind, since start or the last reset: `count` predictions (rows; cached ones included),
cache hits and misses, and the latency of each engine call (one Predict, one PredictBatch, one
`Engine.predict`): mean, min and max over every call; p50/p95/p99 over the last `window` calls,
computed when read. Recording costs a deque append and a few additions.

Prometheus (the service's registry; counters are never reset, as Prometheus expects):
`mlos_predictor_predictions_total{kind,cached}` (rows) and `mlos_predictor_predict_seconds{kind}`
(a histogram of engine calls).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram

from mlos_common.metrics import LATENCY_BUCKETS_S


@dataclass(frozen=True, slots=True)
class KindMetrics:
    kind: str
    count: int
    cache_hits: int
    cache_misses: int
    mean_ms: float
    min_ms: float
    max_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


class _Tally:
    __slots__ = ("count", "hits", "misses", "calls", "total_ms", "min_ms", "max_ms", "recent_ms")

    def __init__(self, window: int) -> None:
        self.count = self.hits = self.misses = self.calls = 0
        self.total_ms = 0.0
        self.min_ms = math.inf
        self.max_ms = 0.0
        self.recent_ms: deque[float] = deque(maxlen=window)


class PredictionMetrics:
    """Tallies per kind, plus Prometheus series when given a registry."""

    def __init__(self, kinds: Iterable[str], registry: CollectorRegistry | None = None, window: int = 1024) -> None:
        self._window = window
        self._tallies = {k: _Tally(window) for k in kinds}
        self._prom: dict[str, tuple] = {}
        if registry is not None:
            total = Counter(
                "mlos_predictor_predictions", "Predictions served (rows), by kind and whether the cache answered.",
                ["kind", "cached"], registry=registry,
            )  # fmt: skip
            seconds = Histogram(
                "mlos_predictor_predict_seconds", "Time of one engine call (a Predict or PredictBatch), by kind.",
                ["kind"], buckets=LATENCY_BUCKETS_S, registry=registry,
            )  # fmt: skip
            self._prom = {
                k: (total.labels(k, "true"), total.labels(k, "false"), seconds.labels(k)) for k in self._tallies
            }

    def record(self, kind: str, rows: int, hits: int, seconds: float) -> None:
        """One engine call of `kind`: `rows` predictions, `hits` of them from the cache."""
        t = self._tallies[kind]
        ms = seconds * 1000.0
        t.count += rows
        t.hits += hits
        t.misses += rows - hits
        t.calls += 1
        t.total_ms += ms
        t.min_ms = min(t.min_ms, ms)
        t.max_ms = max(t.max_ms, ms)
        t.recent_ms.append(ms)
        prom = self._prom.get(kind)
        if prom is not None:
            cached, computed, hist = prom
            if hits:
                cached.inc(hits)
            if rows > hits:
                computed.inc(rows - hits)
            hist.observe(seconds)

    def snapshot(self, kinds: Iterable[str]) -> list[KindMetrics]:
        """The figures of `kinds`; latencies are 0 for a kind with no call yet."""
        out = []
        for kind in kinds:
            t = self._tallies[kind]
            if t.calls:
                p50, p95, p99 = (float(x) for x in np.percentile(np.fromiter(t.recent_ms, float), [50, 95, 99]))
                mean, lo = t.total_ms / t.calls, t.min_ms
            else:
                p50 = p95 = p99 = mean = lo = 0.0
            out.append(KindMetrics(kind, t.count, t.hits, t.misses, mean, lo, t.max_ms, p50, p95, p99))
        return out

    def reset(self, kinds: Iterable[str]) -> None:
        for kind in kinds:
            self._tallies[kind] = _Tally(self._window)

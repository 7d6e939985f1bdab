"""Summaries of repeated measurements: percentiles, a mean with its confidence interval, and
whether two such intervals say a change is real (`regressed`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

CONFIDENCE = 0.95


@dataclass(frozen=True, slots=True)
class Interval:
    """The mean of repeated runs and the half-width of its CONFIDENCE interval (Student's t);
    `half_width` is nan with a single run (no spread to estimate)."""

    mean: float
    half_width: float
    runs: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def as_dict(self) -> dict:
        return asdict(self)


def interval(values: Sequence[float]) -> Interval:
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("no values to summarise")
    mean = float(data.mean())
    if data.size < 2:
        return Interval(mean, math.nan, 1)
    from scipy import stats

    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, data.size - 1) * data.std(ddof=1) / math.sqrt(data.size))
    return Interval(mean, half, int(data.size))


def percentile_ms(samples_ns: Sequence[int], q: float) -> float:
    return float(np.percentile(np.asarray(samples_ns, dtype=float), q)) / 1e6


def ratio_interval(off: Interval, on: Interval) -> Interval:
    """off / on (a speedup when both are latencies), its half-width by first-order error
    propagation of the two relative half-widths."""
    value = off.mean / on.mean
    rel = math.hypot(off.half_width / off.mean, on.half_width / on.mean)
    return Interval(value, value * rel, min(off.runs, on.runs))


def regressed(old: Interval, new: Interval, higher_is_worse: bool, min_change: float) -> bool:
    """True when `new` is worse than `old` by more than `min_change` (a fraction) AND beyond noise:
    the two confidence intervals do not overlap (with one run each, the change alone decides)."""
    if old.mean == 0:
        return False
    change = (new.mean - old.mean) / old.mean
    worse = change > min_change if higher_is_worse else change < -min_change
    if not worse:
        return False
    if math.isnan(old.half_width) or math.isnan(new.half_width):
        return True
    return new.low > old.high if higher_is_worse else new.high < old.low

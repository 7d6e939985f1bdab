"""Execution-time profiles per (model, version, batch size): the scheduler's local replica.

The deadline predictor reads `estimate()` on the hot path, so it is a dict lookup plus a little
arithmetic on a fit cached per model version; nothing here calls another service. Sources of a
point (one batch size), most trusted first:

- telemetry: the predictor's WatchLatencyProfiles stream (profile_feed.py writes it here); used
  only once its window holds at least `telemetry_min_count` executions;
- local: batches this scheduler saw executed (`observe`), an exponential moving average of the
  mean and variance of the compute time the executor reported;
- warmup: timed by the executor right after the load (`seed_warmup`);
- prior: `prior_s` (mean and std) when nothing at all is known of the model version.

Estimate for `rows`: each known batch size contributes its most trusted point; with one point
the mean is that point's for rows up to its batch size and grows in proportion above it (a
pessimistic extrapolation: batching is rarely worse than linear); with two or more, a
least-squares line of mean (and of std) against batch size, slope at least 0, and the mean never
below the floor: the smallest batch size's mean (scaled down in proportion for fewer rows).
The estimate's basis is the source of the point nearest to `rows` (the smaller on a tie).
All times in seconds. One event loop; not thread-safe.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

BASES = ("telemetry", "local", "warmup", "prior")  # most trusted first


@dataclass(frozen=True, slots=True)
class ExecEstimate:
    """Predicted compute time of one batch: mean and standard deviation in seconds."""

    mean_s: float
    std_s: float
    basis: str  # "telemetry" | "local" | "warmup" | "prior"


@dataclass(frozen=True, slots=True)
class Warmup:
    """Timed runs of a model on zero-filled inputs right after the executor loaded it."""

    batch_size: int
    mean_s: float
    max_s: float
    runs: int = 1


@dataclass(slots=True)
class _Point:
    """What one batch size's sources say: (mean_s, std_s) per source, plus counts."""

    telemetry: tuple[float, float] | None = None
    telemetry_count: int = 0
    local_mean_s: float = 0.0
    local_var_s2: float = 0.0
    local_count: int = 0
    warmup: tuple[float, float] | None = None
    prior: tuple[float, float] | None = None

    def best(self, min_count: int) -> tuple[float, float, str] | None:
        if self.telemetry is not None and self.telemetry_count >= min_count:
            return (*self.telemetry, "telemetry")
        if self.local_count:
            return self.local_mean_s, self.local_var_s2 ** 0.5, "local"
        if self.warmup is not None:
            return (*self.warmup, "warmup")
        if self.prior is not None:
            return (*self.prior, "prior")
        return None


@dataclass(frozen=True, slots=True)
class _Fit:
    sizes: tuple[int, ...]  # ascending
    bases: tuple[str, ...]  # per size
    mean_a: float
    mean_k: float
    std_a: float
    std_k: float
    floor_size: int
    floor_s: float


def _line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares (intercept, slope) with the slope clamped at 0 (then the mean of ys)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    if slope <= 0:
        return my, 0.0
    return my - slope * mx, slope


def _fit(points: dict[int, _Point], min_count: int) -> _Fit | None:
    best = sorted((size, b) for size, p in points.items() if (b := p.best(min_count)) is not None)
    if not best:
        return None
    sizes = [float(s) for s, _ in best]
    means = [b[0] for _, b in best]
    stds = [b[1] for _, b in best]
    mean_a, mean_k = _line(sizes, means)
    std_a, std_k = _line(sizes, stds)
    return _Fit(tuple(s for s, _ in best), tuple(b[2] for _, b in best), mean_a, mean_k, std_a, std_k,
                best[0][0], means[0])


@dataclass
class ProfileBook:
    prior_s: float = 0.005
    telemetry_min_count: int = 10  # telemetry points from fewer executions are not trusted
    ema_alpha: float = 0.1  # weight of a new local observation
    local_first_rel_std: float = 0.2  # std assumed after one local observation, relative to it
    _points: dict[tuple[str, int], dict[int, _Point]] = field(default_factory=dict)
    _fits: dict[tuple[str, int], _Fit | None] = field(default_factory=dict)

    def _point(self, name: str, version: int, batch_size: int, refit: bool = True) -> _Point:
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        if refit:
            self._fits.pop((name, version), None)
        points = self._points.setdefault((name, version), {})
        point = points.get(batch_size)
        if point is None:
            point = points[batch_size] = _Point()
        return point

    def set(
        self, name: str, version: int, batch_size: int, mean_s: float, std_s: float, basis: str,
        count: int | None = None,
    ) -> None:
        """Replaces one source's figures at one batch size. `count`: executions behind them
        (None = enough). Telemetry below telemetry_min_count is kept but not used, and never
        replaces trusted telemetry (e.g. the first profiles of a restarted predictor)."""
        if basis not in BASES:
            raise ValueError(f"basis must be one of {BASES}, got {basis!r}")
        point = self._point(name, version, batch_size)
        figures = (max(mean_s, 0.0), max(std_s, 0.0))
        if basis == "telemetry":
            count = self.telemetry_min_count if count is None else count
            if count >= self.telemetry_min_count or point.telemetry_count < self.telemetry_min_count:
                point.telemetry, point.telemetry_count = figures, count
        elif basis == "local":
            point.local_mean_s, point.local_var_s2 = figures[0], figures[1] ** 2
            point.local_count = max(1, count or 1)
        elif basis == "warmup":
            point.warmup = figures
        else:
            point.prior = figures

    def observe(self, name: str, version: int, batch_size: int, seconds: float) -> None:
        """One batch this scheduler saw executed (compute time as the executor reported it):
        updates the EMA of the mean and variance at that batch size (the cached fit is dropped
        only when the local figures are what that batch size contributes)."""
        point = self._point(name, version, batch_size, refit=False)
        if point.telemetry is None or point.telemetry_count < self.telemetry_min_count:
            self._fits.pop((name, version), None)
        if not point.local_count:
            point.local_mean_s = seconds
            point.local_var_s2 = (self.local_first_rel_std * seconds) ** 2
        else:
            diff = seconds - point.local_mean_s
            step = self.ema_alpha * diff
            point.local_mean_s += step
            point.local_var_s2 = (1 - self.ema_alpha) * (point.local_var_s2 + diff * step)
        point.local_count += 1

    def seed_warmup(self, name: str, version: int, timings: Iterable[Warmup]) -> None:
        """Warm-up timings from the executor's load; std taken as max(max - mean, 10 % of mean)."""
        for t in timings:
            std_s = max(t.max_s - t.mean_s, 0.1 * t.mean_s)
            self.set(name, version, t.batch_size, t.mean_s, std_s, "warmup")

    def estimate(self, name: str, version: int, rows: int) -> ExecEstimate:
        key = (name, version)
        try:
            fit = self._fits[key]
        except KeyError:
            points = self._points.get(key)
            fit = self._fits[key] = _fit(points, self.telemetry_min_count) if points else None
        if fit is None:
            return ExecEstimate(self.prior_s, self.prior_s, "prior")
        rows = max(rows, 1)
        basis = fit.bases[_nearest(fit.sizes, rows)]
        if len(fit.sizes) == 1:
            scale = rows / fit.sizes[0] if rows > fit.sizes[0] else 1.0
            return ExecEstimate(fit.mean_a * scale, fit.std_a * scale, basis)
        floor = fit.floor_s * min(1.0, rows / fit.floor_size)
        mean = max(fit.mean_a + fit.mean_k * rows, floor)
        std = max(fit.std_a + fit.std_k * rows, 0.0)
        return ExecEstimate(mean, std, basis)

    def points(self, name: str, version: int) -> dict[int, tuple[float, float, str]]:
        """Batch size -> (mean_s, std_s, basis) of the point each known size contributes."""
        out = {}
        for size, point in sorted(self._points.get((name, version), {}).items()):
            best = point.best(self.telemetry_min_count)
            if best is not None:
                out[size] = best
        return out

    def forget(self, name: str, version: int) -> None:
        """Drops everything known of a model version (e.g. after unload)."""
        self._points.pop((name, version), None)
        self._fits.pop((name, version), None)


def _nearest(sizes: tuple[int, ...], rows: int) -> int:
    best, gap = 0, abs(sizes[0] - rows)
    for i, size in enumerate(sizes[1:], 1):
        if abs(size - rows) < gap:
            best, gap = i, abs(size - rows)
    return best

"""Adaptive batching window (seed 004): how long a partial batch may wait for company.

The window follows the model's queue depth: depth 0-1 = low, 2-5 = medium, 6+ = high, with
seed 004's windows 0.75 / 1.0 / 2.0 ms for the `balanced` preset (`low-latency` halves them,
`throughput` doubles them; each may be set on its own). The depth is smoothed by an EMA
(alpha 0.2) and a new band is taken only after `HYSTERESIS` consecutive observations agree, so
the window does not flap around a threshold. Observations are made when requests arrive.

The window is an upper bound: the batcher never waits past the slack of the tightest deadline
in the batch, and never waits at all when the model is idle (the fast path).
"""

from __future__ import annotations

from dataclasses import dataclass

PRESETS_US: dict[str, tuple[float, float, float]] = {
    "low-latency": (375.0, 500.0, 1000.0),
    "balanced": (750.0, 1000.0, 2000.0),
    "throughput": (1500.0, 2000.0, 4000.0),
}
MEDIUM_DEPTH = 2.0  # smoothed depth at which the medium band starts
HIGH_DEPTH = 6.0
EMA_ALPHA = 0.2
HYSTERESIS = 3  # consecutive observations in a new band before the window changes


def windows_us(preset: str, low_us: float = 0.0, medium_us: float = 0.0, high_us: float = 0.0) -> tuple[float, float, float]:
    """The three windows of a preset, each replaced by an explicit non-zero setting."""
    if preset not in PRESETS_US:
        raise ValueError(f"unknown batching preset {preset!r}; use one of {', '.join(PRESETS_US)}")
    base = PRESETS_US[preset]
    return (low_us or base[0], medium_us or base[1], high_us or base[2])


@dataclass
class AdaptiveWindow:
    bands_us: tuple[float, float, float] = PRESETS_US["balanced"]
    fixed_us: float = 0.0     # a model's own max_queue_delay_us: no adaptation
    depth_ema: float = 0.0
    band: int = 0             # 0 low, 1 medium, 2 high
    changes: int = 0
    observations: int = 0
    _pending_band: int = 0
    _pending_count: int = 0

    @property
    def window_s(self) -> float:
        return (self.fixed_us or self.bands_us[self.band]) / 1e6

    def observe(self, depth: int) -> None:
        """One queue-depth sample (requests queued when a request arrives)."""
        self.observations += 1
        self.depth_ema += EMA_ALPHA * (depth - self.depth_ema)
        target = 2 if self.depth_ema >= HIGH_DEPTH else 1 if self.depth_ema >= MEDIUM_DEPTH else 0
        if target == self.band:
            self._pending_count = 0
            return
        if target != self._pending_band:
            self._pending_band, self._pending_count = target, 0
        self._pending_count += 1
        if self._pending_count >= HYSTERESIS:
            self.band = target
            self._pending_count = 0
            if not self.fixed_us:
                self.changes += 1

    @property
    def change_rate(self) -> float:
        """Window changes per observation (seed 004's oscillation figure)."""
        return self.changes / self.observations if self.observations else 0.0


__all__ = ["AdaptiveWindow", "PRESETS_US", "windows_us"]

"""Execution-time profiles per (model, version, batch size): the scheduler's local replica.

The deadline predictor reads `estimate()` on the hot path, so it is a dict lookup plus
arithmetic; nothing here calls another service. Sources, most trusted first:
telemetry (the predictor's WatchLatencyProfiles stream), local (batches this scheduler ran),
warmup (timed by the executor at load), prior (a configured default before anything is known).

PLACEHOLDER INTERFACE — the predictor-stream work replaces the body, keeping these signatures.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ExecEstimate:
    """Predicted compute time of one batch: mean and standard deviation in seconds."""

    mean_s: float
    std_s: float
    basis: str  # "telemetry" | "local" | "warmup" | "prior"


@dataclass
class ProfileBook:
    prior_s: float = 0.005
    _points: dict[tuple[str, int], dict[int, tuple[float, float, str]]] = field(default_factory=dict)

    def set(self, name: str, version: int, batch_size: int, mean_s: float, std_s: float, basis: str) -> None:
        self._points.setdefault((name, version), {})[batch_size] = (mean_s, std_s, basis)

    def observe(self, name: str, version: int, batch_size: int, seconds: float) -> None:
        """One batch this scheduler saw executed (compute time as the executor reported it)."""
        points = self._points.setdefault((name, version), {})
        old = points.get(batch_size)
        if old is None or old[2] in ("prior", "warmup"):
            points[batch_size] = (seconds, seconds * 0.2, "local")
        elif old[2] == "local":
            mean = 0.9 * old[0] + 0.1 * seconds
            var = 0.9 * old[1] ** 2 + 0.1 * (seconds - mean) ** 2
            points[batch_size] = (mean, var ** 0.5, "local")

    def estimate(self, name: str, version: int, rows: int) -> ExecEstimate:
        points = self._points.get((name, version))
        if not points:
            return ExecEstimate(self.prior_s, self.prior_s, "prior")
        size = min(points, key=lambda b: abs(b - rows))
        mean, std, basis = points[size]
        scale = max(rows, 1) / size if rows > size else 1.0
        return ExecEstimate(mean * scale, std * scale, basis)

    def forget(self, name: str, version: int) -> None:
        self._points.pop((name, version), None)

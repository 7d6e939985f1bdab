"""Why a failure or threat prediction is what it is: the feature that stands out most, in words.

Each feature of those kinds has a typical value and a scale (the table below, hand-set from the
features' meaning and the priors' thresholds, not learned). A row's feature stands out by
(value - typical) / scale; only deviations in the risky direction (above typical) count. The
largest one of at least STANDS_OUT scales is named, e.g. "error_rate 0.40 (typical 0.00)";
a row where none reaches it gets NOTHING_STANDS_OUT. Features with no scale (e.g. an executor's
throughput, which is neither good nor bad) are never named. Other kinds get "" (their value
is a quantity, not a verdict). Cost: one vectorised pass per batch plus a string per row.
"""

from __future__ import annotations

import math

import numpy as np

from mlos_predictor.kinds import SPECS

STANDS_OUT = 2.0
NOTHING_STANDS_OUT = "no feature stands out"

# kind -> feature -> (typical, scale); scale None = never the reason
TYPICAL: dict[str, dict[str, tuple[float, float | None]]] = {
    "failure": {
        "error_rate": (0.0, 0.05),
        "latency_drift": (1.0, 0.5),
        "rss_growth_mb_per_min": (0.0, 20.0),
        "rss_budget_fraction": (0.5, 0.2),
        "restarts_1h": (0.0, 0.5),
        "executions_per_s": (0.0, None),
    },
    "threat": {
        "rate_per_s": (10.0, 200.0),
        "burst_ratio": (1.0, 1.5),
        "log_bytes_mean": (math.log1p(64 << 10), 2.0),  # ~64 KiB payloads
        "log_bytes_max": (math.log1p(1 << 20), 2.0),  # ~1 MiB at most
        "malformed_fraction": (0.0, 0.05),
        "shape_error_fraction": (0.0, 0.05),
        "log_value_absmax": (math.log1p(1e3), 2.0),
        "nonfinite_fraction": (0.0, 0.01),
    },
}


class Explainer:
    """Reasons for one kind's rows (precomputed table arrays)."""

    def __init__(self, kind: str) -> None:
        spec = SPECS[kind]
        table = TYPICAL[kind]
        self._names = spec.names
        self._typical = np.array([table[n][0] for n in spec.names])
        scale = [table[n][1] for n in spec.names]
        self._inv_scale = np.array([0.0 if s is None else 1.0 / s for s in scale])

    def explain(self, rows: np.ndarray) -> list[str]:
        """One reason per row of `rows` (float64 (n, F), validated)."""
        z = (rows - self._typical) * self._inv_scale
        top = z.argmax(axis=1)
        out = []
        for i, j in enumerate(top.tolist()):
            if z[i, j] < STANDS_OUT:
                out.append(NOTHING_STANDS_OUT)
            else:
                out.append(f"{self._names[j]} {_fmt(rows[i, j])} (typical {_fmt(self._typical[j])})")
        return out


def _fmt(x: float) -> str:
    return f"{x:.2f}" if abs(x) < 1000 else f"{x:.0f}"


def explainers() -> dict[str, Explainer]:
    """An Explainer for every kind that gives reasons."""
    return {kind: Explainer(kind) for kind in TYPICAL}

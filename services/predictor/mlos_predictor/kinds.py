"""The five kinds of prediction: their features, output, naive baseline and documented prior.

This module is the one contract shared by the serving core (Predict, caches, HTTP), the
learning loop (books that turn telemetry into rows, trainers) and the callers that build
features themselves. A kind's feature vector is a float64 row in `KindSpec.features` order.

Every feature has a valid range; `validate_row` refuses NaN, infinities and values outside it
with a message naming the feature. Before any model is trained for a kind, its prior answers
(`KindSpec.prior`), a hand-written formula stated in `prior_text`; the naive baseline
(`KindSpec.baseline`) is what every trained model must beat on held-out rows to be served.

Kinds and where their output is used:
- latency  (entity: model:version:batch:executor) compute ms of the next execution → the
  scheduler's deadline-miss prediction (LatencyProfile.expected_ms).
- workload (entity: model) requests/s over the next window → executors prefetch, and the
  scale hint in `mlos status`.
- memory   (entity: model) resident MB of loading a model and running a batch → executors refuse
  a load that would not fit their budget.
- failure  (entity: executor) probability that it fails or degrades within the horizon → the
  scheduler routes away from risky executors.
- threat   (entity: client) anomaly score in [0, 1] → the scheduler rejects (PERMISSION_DENIED)
  or rate-limits (RESOURCE_EXHAUSTED) clients above its threshold.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

KINDS = ("latency", "workload", "memory", "failure", "threat")


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    lo: float
    hi: float
    doc: str


@dataclass(frozen=True, slots=True)
class KindSpec:
    kind: str
    features: tuple[Feature, ...]
    output: str
    unit: str
    ttl_ms: float  # result cache TTL (the seed daemon's defaults where it had the kind)
    task: str  # "regression" | "classification" | "anomaly"
    metric: str  # held-out metric: "mae" (lower is better) or "auc" (higher is better)
    baseline_text: str
    prior_text: str
    baseline: Callable[[np.ndarray], np.ndarray]  # rows (n, F) -> (n,)
    prior: Callable[[np.ndarray], np.ndarray]  # rows (n, F) -> (n,)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def width(self) -> int:
        return len(self.features)

    @property
    def registry_name(self) -> str:
        return f"mlos-predictor-{self.kind}"

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "auc"

    def index(self, name: str) -> int:
        return self.names.index(name)


def _col(rows: np.ndarray, spec_names: Sequence[str], name: str) -> np.ndarray:
    return rows[:, list(spec_names).index(name)]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


BIG = 1e12

LATENCY = (
    Feature("batch_size", 1, 65536, "items in the batch"),
    Feature("mean_ms", 0, 3.6e6, "mean compute ms of this model version at this batch size over the window"),
    Feature("recent_ms", 0, 3.6e6, "EWMA (alpha 0.2) of the last compute ms at this batch size on this executor"),
    Feature("executor_busy", 0, 1e6, "executions the executor finished in the last 100 ms (any model)"),
    Feature("idle_log_ms", 0, 30, "ln(1 + ms since this model last ran on this executor)"),
)
WORKLOAD = (
    Feature("rate_w0", 0, 1e7, "requests/s in the last window"),
    Feature("rate_w1", 0, 1e7, "requests/s one window earlier"),
    Feature("rate_w2", 0, 1e7, "requests/s two windows earlier"),
    Feature("rate_w3", 0, 1e7, "requests/s three windows earlier"),
    Feature("rate_mean_long", 0, 1e7, "mean requests/s over the last 30 windows"),
    Feature("hour_sin", -1, 1, "sin(2 pi hour/24) at the end of the next window (UTC)"),
    Feature("hour_cos", -1, 1, "cos(2 pi hour/24) at the end of the next window (UTC)"),
)
MEMORY = (
    Feature("file_mb", 0, 1e6, "model file size, MB"),
    Feature("params_m", 0, 1e6, "initializer elements, millions"),
    Feature("nodes", 0, 1e7, "graph nodes"),
    Feature("input_kb_per_item", 0, 1e7, "input bytes of one batch item, KB"),
    Feature("output_kb_per_item", 0, 1e7, "output bytes of one batch item, KB"),
    Feature("batch_size", 1, 65536, "batch size of the warm-up run"),
)
FAILURE = (
    Feature("error_rate", 0, 1, "failed / executed in the last interval"),
    Feature("latency_drift", 0, 1000, "recent / long-run compute time; 1 = steady"),
    Feature("rss_growth_mb_per_min", -1e6, 1e6, "resident memory growth over the last minute"),
    Feature("rss_budget_fraction", 0, 100, "resident memory / budget (0 without a budget)"),
    Feature("restarts_1h", 0, 1e6, "restarts seen in the last hour"),
    Feature("executions_per_s", 0, 1e7, "executions per second in the last interval"),
)
THREAT = (
    Feature("rate_per_s", 0, 1e7, "requests/s in the last window"),
    Feature("burst_ratio", 0, 1e7, "rate / the client's mean rate over the last minute; 1 = steady"),
    Feature("log_bytes_mean", 0, 50, "ln(1 + mean payload bytes)"),
    Feature("log_bytes_max", 0, 50, "ln(1 + largest payload bytes)"),
    Feature("malformed_fraction", 0, 1, "requests refused as malformed / requests"),
    Feature("shape_error_fraction", 0, 1, "requests with a wrong shape or datatype / requests"),
    Feature("log_value_absmax", 0, 1000, "ln(1 + largest |input value| sampled)"),
    Feature("nonfinite_fraction", 0, 1, "NaN or infinite input values / values sampled"),
)


def _latency_prior(rows: np.ndarray) -> np.ndarray:
    n = [f.name for f in LATENCY]
    mean, recent = _col(rows, n, "mean_ms"), _col(rows, n, "recent_ms")
    return np.where(recent > 0, 0.5 * mean + 0.5 * recent, mean)


def _workload_prior(rows: np.ndarray) -> np.ndarray:
    n = [f.name for f in WORKLOAD]
    return 0.5 * _col(rows, n, "rate_w0") + 0.3 * _col(rows, n, "rate_w1") + 0.2 * _col(rows, n, "rate_mean_long")


def _memory_baseline(rows: np.ndarray) -> np.ndarray:
    return rows[:, 0].copy()  # footprint = file size


def _memory_prior(rows: np.ndarray) -> np.ndarray:
    n = [f.name for f in MEMORY]
    io_mb = (_col(rows, n, "input_kb_per_item") + _col(rows, n, "output_kb_per_item")) / 1024.0
    return 8.0 + 1.5 * _col(rows, n, "file_mb") + 4.0 * io_mb * _col(rows, n, "batch_size")


def _failure_prior(rows: np.ndarray) -> np.ndarray:
    n = [f.name for f in FAILURE]
    x = (
        -4.0
        + 6.0 * _col(rows, n, "error_rate")
        + 2.0 * np.maximum(0.0, _col(rows, n, "latency_drift") - 1.5)
        + 0.05 * np.maximum(0.0, _col(rows, n, "rss_growth_mb_per_min"))
        + 8.0 * np.maximum(0.0, _col(rows, n, "rss_budget_fraction") - 0.85)
        + 0.7 * _col(rows, n, "restarts_1h")
    )
    return _sigmoid(x)


def _threat_baseline(rows: np.ndarray) -> np.ndarray:
    n = [f.name for f in THREAT]
    return _col(rows, n, "malformed_fraction").copy()


def _threat_prior(rows: np.ndarray) -> np.ndarray:
    n = [f.name for f in THREAT]
    parts = np.stack(
        [
            _col(rows, n, "malformed_fraction"),
            _col(rows, n, "shape_error_fraction"),
            _col(rows, n, "nonfinite_fraction"),
            np.clip((_col(rows, n, "burst_ratio") - 3.0) / 7.0, 0.0, 1.0),
            np.clip((_col(rows, n, "log_bytes_max") - math.log1p(64 << 20)) / 3.0, 0.0, 1.0),
            np.clip((_col(rows, n, "log_value_absmax") - math.log1p(1e6)) / 10.0, 0.0, 1.0),
        ]
    )
    return parts.max(axis=0)


SPECS: dict[str, KindSpec] = {
    "latency": KindSpec(
        "latency", LATENCY, "compute_ms", "ms", 50.0, "regression", "mae",
        "the window's mean compute ms at this batch size (mean_ms)",
        "0.5 x mean_ms + 0.5 x recent_ms (mean_ms alone before any recent execution)",
        lambda r: r[:, 1].copy(), _latency_prior,
    ),
    "workload": KindSpec(
        "workload", WORKLOAD, "rate", "requests/s", 100.0, "regression", "mae",
        "persistence: the next window's rate is the last one's (rate_w0)",
        "0.5 x rate_w0 + 0.3 x rate_w1 + 0.2 x rate_mean_long",
        lambda r: r[:, 0].copy(), _workload_prior,
    ),
    "memory": KindSpec(
        "memory", MEMORY, "footprint_mb", "MB", 50.0, "regression", "mae",
        "the model file's size (file_mb)",
        "8 MB + 1.5 x file_mb + 4 x (input + output MB per item) x batch_size",
        _memory_baseline, _memory_prior,
    ),
    "failure": KindSpec(
        "failure", FAILURE, "probability", "probability", 1000.0, "classification", "auc",
        "the current error rate (error_rate) as the probability",
        "sigmoid(-4 + 6 error_rate + 2 max(0, drift - 1.5) + 0.05 max(0, growth MB/min)"
        " + 8 max(0, budget fraction - 0.85) + 0.7 restarts_1h)",
        lambda r: r[:, 0].copy(), _failure_prior,
    ),
    "threat": KindSpec(
        "threat", THREAT, "score", "score", 500.0, "anomaly", "auc",
        "the fraction of malformed requests (malformed_fraction)",
        "max(malformed, shape-error and non-finite fractions, (burst_ratio - 3)/7,"
        " payload beyond 64 MiB, values beyond 1e6), each clipped to [0, 1]",
        _threat_baseline, _threat_prior,
    ),
}


def validate_row(spec: KindSpec, values: Sequence[float]) -> str | None:
    """Why `values` is not a valid feature row of `spec`, naming the feature; None when valid."""
    if len(values) != spec.width:
        return f"{spec.kind} takes {spec.width} features ({', '.join(spec.names)}), got {len(values)}"
    for f, v in zip(spec.features, values, strict=True):
        if not math.isfinite(v):
            return f"feature {f.name!r} of {spec.kind} is {v}; it must be a finite number"
        if v < f.lo or v > f.hi:
            return f"feature {f.name!r} of {spec.kind} is {v:g}, outside [{f.lo:g}, {f.hi:g}] ({f.doc})"
    return None


def row_from_named(spec: KindSpec, named: dict[str, float]) -> list[float] | str:
    """The row in spec order from a name → value mapping, or why not (missing/unknown names)."""
    missing = [n for n in spec.names if n not in named]
    if missing:
        return f"{spec.kind} is missing feature(s) {', '.join(missing)}"
    unknown = sorted(set(named) - set(spec.names))
    if unknown:
        return f"{spec.kind} has no feature(s) {', '.join(unknown)}; its features: {', '.join(spec.names)}"
    return [float(named[n]) for n in spec.names]

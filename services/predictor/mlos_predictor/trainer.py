"""Training one kind: fit on older rows, judge on the newest, export to ONNX, decide.

`train(spec, rows, served)` (blocking, meant for a worker thread):
1. needs `min_rows` labelled rows; splits them chronologically, the last 20 % held out;
2. fits the kind's estimator on the older rows (features cast to float32, as ONNX Runtime sees
   them): GradientBoostingRegressor (workload, memory, latency), GradientBoostingClassifier
   (failure), IsolationForest (threat, unsupervised: fitted on features alone);
3. exports it (onnx_export.py), loads it in models.OnnxModel and checks it against
   scikit-learn on the held-out rows: |onnx - sklearn| <= 1e-4 x max(1, |sklearn|);
4. scores the candidate (the ONNX model, as it would be served), the kind's naive baseline and
   the served model (prior or previous training) on the same held-out rows: MAE for regression,
   ROC AUC for failure and threat (threat against its proxy label, see books.py);
5. replaces the served model only if the candidate beats both, strictly.

Why gradient boosting: measured here, skl2onnx converts it exactly (max relative error ~2e-6)
and ONNX Runtime runs it fastest of what converts: 16 us per row, 0.4 ms per 100 rows, against
20 us and 0.8 ms for HistGradientBoosting (which fits faster but makes larger graphs).
"""

from __future__ import annotations

import importlib.util
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlos_predictor.kinds import KindSpec
from mlos_predictor.models import ModelCard, OnnxModel, ServedModel
from mlos_predictor.rowstore import Rows

HELD_OUT_FRACTION = 0.2
MATCH_TOLERANCE = 1e-4


def unavailable() -> str | None:
    """Why training is off (scikit-learn or skl2onnx missing), or None when it can run."""
    missing = [name for name in ("sklearn", "skl2onnx") if not _importable(name)]
    if missing:
        return f"training is off: {' and '.join(missing)} not installed (pip install -e '.[learn]')"
    return None


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a broken or blocked package counts as missing
        return False


@dataclass(frozen=True, slots=True)
class TrainResult:
    kind: str
    replaced: bool
    reason: str
    candidate_score: float = math.nan
    baseline_score: float = math.nan
    served_score: float = math.nan
    model: OnnxModel | None = None  # the candidate, when one was fitted and exported
    card: ModelCard | None = None
    estimator: Any = None  # the fitted scikit-learn estimator (evaluation reads it)
    held_out: Rows | None = None


def make_estimator(spec: KindSpec, seed: int) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor, IsolationForest

    if spec.task == "anomaly":
        return IsolationForest(n_estimators=100, random_state=seed)
    boosting = dict(n_estimators=150, max_depth=3, learning_rate=0.1, subsample=0.8, random_state=seed)
    if spec.task == "classification":
        return GradientBoostingClassifier(**boosting)  # type: ignore[arg-type]
    return GradientBoostingRegressor(loss="huber", **boosting)  # type: ignore[arg-type]


def calibrate(forest: Any, x_fit: np.ndarray, y_fit: np.ndarray) -> str | None:
    """Maps a fitted IsolationForest's raw anomaly score (-score_samples, ~0.4 normal, ~0.6 odd)
    to the probability that the row is labelled 1 (threat's proxy: the client misbehaves), so
    the scheduler's threshold means the same for the prior and a trained model: Platt scaling,
    a logistic fit of the label on the standardised raw score over the training rows, kept on
    the forest as `mlos_calibration_ = (a, b)` (p = sigmoid(a * raw + b)) for the export.
    Returns why it cannot (no row of one of the labels), else None."""
    from sklearn.linear_model import LogisticRegression

    if np.unique(y_fit).size < 2:
        return (
            f"the {len(y_fit)} training rows are all labelled {y_fit[0]:g}: without misbehaving and well-behaved "
            "clients both, the anomaly score cannot be calibrated to a probability"
        )
    raw = -forest.score_samples(x_fit)
    mean, std = float(raw.mean()), float(raw.std()) or 1.0
    fit = LogisticRegression().fit(((raw - mean) / std)[:, None], y_fit)
    a = float(fit.coef_[0, 0]) / std
    forest.mlos_calibration_ = (a, float(fit.intercept_[0]) - a * mean)
    return None


def score(spec: KindSpec, y: np.ndarray, predicted: np.ndarray) -> float:
    """The kind's held-out metric: MAE (lower is better) or ROC AUC (higher; NaN with one class)."""
    if spec.metric == "mae":
        return float(np.mean(np.abs(y - predicted)))
    from sklearn.metrics import roc_auc_score

    if np.unique(y).size < 2:
        return math.nan
    return float(roc_auc_score(y, predicted))


def beats(spec: KindSpec, candidate: float, other: float) -> bool:
    """Whether `candidate` is strictly better than `other` (never with a NaN candidate)."""
    if math.isnan(candidate):
        return False
    if math.isnan(other):
        return True
    return candidate > other if spec.higher_is_better else candidate < other


def train(
    spec: KindSpec, rows: Rows, served: ServedModel, *, min_rows: int = 200, seed: int = 0, now_ms: int | None = None
) -> TrainResult:
    """Fits, exports, checks and judges a candidate for `spec` (module docstring)."""
    from mlos_predictor.onnx_export import export, reference

    if len(rows) < max(min_rows, 10):
        return TrainResult(spec.kind, False, f"{len(rows)} labelled rows; training needs {min_rows}")
    fit_rows, held = rows.split(HELD_OUT_FRACTION)
    x_fit = fit_rows.x.astype(np.float32).astype(np.float64)
    if spec.task == "classification" and np.unique(fit_rows.y).size < 2:
        return TrainResult(spec.kind, False, f"the {len(fit_rows)} training rows all have label {fit_rows.y[0]:g}")
    if spec.metric == "auc" and np.unique(held.y).size < 2:
        return TrainResult(spec.kind, False, f"the {len(held)} held-out rows all have label {held.y[0]:g}: no AUC")
    estimator = make_estimator(spec, seed)
    if spec.task == "anomaly":
        estimator.fit(x_fit)
        why_not = calibrate(estimator, x_fit, fit_rows.y)
        if why_not is not None:
            return TrainResult(spec.kind, False, why_not)
    else:
        estimator.fit(x_fit, fit_rows.y)
    model = OnnxModel(spec, export(spec, estimator))
    predicted = model.predict(held.x)
    expected = reference(spec, estimator, held.x)
    mismatch = float(np.max(np.abs(predicted - expected) / np.maximum(1.0, np.abs(expected))))
    if not mismatch <= MATCH_TOLERANCE:
        return TrainResult(spec.kind, False, f"the ONNX export differs from scikit-learn by {mismatch:.2g} (relative)")
    candidate = score(spec, held.y, predicted)
    baseline = score(spec, held.y, spec.baseline(held.x))
    current = score(spec, held.y, served.predict(held.x))
    name = type(estimator).__name__
    card = ModelCard(
        kind=spec.kind, source="trained", version=0, estimator=name, score=candidate, baseline_score=baseline,
        training_rows=len(fit_rows), held_out_rows=len(held),
        trained_unix_ms=now_ms if now_ms is not None else time.time_ns() // 1_000_000,
    )
    replaced = beats(spec, candidate, baseline) and beats(spec, candidate, current)
    figures = f"{spec.metric} {candidate:.4g} vs baseline {baseline:.4g} and served {current:.4g}"
    if replaced:
        reason = f"replaced: {figures} on {len(held)} held-out rows"
    elif not beats(spec, candidate, baseline):
        reason = f"kept the served model: the candidate does not beat the baseline ({figures})"
    else:
        reason = f"kept the served model: the candidate does not beat it ({figures})"
    return TrainResult(spec.kind, replaced, reason, candidate, baseline, current, model, card, estimator, held)

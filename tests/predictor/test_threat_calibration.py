"""The threat model's anomaly score is calibrated to a probability before it is served, so the
scheduler's threshold means the same for the prior and a trained forest."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from mlos_predictor.kinds import SPECS  # noqa: E402
from mlos_predictor.models import OnnxModel  # noqa: E402
from mlos_predictor.onnx_export import export, reference  # noqa: E402
from mlos_predictor.trainer import calibrate, make_estimator  # noqa: E402

SPEC = SPECS["threat"]


def _clients(n: int, odd: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows of well-behaved clients, then `odd` clients sending malformed NaN floods in bursts."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, SPEC.width))
    x[:, SPEC.index("rate_per_s")] = rng.uniform(1, 20, n)
    x[:, SPEC.index("burst_ratio")] = rng.uniform(0.8, 1.2, n)
    x[:, SPEC.index("log_bytes_mean")] = rng.uniform(4, 6, n)
    x[:, SPEC.index("log_bytes_max")] = x[:, SPEC.index("log_bytes_mean")] + 0.1
    x[:, SPEC.index("log_value_absmax")] = rng.uniform(0, 2, n)
    x[-odd:, SPEC.index("malformed_fraction")] = 0.9
    x[-odd:, SPEC.index("nonfinite_fraction")] = 0.5
    x[-odd:, SPEC.index("burst_ratio")] = 12.0
    y = np.zeros(n)
    y[-odd:] = 1.0
    return x, y


def test_the_served_graph_gives_a_probability_that_separates_misbehaving_clients() -> None:
    x, y = _clients(600, 30)
    forest = make_estimator(SPEC, seed=0).fit(x)
    assert calibrate(forest, x, y) is None
    model = OnnxModel(SPEC, export(SPEC, forest))
    p = model.predict(x)
    assert np.allclose(p, reference(SPEC, forest, x), atol=1e-4)
    assert ((0.0 <= p) & (p <= 1.0)).all()
    assert p[y == 1].min() > 0.8 > p[y == 0].max()  # the scheduler's default threshold splits them


def test_a_window_without_any_misbehaving_client_is_not_calibrated() -> None:
    x, _ = _clients(300, 10)
    forest = make_estimator(SPEC, seed=0).fit(x)
    why = calibrate(forest, x, np.zeros(len(x)))
    assert why is not None and "cannot be calibrated" in why and "300 training rows" in why
    assert not hasattr(forest, "mlos_calibration_")

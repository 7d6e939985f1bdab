"""The serving core in process: cache in front of one vectorised model call, reasons, metrics,
and a model swap that invalidates the kind's cache. Real priors and real ONNX Runtime models."""

from __future__ import annotations

import numpy as np
import pytest
from predictor_testkit import CountingModel, linear_onnx, sample_rows

from mlos_common.errors import InvalidArgument
from mlos_predictor.engine import build_engine
from mlos_predictor.kinds import KINDS, SPECS
from mlos_predictor.models import ModelCard, OnnxModel, PriorModel
from mlos_predictor.reasons import NOTHING_STANDS_OUT


@pytest.mark.parametrize("kind", KINDS)
def test_first_answer_is_the_prior_then_the_cache(engine, kind: str) -> None:
    spec = SPECS[kind]
    rows = sample_rows(spec, 5, seed=KINDS.index(kind))
    first = engine.predict(kind, rows)
    assert [r.value for r in first] == pytest.approx(spec.prior(rows).tolist())
    assert not any(r.cached for r in first) and {r.model_version for r in first} == {0}
    again = engine.predict(kind, rows)
    assert [r.value for r in again] == [r.value for r in first] and all(r.cached for r in again)
    (m,) = engine.metrics.snapshot([kind])
    assert (m.count, m.cache_hits, m.cache_misses) == (10, 5, 5)


def test_one_model_call_for_the_misses_of_a_batch(engine) -> None:
    spec = SPECS["workload"]
    counting = CountingModel(PriorModel(spec))
    engine.slots["workload"].swap(counting, ModelCard("workload"))
    rows = sample_rows(spec, 10)
    engine.predict("workload", rows[:4])
    results = engine.predict("workload", rows)  # 4 cached, 6 computed in one call
    assert counting.calls == [4, 6]
    assert [r.cached for r in results] == [True] * 4 + [False] * 6
    assert [r.value for r in results] == pytest.approx(spec.prior(rows).tolist())
    engine.predict("workload", rows, no_cache=True)
    assert counting.calls == [4, 6, 10]


def test_swap_invalidates_only_that_kinds_cache(engine) -> None:
    spec = SPECS["failure"]
    rows = sample_rows(spec, 3)
    threat_row = sample_rows(SPECS["threat"], 1)
    engine.predict("failure", rows)
    engine.predict("threat", threat_row)
    onnx_model = OnnxModel(spec, linear_onnx(spec, [2.0, 0, 0, 0, 0, 0], bias=-1.0, sigmoid=True))
    engine.slots["failure"].swap(onnx_model, ModelCard("failure", source="trained", version=7))
    after = engine.predict("failure", rows)
    expected = 1.0 / (1.0 + np.exp(-(2.0 * rows[:, 0] - 1.0)))
    assert [r.value for r in after] == pytest.approx(expected.tolist(), rel=1e-6)
    assert [(r.cached, r.model_version) for r in after] == [(False, 7)] * 3
    assert engine.predict("threat", threat_row)[0].cached  # another kind keeps its cache
    engine.slots["failure"].with_version(8)  # registered later: answers carry the new version
    assert [(r.cached, r.model_version) for r in engine.predict("failure", rows)] == [(False, 8)] * 3


def test_swap_shows_in_cache_stats_before_any_prediction(engine) -> None:
    spec = SPECS["memory"]
    engine.predict("memory", sample_rows(spec, 4))
    assert engine.cache_stats(["memory"])[0].size == 4
    engine.slots["memory"].swap(PriorModel(spec), ModelCard("memory", source="trained", version=2))
    assert engine.cache_stats(["memory"])[0].size == 0


@pytest.mark.parametrize(
    ("kind", "row", "reason"),
    [
        ("failure", [0.40, 1.0, 0.0, 0.3, 0.0, 50.0], "error_rate 0.40 (typical 0.00)"),
        ("failure", [0.0, 4.0, 0.0, 0.3, 0.0, 50.0], "latency_drift 4.00 (typical 1.00)"),
        ("failure", [0.01, 1.1, 5.0, 0.5, 0.0, 5000.0], NOTHING_STANDS_OUT),  # throughput is never the reason
        ("threat", [5.0, 1.0, 8.0, 9.0, 0.0, 0.0, 3.0, 0.5], "nonfinite_fraction 0.50 (typical 0.00)"),
        ("threat", [5.0, 12.0, 8.0, 9.0, 0.02, 0.0, 3.0, 0.0], "burst_ratio 12.00 (typical 1.00)"),
    ],
)
def test_reason_names_the_feature_that_stands_out(engine, kind: str, row: list[float], reason: str) -> None:
    (r,) = engine.predict(kind, np.array([row]))
    assert r.reason == reason
    assert engine.predict(kind, np.array([row]))[0].reason == reason  # cached with its reason


def test_quantities_carry_no_reason(engine) -> None:
    assert {r.reason for r in engine.predict("memory", sample_rows(SPECS["memory"], 3))} == {""}


@pytest.mark.parametrize(
    ("kind", "rows", "message"),
    [
        ("failure", np.zeros((0, 6)), "at least one feature row"),
        ("failure", np.zeros((1001, 6)), "1001 rows is over the batch limit of 1000"),
        ("failure", np.zeros((2, 5)), "failure rows must be (n, 6)"),
        ("failure", np.zeros(6), "failure rows must be (n, 6)"),
        ("nope", np.zeros((1, 6)), "unknown prediction kind 'nope'; known kinds: latency, workload"),
    ],
)
def test_bad_calls_are_refused_with_the_reason(engine, kind: str, rows: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        engine.predict(kind, rows)
    assert message in err.value.message


def test_metrics_reset_and_prometheus_series(engine, prom) -> None:
    rows = sample_rows(SPECS["threat"], 3)
    engine.predict("threat", rows)
    engine.predict("threat", rows[:2])
    (m,) = engine.metrics.snapshot(["threat"])
    assert (m.count, m.cache_hits, m.cache_misses) == (5, 2, 3)
    assert 0 < m.min_ms <= m.p50_ms <= m.p95_ms <= m.p99_ms <= m.max_ms and m.min_ms <= m.mean_ms <= m.max_ms
    assert prom.get_sample_value("mlos_predictor_predictions_total", {"kind": "threat", "cached": "true"}) == 2
    assert prom.get_sample_value("mlos_predictor_predictions_total", {"kind": "threat", "cached": "false"}) == 3
    assert prom.get_sample_value("mlos_predictor_predict_seconds_count", {"kind": "threat"}) == 2
    engine.metrics.reset(["threat"])
    (m,) = engine.metrics.snapshot(["threat"])
    assert (m.count, m.cache_hits, m.p99_ms, m.max_ms) == (0, 0, 0.0, 0.0)
    assert prom.get_sample_value("mlos_predictor_predictions_total", {"kind": "threat", "cached": "true"}) == 2


def test_ttl_override_and_capacity() -> None:
    engine = build_engine(cache_capacity=2, ttl_ms={"workload": 0.0})
    spec = SPECS["workload"]
    rows = sample_rows(spec, 3)
    engine.predict("workload", rows)
    assert not any(r.cached for r in engine.predict("workload", rows))  # TTL 0: never cached
    engine.predict("memory", sample_rows(SPECS["memory"], 3))
    (s,) = engine.cache_stats(["memory"])
    assert (s.size, s.evicted, s.ttl_ms) == (2, 1, SPECS["memory"].ttl_ms)

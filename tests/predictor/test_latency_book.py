"""Pure-domain tests of LatencyBook (no gRPC)."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from mlos_common.errors import InvalidArgument, NotFound
from mlos_predictor.latency import ExecutionRecord, LatencyBook


def rec(model: str = "m", version: int = 1, ns: int = 1_000_000, batch: int = 1, ok: bool = True) -> ExecutionRecord:
    return ExecutionRecord(model_name=model, model_version=version, batch_size=batch, compute_ns=ns, ok=ok)


def test_percentiles_match_numpy() -> None:
    rng = np.random.default_rng(7)
    ns = rng.integers(100_000, 50_000_000, size=500)
    book = LatencyBook(window=1000)
    for i, v in enumerate(ns):
        assert book.record(rec(ns=int(v), batch=1 + i % 4))
    (s,) = book.summary("m", 1)
    ms = ns / 1e6
    assert (s.count, s.window, s.failures) == (500, 500, 0)
    assert s.p50_ms == pytest.approx(np.percentile(ms, 50))
    assert s.p95_ms == pytest.approx(np.percentile(ms, 95))
    assert s.p99_ms == pytest.approx(np.percentile(ms, 99))
    assert s.mean_batch_size == pytest.approx(np.mean([1 + i % 4 for i in range(500)]))


def test_ring_keeps_last_window_only() -> None:
    book = LatencyBook(window=10)
    for i in range(1, 26):
        book.record(rec(ns=i * 1_000_000))
    (s,) = book.summary("m")
    assert s.count == 25 and s.window == 10
    assert s.p50_ms == pytest.approx(np.percentile(np.arange(16, 26), 50))


def test_failures_counted_not_in_percentiles() -> None:
    book = LatencyBook()
    for _ in range(10):
        book.record(rec(ns=2_000_000))
    assert book.record(rec(ns=900_000_000, ok=False))
    assert book.record(rec(ns=0, ok=False))  # a failure may carry no compute time
    (s,) = book.summary("m")
    assert (s.count, s.window, s.failures) == (12, 10, 2)
    assert s.p99_ms == pytest.approx(2.0)


def test_only_failures_gives_zero_percentiles() -> None:
    book = LatencyBook()
    book.record(rec(ok=False))
    (s,) = book.summary("m")
    assert (s.count, s.window, s.failures, s.p50_ms) == (1, 0, 1, 0.0)


@pytest.mark.parametrize(
    "bad",
    [
        rec(model=""),
        rec(version=-1),
        rec(batch=0),
        rec(ns=0),
        rec(ns=-5),
        rec(ns=3600 * 10**9),
    ],
)
def test_invalid_records_rejected(bad: ExecutionRecord) -> None:
    registry = CollectorRegistry()
    book = LatencyBook(registry=registry)
    assert not book.record(bad)
    assert book.rejected == 1 and book.accepted == 0
    assert registry.get_sample_value("mlos_predictor_telemetry_records_total", {"result": "rejected"}) == 1
    assert book.summary() == []


def test_version_zero_aggregates_versions() -> None:
    book = LatencyBook()
    for _ in range(30):
        book.record(rec(version=1, ns=1_000_000, batch=2))
    for _ in range(10):
        book.record(rec(version=2, ns=9_000_000, batch=4))
    (v1,) = book.summary("m", 1)
    (v2,) = book.summary("m", 2)
    (agg,) = book.summary("m", 0)
    assert (v1.count, v1.p50_ms, v1.mean_batch_size) == (30, 1.0, 2.0)
    assert (v2.count, v2.p50_ms, v2.mean_batch_size) == (10, 9.0, 4.0)
    both = np.array([1.0] * 30 + [9.0] * 10)
    assert (agg.model_version, agg.count, agg.window) == (0, 40, 40)
    assert agg.p95_ms == pytest.approx(np.percentile(both, 95))
    assert agg.mean_batch_size == pytest.approx(2.5)


def test_empty_name_lists_every_model() -> None:
    book = LatencyBook()
    assert book.summary() == []
    book.record(rec(model="b", version=1))
    book.record(rec(model="a", version=1))
    book.record(rec(model="a", version=2))
    assert [(s.model_name, s.model_version, s.count) for s in book.summary()] == [("a", 0, 2), ("b", 0, 1)]
    assert [s.model_name for s in book.summary("", 2)] == ["a"]


def test_unknown_model_and_version_not_found() -> None:
    book = LatencyBook()
    book.record(rec(model="known", version=1))
    with pytest.raises(NotFound, match="'ghost'"):
        book.summary("ghost")
    with pytest.raises(NotFound, match="version 7"):
        book.summary("known", 7)
    with pytest.raises(InvalidArgument):
        book.summary("known", -1)


def test_max_series_bound() -> None:
    book = LatencyBook(max_models=2)
    assert book.record(rec(model="a"))
    assert book.record(rec(model="b"))
    assert not book.record(rec(model="c"))
    assert book.record(rec(model="a"))  # known series still accepted


def test_metrics_on_given_registry() -> None:
    registry = CollectorRegistry()
    book = LatencyBook(registry=registry)
    book.record(rec(model="m", ns=3_000_000))
    book.record(rec(model="m", ok=False))
    assert registry.get_sample_value("mlos_predictor_telemetry_records_total", {"result": "accepted"}) == 2
    assert registry.get_sample_value("mlos_predictor_compute_ms_count", {"model": "m"}) == 1
    assert registry.get_sample_value("mlos_predictor_compute_ms_sum", {"model": "m"}) == pytest.approx(3.0)

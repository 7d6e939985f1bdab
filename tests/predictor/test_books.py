"""Books that turn telemetry into labelled rows: features in kinds.SPECS order, labels, bounds."""

from __future__ import annotations

import math

import pytest

from mlos_predictor.books import MemoryBook, ThreatBook, WorkloadBook, hour_features
from mlos_predictor.failure_book import FailureBook
from mlos_predictor.intake import Intake, IntakeLimits, Telemetry
from mlos_predictor.kinds import SPECS
from mlos_predictor.latency import ExecutionRecord, LatencyBook
from mlos_predictor.samples import ClientSample, HealthSample, MemorySample, RateSample

T0 = 1_700_000_000_000  # a fixed past time (ms): 2023-11-14 22:13:20 UTC
W_MS = 60_000


def rate(i: int, requests: int, model: str = "m", window_s: float = 60.0) -> RateSample:
    return RateSample(model, T0 + i * W_MS, window_s, requests)


def health(i: int, ex: str = "e0", *, interval_ms: int = 5000, **kw) -> HealthSample:
    fields = dict(executions=100, errors=0, latency_drift=1.0, rss_bytes=100 << 20, memory_budget_bytes=1 << 30,
                  uptime_s=1000.0 + i * interval_ms / 1000)
    fields.update(kw)
    return HealthSample(ex, T0 + i * interval_ms, interval_ms / 1000, **fields)  # type: ignore[arg-type]


def test_workload_rows_lags_mean_hour_and_next_window_label() -> None:
    book = WorkloadBook(capacity=100)
    for i, n in enumerate([60, 120, 180, 240, 300]):
        assert book.add(rate(i, n)) is None
    rows = book.store.snapshot()
    assert len(rows) == 4  # the fifth window's row waits for the sixth
    assert rows.y.tolist() == [2.0, 3.0, 4.0, 5.0]
    first = rows.x[0]
    assert first[:5].tolist() == [1.0, 1.0, 1.0, 1.0, 1.0]  # one window known: the oldest repeats
    last = rows.x[3]
    assert last[:4].tolist() == [4.0, 3.0, 2.0, 1.0]
    assert last[4] == pytest.approx(2.5)
    assert tuple(last[5:]) == pytest.approx(hour_features(T0 + 3 * W_MS + W_MS))  # end of the next window
    (latest,) = book.store.latest()
    assert latest.features[0] == 5.0 and latest.unix_ms == T0 + 4 * W_MS


def test_workload_missing_windows_count_as_idle() -> None:
    book = WorkloadBook(capacity=100)
    book.add(rate(0, 600))
    book.add(rate(3, 60))  # windows 1 and 2 had no sample
    rows = book.store.snapshot()
    assert rows.y.tolist() == [0.0]  # the window after the row had no requests
    assert book.store.latest()[0].features[:4] == (1.0, 0.0, 0.0, 10.0)


def test_workload_refuses_out_of_order_and_bounds_models() -> None:
    book = WorkloadBook(capacity=100, max_entities=1)
    assert book.add(rate(1, 60)) is None
    assert "not after" in (book.add(rate(1, 60)) or "")
    assert "following 1 entities" in (book.add(rate(2, 60, model="other")) or "")


def test_memory_row_in_spec_units() -> None:
    book = MemoryBook(capacity=10)
    s = MemorySample("m", 1, "e0", T0, 3 << 20, 2_000_000, 40, 4096, 1024, 8, 48 << 20)
    assert book.add(s) is None
    rows = book.store.snapshot()
    assert rows.x[0].tolist() == [3.0, 2.0, 40.0, 4.0, 1.0, 8.0]
    assert rows.y.tolist() == [48.0]


def test_store_window_is_bounded() -> None:
    book = MemoryBook(capacity=10)
    for i in range(25):
        book.add(MemorySample("m", 1, "e0", T0 + i, 1 << 20, 1, 1, 1, 1, 1, i << 20))
    rows = book.store.snapshot()
    assert len(rows) == 10 and rows.y.tolist() == [float(i) for i in range(15, 25)]
    assert book.store.added == 25


def test_failure_label_waits_for_the_horizon_then_sees_a_restart() -> None:
    book = FailureBook(capacity=100, horizon_ms=30_000)
    for i in range(6):  # 0..25 s
        book.add(health(i))
    assert len(book.store) == 0  # nothing known yet: the horizon of the first row ends at 30 s
    book.add(health(6, uptime_s=2.0))  # at 30 s: uptime fell = restart
    rows = book.store.snapshot()
    assert rows.y.tolist() == [1.0]  # the row at 0 s: the restart at 30 s is within (0, 30]
    for i in range(7, 14):
        book.add(health(i, uptime_s=2.0 + (i - 6) * 5))
    rows = book.store.snapshot()  # known up to 65 - 30 = 35 s
    assert [(t - T0) // 1000 for t in rows.unix_ms] == [0, 5, 10, 15, 20, 25, 30, 35]
    assert rows.y.tolist() == [1.0] * 6 + [0.0, 0.0]  # a restart is the future of earlier rows, not its own


def test_failure_labels_error_bursts_and_silence() -> None:
    book = FailureBook(capacity=100, horizon_ms=30_000)
    for i in range(3):
        book.add(health(i))  # 0, 5, 10 s
    book.add(health(3, errors=60))  # 15 s: error_rate 0.6 = degraded
    for i in range(4, 20):
        book.add(health(i))
    rows = book.store.snapshot()
    times = [(t - T0) // 1000 for t in rows.unix_ms]
    labels = dict(zip(times, rows.y.tolist()))
    assert labels[0] == labels[10] == 1.0  # the burst at 15 s is ahead of them
    assert labels[15] == 0.0  # the burst is the row's own window, not its future
    assert labels[20] == 0.0
    # e1 goes silent after 0 s; e0's telemetry moves time on and labels e1's row
    silent = FailureBook(capacity=100, horizon_ms=30_000)
    silent.add(health(0, ex="e1"))
    for i in range(0, 12):
        silent.add(health(i, ex="e0"))
    rows = silent.store.snapshot()
    e1 = [y for e, y in zip(rows.entities, rows.y) if e == "e1"]
    assert e1 == [1.0]  # silent for more than 3 intervals (15 s) within its horizon


def test_failure_features() -> None:
    book = FailureBook(capacity=100, horizon_ms=30_000)
    for i in range(13):  # rss grows 2 MiB per 5 s = 24 MB/min
        book.add(health(i, rss_bytes=(100 + 2 * i) << 20, errors=5, executions=50))
    (row,) = book.store.latest()
    f = dict(zip(SPECS["failure"].names, row.features))
    assert f["error_rate"] == pytest.approx(0.1)
    assert f["rss_growth_mb_per_min"] == pytest.approx(24.0)
    assert f["rss_budget_fraction"] == pytest.approx(124 / 1024)
    assert f["executions_per_s"] == pytest.approx(10.0)
    assert f["restarts_1h"] == 0.0
    book.add(health(13, uptime_s=1.0))
    f = dict(zip(SPECS["failure"].names, book.store.latest()[0].features))
    assert f["restarts_1h"] == 1.0 and f["rss_growth_mb_per_min"] == 0.0


def test_threat_features_and_proxy_label() -> None:
    book = ThreatBook(capacity=100, horizon_ms=30_000)
    for i in range(3):
        book.add(ClientSample("c", T0 + i * 10_000, 10.0, 100, bytes_mean=1000, bytes_max=4000, value_absmax=3.0,
                              values_sampled=1000))
    book.add(ClientSample("c", T0 + 30_000, 10.0, 500, malformed=200, shape_errors=50, bytes_mean=10, bytes_max=99,
                          value_absmax=math.nan, values_sampled=1000, nonfinite=10))
    (row,) = book.store.latest()
    f = dict(zip(SPECS["threat"].names, row.features))
    assert f["rate_per_s"] == 50.0 and f["burst_ratio"] == pytest.approx(5.0)
    assert f["log_bytes_mean"] == pytest.approx(math.log1p(10)) and f["log_bytes_max"] == pytest.approx(math.log1p(99))
    assert (f["malformed_fraction"], f["shape_error_fraction"], f["nonfinite_fraction"]) == (0.4, 0.1, 0.01)
    assert f["log_value_absmax"] > 700  # NaN seen: the largest value
    rows = book.store.snapshot()
    assert rows.y.tolist() == [1.0]  # the row at 0 s: misbehaviour at 30 s is within its horizon


def test_latency_rows_use_the_state_before_each_execution() -> None:
    latency = LatencyBook()
    intake = Intake(latency, IntakeLimits(window_rows=100))

    def rec(t_ms: int, ms: float, ex: str = "e0") -> ExecutionRecord:
        return ExecutionRecord("m", 1, 4, int(ms * 1e6), True, ex, T0 + t_ms)

    intake.ingest(Telemetry(records=[rec(0, 10.0), rec(50, 20.0), rec(80, 30.0, "e1"), rec(5000, 40.0)]))
    rows = intake.latency_rows.store.snapshot()
    assert rows.y.tolist() == [20.0, 30.0, 40.0]  # the first execution at a key has no mean yet
    names = SPECS["latency"].names
    first = dict(zip(names, rows.x[0]))
    assert first == pytest.approx({"batch_size": 4, "mean_ms": 10.0, "recent_ms": 10.0, "executor_busy": 1,
                                   "idle_log_ms": math.log1p(50)})
    other = dict(zip(names, rows.x[1]))  # e1 never ran m: no recent, idle an hour
    assert other["recent_ms"] == 0.0 and other["mean_ms"] == pytest.approx(15.0)
    assert other["idle_log_ms"] == pytest.approx(math.log1p(3_600_000)) and other["executor_busy"] == 0
    last = dict(zip(names, rows.x[2]))
    assert last["recent_ms"] == pytest.approx(0.2 * 20 + 0.8 * 10) and last["executor_busy"] == 0
    assert last["mean_ms"] == pytest.approx(20.0)

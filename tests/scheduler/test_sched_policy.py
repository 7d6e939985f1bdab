"""Queue policies, the adaptive window, miss prediction and the admission book as domain code."""

from __future__ import annotations

import asyncio
import math

import pytest
from test_sched_batcher import Recorder, model, req

from mlos_common.errors import DeadlineExceeded, Internal
from mlos_scheduler.admission import AdmissionBook
from mlos_scheduler.batch_policy import BatchPolicy
from mlos_scheduler.batcher import DynamicBatcher
from mlos_scheduler.domain import InferResult
from mlos_scheduler.predict import QueueView, miss_probability, predict
from mlos_scheduler.profiles import ExecEstimate
from mlos_scheduler.queues import DeadlineQueue, Entry, FifoQueue
from mlos_scheduler.window import AdaptiveWindow, windows_us


def drain(q) -> list[str]:
    out = []
    while (e := q.pop()) is not None:
        out.append(e.payload)
    return out


def test_deadline_queue_orders_by_priority_then_earliest_deadline() -> None:
    q = DeadlineQueue(levels=3, aging_s=1000.0)
    q.push(Entry("low", 1, 3, 0.0, 1.0))
    q.push(Entry("mid-late", 1, 2, 0.1, 9.0))
    q.push(Entry("mid-soon", 1, 2, 0.2, 5.0))
    q.push(Entry("high-none", 1, 1, 0.3, None))
    assert drain(q) == ["high-none", "mid-soon", "mid-late", "low"]


def test_aging_bounds_how_long_a_low_priority_request_waits() -> None:
    q = DeadlineQueue(levels=3, aging_s=0.1, horizon_s=1.0)
    q.push(Entry("old-low", 1, 3, 0.0, None))          # urgency 0 + 1 + 0.2 = 1.2
    q.push(Entry("new-high", 1, 1, 0.25, None))        # urgency 0.25 + 1 = 1.25
    q.push(Entry("newer-high", 1, 1, 0.1, None))       # urgency 1.1
    assert drain(q) == ["newer-high", "old-low", "new-high"]
    # Without aging worth mentioning, priorities are strict.
    strict = DeadlineQueue(levels=3, aging_s=1e6)
    strict.push(Entry("old-low", 1, 3, 0.0, None))
    strict.push(Entry("new-high", 1, 1, 100.0, None))
    assert drain(strict) == ["new-high", "old-low"]


@pytest.mark.parametrize("make", [FifoQueue, lambda: DeadlineQueue(3, 0.1)])
def test_discarded_entries_are_never_counted_nor_popped(make) -> None:
    q = make()
    entries = [Entry(str(i), 2, 1 + i % 3, float(i), None) for i in range(6)]
    for e in entries:
        q.push(e)
    assert (len(q), q.rows) == (6, 12)
    assert q.discard(entries[0]) and q.discard(entries[3])
    assert not q.discard(entries[3])  # already gone
    assert (len(q), q.rows) == (4, 8)
    popped = drain(q)
    assert sorted(popped) == ["1", "2", "4", "5"] and len(q) == 0 and q.rows == 0


def test_deadline_queue_counts_the_work_ahead_of_a_newcomer() -> None:
    q = DeadlineQueue(levels=3, aging_s=1e6)
    q.push(Entry("h", 4, 1, 0.0, 10.0))
    q.push(Entry("m-soon", 2, 2, 0.0, 1.0))
    q.push(Entry("m-late", 3, 2, 0.0, 8.0))
    q.push(Entry("l", 5, 3, 0.0, 1.0))
    assert q.ahead(2, 5.0, 0.0) == (2, 6)       # h + m-soon
    assert q.ahead(2, 9.0, 0.0) == (3, 9)       # and m-late
    assert q.ahead(1, 0.5, 0.0) == (0, 0)


def test_window_follows_depth_with_hysteresis() -> None:
    w = AdaptiveWindow(windows_us("balanced"))
    assert w.window_s == pytest.approx(0.00075)
    for _ in range(40):
        w.observe(10)
    assert w.window_s == pytest.approx(0.002) and w.band == 2
    changes = w.changes
    for depth in [5, 7] * 20:  # hovering around the high threshold: no flapping
        w.observe(depth)
    assert w.changes - changes <= 1
    for _ in range(60):
        w.observe(0)
    assert w.band == 0 and w.window_s == pytest.approx(0.00075)
    assert w.change_rate < 0.1


def test_presets_and_fixed_windows() -> None:
    assert windows_us("low-latency") == (375.0, 500.0, 1000.0)
    assert windows_us("throughput", high_us=9000.0) == (1500.0, 2000.0, 9000.0)
    with pytest.raises(ValueError):
        windows_us("fastest")
    fixed = AdaptiveWindow(fixed_us=300.0)
    for _ in range(50):
        fixed.observe(20)
    assert fixed.window_s == pytest.approx(0.0003) and fixed.changes == 0


def flat(ms: float, std_ms: float = 0.0):
    return lambda rows: ExecEstimate(ms / 1e3, std_ms / 1e3, "local")


def test_prediction_adds_queue_execution_and_link() -> None:
    view = QueueView(entries_ahead=4, rows_ahead=20, in_flight=((0.004, 0.0),), slots=1, batch_target=8,
                     network_s=0.001, network_std_s=0.0)
    p = predict(flat(10.0), view, rows=2, allowed_s=0.050)
    # 4 ms in flight + 2 full batches of 8 (20 ms), then our batch (4 + 2 rows): 10 ms, link 1 ms
    assert p.queue_s == pytest.approx(0.024) and p.execution_s == pytest.approx(0.010)
    assert p.completion_s == pytest.approx(0.035)
    assert p.miss_probability < 0.01 and p.slack_s == pytest.approx(0.015)
    late = predict(flat(10.0), view, rows=2, allowed_s=0.020)
    assert late.miss_probability > 0.99 and late.should_preempt  # 4 + 10 + 1 ms if it went next
    hopeless = predict(flat(10.0), view, rows=2, allowed_s=0.005)
    assert not hopeless.should_preempt
    assert "predicted 35.0 ms vs 5.0 ms allowed" in hopeless.explain()


def test_miss_probability_is_a_normal_tail() -> None:
    assert miss_probability(0.010, 0.001, None) == 0.0
    assert miss_probability(0.010, 0.001, 0.0) == 1.0
    assert miss_probability(0.010, 0.001, 0.010) == pytest.approx(0.5)
    assert miss_probability(0.010, 0.001, 0.012) == pytest.approx(0.5 * math.erfc(2 / math.sqrt(2)))


def test_admission_book_scores_predictions() -> None:
    book = AdmissionBook()
    for p, missed in [(0.1, False), (0.9, True), (0.8, False), (0.05, False)]:
        book.outcome("m", 1, 2, missed, p)
    book.outcome("m", 1, 2, False, None)  # no prediction: counted, not scored
    rec = book.snapshot("m")[0]
    assert (rec.met, rec.missed, rec.brier_count) == (4, 1, 4)
    assert rec.brier == pytest.approx((0.01 + 0.01 + 0.64 + 0.0025) / 4)
    assert rec.bins[8].count == 1 and rec.bins[9].missed == 1


async def test_a_request_past_its_latest_start_fails_before_reaching_the_front() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    b = DynamicBatcher(model(max_batch_size=1), rec, max_queue_size=8, estimate=flat(20.0, 1.0),
                       policy=BatchPolicy())
    loop = asyncio.get_running_loop()
    blocker = asyncio.ensure_future(b.submit(req("blocker")))
    await rec.started.wait()
    started = loop.time()
    with pytest.raises(DeadlineExceeded, match="can no longer meet its deadline"):
        # 45 ms allowed, 20 ms to run behind ~20 ms in flight: admitted; it must start within
        # 25 ms, but the blocker is held, so it fails then, not when the blocker ends.
        await b.submit(req("x", deadline=started + 0.045))
    assert 0.020 < loop.time() - started < 0.040
    rec.gate.set()
    await blocker
    assert rec.batches == [["blocker"]]
    assert b.admission.snapshot()[0].expired_queued == 1


async def test_fifo_policy_never_refuses_on_prediction() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    b = DynamicBatcher(model(max_batch_size=1), rec, max_queue_size=8, estimate=flat(50.0),
                       policy=BatchPolicy(order="fifo"))
    blocker = asyncio.ensure_future(b.submit(req("blocker")))
    await rec.started.wait()
    loop = asyncio.get_running_loop()
    doomed = asyncio.ensure_future(b.submit(req("x", deadline=loop.time() + 0.010)))
    with pytest.raises(DeadlineExceeded, match="waited past its deadline"):
        await doomed  # admitted, then failed by its deadline timer while queued
    rec.gate.set()
    await blocker
    assert b.admission.snapshot()[0].rejected_predicted == 0


def test_miss_thresholds_per_priority_level() -> None:
    from pydantic import ValidationError

    from mlos_scheduler.config import SchedulerSettings

    policy = BatchPolicy(miss_thresholds=SchedulerSettings(miss_threshold="0.01, 0.2,0.6").miss_thresholds())
    assert [policy.threshold(p) for p in (1, 2, 3, 9)] == [0.01, 0.2, 0.6, 0.6]
    assert BatchPolicy(miss_thresholds=(0.5,)).threshold(1) == 0.5
    for bad in ("", "0", "1.5", "half", "0.1,-0.2"):
        with pytest.raises(ValidationError, match="miss_threshold"):
            SchedulerSettings(miss_threshold=bad)


async def test_the_queue_limit_counts_only_live_requests() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    b = DynamicBatcher(model(max_batch_size=1), rec, max_queue_size=2, policy=BatchPolicy(predicting=False))
    blocker = asyncio.ensure_future(b.submit(req("blocker")))
    await rec.started.wait()
    loop = asyncio.get_running_loop()
    doomed = [asyncio.ensure_future(b.submit(req(f"d{i}", deadline=loop.time() + 0.005))) for i in range(2)]
    results = await asyncio.gather(*doomed, return_exceptions=True)
    assert all(isinstance(r, DeadlineExceeded) for r in results)
    cancelled = asyncio.ensure_future(b.submit(req("c")))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    assert b.stats().pending == 0
    later = [asyncio.ensure_future(b.submit(req(f"ok{i}"))) for i in range(2)]  # room for two again
    await asyncio.sleep(0)
    rec.gate.set()
    await asyncio.gather(blocker, *later)
    assert rec.batches[1:] == [["ok0"], ["ok1"]]


async def test_a_wrong_result_count_fails_every_waiter_instead_of_hanging() -> None:
    gate = asyncio.Event()

    async def short(m, requests, timeout):
        await gate.wait()
        return [InferResult(m.name, m.version, requests[0].id, [])]  # one answer, whatever the batch

    b = DynamicBatcher(model(), short, max_queue_size=8)
    first = asyncio.ensure_future(b.submit(req("first")))  # runs alone (fast path), held
    await asyncio.sleep(0)
    pair = [asyncio.ensure_future(b.submit(req(x))) for x in ("a", "b")]  # queue up and merge
    await asyncio.sleep(0)
    gate.set()
    await first
    results = await asyncio.wait_for(asyncio.gather(*pair, return_exceptions=True), 5)
    assert all(isinstance(r, Internal) for r in results), results  # no waiter left hanging
    assert "1 results for 2 requests" in results[0].message


async def test_the_window_applies_with_one_slot_while_requests_queue() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    b = DynamicBatcher(model(delay_us=200_000), rec, max_queue_size=16)  # the model's own 200 ms window
    first = asyncio.ensure_future(b.submit(req("first")))
    await rec.started.wait()
    queued = [asyncio.ensure_future(b.submit(req(x))) for x in ("b", "c")]
    await asyncio.sleep(0)
    rec.gate.set()
    await first
    late = asyncio.ensure_future(b.submit(req("d")))  # arrives while b and c wait for company
    await asyncio.gather(*queued, late)
    assert rec.batches == [["first"], ["b", "c", "d"]]
    assert b.stats().fast_path == 1


def test_the_error_tail_becomes_the_miss_probability() -> None:
    from mlos_scheduler.predict import ErrorBook

    book = ErrorBook(size=200)
    for i in range(49):
        book.add(i / 1000, 0.010)
    assert book.exceeding(0.010, 0.010) is None  # too few: the normal approximation decides
    for i in range(49, 100):
        book.add(i / 1000, 0.010)
    assert book.exceeding(0.0495, 0.010) == pytest.approx(0.5)
    assert book.exceeding(1.0, 0.010) == 0.0 and book.exceeding(-1.0, 0.010) == 1.0
    assert book.exceeding(0.099, 0.020) == pytest.approx(0.5)  # errors scale with the modelled time
    view = QueueView(entries_ahead=0, rows_ahead=0, in_flight=(), slots=1, batch_target=8,
                     network_s=0.0, network_std_s=0.0, errors=book)
    # modelled 10 ms, 60 ms allowed: the slack is 50 ms and half the recent errors exceed 49.5 ms
    p = predict(flat(10.0), view, rows=1, allowed_s=0.060)
    assert p.miss_probability == pytest.approx(0.5, abs=0.02)


async def test_without_the_fast_path_a_lone_request_waits_the_window() -> None:
    rec = Recorder()
    b = DynamicBatcher(model(delay_us=50_000), rec, max_queue_size=4, policy=BatchPolicy(fast_path=False))
    loop = asyncio.get_running_loop()
    start = loop.time()
    lone = asyncio.ensure_future(b.submit(req("a")))
    await asyncio.sleep(0)
    assert rec.batches == [] and b.stats().pending == 1  # an idle model, yet it waits for company
    await lone
    assert loop.time() - start >= 0.049 and rec.batches == [["a"]]
    assert b.stats().fast_path == 0
    on = DynamicBatcher(model(delay_us=50_000), rec, max_queue_size=4)  # the default: at once
    await asyncio.wait_for(on.submit(req("b")), 0.04)
    assert on.stats().fast_path == 1


def test_the_fast_path_setting_reaches_the_batch_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlos_scheduler.config import SchedulerSettings
    from mlos_scheduler.server import batch_policy

    assert batch_policy(SchedulerSettings()).fast_path is True
    monkeypatch.setenv("MLOS_SCHEDULER_FAST_PATH", "false")
    assert batch_policy(SchedulerSettings()).fast_path is False
    monkeypatch.setenv("MLOS_SCHEDULER_FAST_PATH", "maybe")
    with pytest.raises(ValueError, match="fast_path"):
        SchedulerSettings()

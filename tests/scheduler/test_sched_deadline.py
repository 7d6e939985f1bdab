"""The deadline-aware scheduler through real gRPC: priority order, aging, predicted-miss refusal,
prompt expiry, no late start, cancellation, PredictDeadline and GetAdmissionStats.

A slow real ONNX model (tests/slow_models.py; ~80 ms for a 32-row request on one thread: long enough to
queue five requests behind it on a loaded machine) keeps the executor busy, so queued requests
really wait and their order is observable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio
from grpc import aio
from sched_testkit import Stack, infer_request, running_stack
from slow_models import build_slow_model

from mlos.inference import grpc_service_pb2 as pb
from mlos.scheduler.v1 import scheduler_pb2 as spb
from mlos_cli.demo import DemoModel
from mlos_registry.domain import ServingConfig

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROWS = 32
WIDTH = 1024


@pytest.fixture(scope="module")
def slow_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_slow_model(tmp_path_factory.mktemp("slow") / "slow.onnx", WIDTH, 96)


async def _slow_stack(root: Path, demo: dict[str, DemoModel], slow_path: Path, **overrides) -> AsyncIterator[Stack]:
    async with running_stack(root, demo, load=("iris",), heavy_batch_ms=1e6, **overrides) as stack:
        await stack.registry.register("slow", slow_path, ServingConfig(
            max_batch_size=ROWS, priority_levels=3, default_priority=3, default_timeout_us=5_000_000))
        await stack.stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="slow"), timeout=60)
        for _ in range(3):  # the profile learns what a full batch costs
            await stack.stub.ModelInfer(slow_request(), timeout=30)
        yield stack


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(tmp_path_factory, demo, slow_path) -> AsyncIterator[Stack]:
    # Aging of 1000 s: priorities are strict here, so a tight low-priority deadline cannot jump ahead
    # of higher-priority requests whose (gRPC) deadlines are 30 s away.
    async for s in _slow_stack(tmp_path_factory.mktemp("deadline"), demo, slow_path, aging_ms=1e6):
        yield s


def slow_request(rid: str = "", priority: int = 0, timeout_us: int = 0, best_effort: bool | None = None) -> pb.ModelInferRequest:
    req = infer_request("slow", {"x": np.full((ROWS, WIDTH), 0.01, np.float32)}, id=rid)
    if priority:
        req.parameters["priority"].int64_param = priority
    if timeout_us:
        req.parameters["timeout"].int64_param = timeout_us
    if best_effort is not None:
        req.parameters["best_effort"].bool_param = best_effort
    return req


async def queue_stats(stack: Stack, model: str = "slow") -> spb.QueueStats:
    reply = await stack.admin.GetQueueStats(spb.GetQueueStatsRequest(model_name=model), timeout=5)
    return reply.queues[0]


async def until(stack: Stack, predicate, what: str) -> spb.QueueStats:
    """Polls the queue stats (no sleeping to a guess): the condition or a clear failure in 10 s."""
    give_up = time.monotonic() + 10
    while time.monotonic() < give_up:
        qs = await queue_stats(stack)
        if predicate(qs):
            return qs
        await asyncio.sleep(0.002)
    raise AssertionError(f"queue never reached: {what}; last {qs}")


def executions(stack: Stack) -> int:
    return sum(m.executions for m in stack.executor_core.models.values() if m.name == "slow")


async def blocked(stack: Stack) -> asyncio.Task:
    """Starts a request that occupies the model's only batch slot; returns once it runs."""
    task = asyncio.ensure_future(stack.stub.ModelInfer(slow_request("blocker", priority=1), timeout=30))
    await until(stack, lambda q: q.in_flight_batches == 1, "the blocker running")
    return task


async def test_queued_requests_leave_by_priority_then_deadline(stack: Stack) -> None:
    blocker = await blocked(stack)
    done: list[str] = []

    async def send(rid: str, priority: int, timeout_us: int = 0) -> None:
        await stack.stub.ModelInfer(slow_request(rid, priority, timeout_us), timeout=30)
        done.append(rid)

    order = [("low-a", 3, 0), ("low-b", 3, 0), ("mid", 2, 0), ("high-late", 1, 20_000_000), ("high-soon", 1, 10_000_000)]
    tasks = []
    for i, (rid, priority, timeout_us) in enumerate(order):
        tasks.append(asyncio.ensure_future(send(rid, priority, timeout_us)))
        await until(stack, lambda q, n=i + 1: q.pending == n, f"{i + 1} queued")
    await asyncio.gather(blocker, *tasks)
    assert done == ["high-soon", "high-late", "mid", "low-a", "low-b"]


async def test_a_predicted_miss_is_refused_at_once_with_the_numbers(stack: Stack) -> None:
    before = executions(stack)
    blocker = await blocked(stack)
    queued = [asyncio.ensure_future(stack.stub.ModelInfer(slow_request(f"q{i}", 2), timeout=30)) for i in range(3)]
    await until(stack, lambda q: q.pending == 3, "3 queued")
    started = time.monotonic()
    with pytest.raises(aio.AioRpcError) as err:
        await stack.stub.ModelInfer(slow_request("tight", priority=3, timeout_us=30_000), timeout=30)
    took = time.monotonic() - started
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "predicted to miss its deadline" in err.value.details() and "ms allowed" in err.value.details()
    assert took < 0.025, f"refusal took {took * 1e3:.1f} ms: it waited instead of refusing"
    await asyncio.gather(blocker, *queued)
    assert executions(stack) == before + 4  # the refused request never ran
    stats = await stack.admin.GetAdmissionStats(spb.GetAdmissionStatsRequest(model_name="slow"), timeout=5)
    low = next(s for s in stats.stats if s.priority == 3)
    assert low.rejected_predicted >= 1


async def test_best_effort_is_admitted_and_fails_at_its_deadline_without_running(stack: Stack) -> None:
    before = executions(stack)
    blocker = await blocked(stack)
    queued = [asyncio.ensure_future(stack.stub.ModelInfer(slow_request(f"q{i}", 2), timeout=30)) for i in range(3)]
    await until(stack, lambda q: q.pending == 3, "3 queued")
    started = time.monotonic()
    with pytest.raises(aio.AioRpcError) as err:
        await stack.stub.ModelInfer(slow_request("hopeful", 3, 30_000, best_effort=True), timeout=30)
    took = time.monotonic() - started
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "in the queue" in err.value.details()
    assert 0.025 < took < 0.1, f"expired after {took * 1e3:.1f} ms, not at its 30 ms deadline"
    assert (await queue_stats(stack)).pending >= 1  # the queue ahead of it was still there
    await asyncio.gather(blocker, *queued)
    assert executions(stack) == before + 4  # the blocker and the 3 queued; never the expired one


async def test_a_cancelled_request_leaves_the_queue_at_once(stack: Stack) -> None:
    before = executions(stack)
    blocker = await blocked(stack)
    call = stack.stub.ModelInfer(slow_request("gone", 2), timeout=30)
    waiter = asyncio.ensure_future(call)
    await until(stack, lambda q: q.pending == 1, "1 queued")
    call.cancel()
    qs = await until(stack, lambda q: q.pending == 0, "the cancelled request gone")
    assert qs.in_flight_batches == 1, "the queue emptied only because the blocker finished"
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await blocker
    assert executions(stack) == before + 1  # the blocker; the cancelled one never ran
    stats = await stack.admin.GetAdmissionStats(spb.GetAdmissionStatsRequest(model_name="slow"), timeout=5)
    assert sum(s.cancelled for s in stats.stats) >= 1


async def test_predict_deadline_answers_without_queuing(stack: Stack) -> None:
    blocker = await blocked(stack)
    idle = await stack.admin.PredictDeadline(
        spb.PredictDeadlineRequest(model_name="slow", priority=1, timeout_us=5_000, batch_rows=ROWS), timeout=5
    )
    assert idle.miss_probability > 0.5 and not idle.would_admit  # 5 ms cannot hold a ~40 ms batch
    assert idle.execution_ms > 5 and idle.basis == "local"
    roomy = await stack.admin.PredictDeadline(
        spb.PredictDeadlineRequest(model_name="slow", priority=1, timeout_us=10_000_000, batch_rows=ROWS), timeout=5
    )
    assert roomy.miss_probability < 0.01 and roomy.would_admit and roomy.slack_ms > 9000
    assert (await queue_stats(stack)).pending == 0
    await blocker


@pytest.mark.parametrize(
    "request_, code, needle",
    [
        (spb.PredictDeadlineRequest(model_name="slow", priority=4), grpc.StatusCode.INVALID_ARGUMENT, "priority"),
        (spb.PredictDeadlineRequest(model_name="slow", batch_rows=ROWS + 1), grpc.StatusCode.INVALID_ARGUMENT, "batch_rows"),
        (spb.PredictDeadlineRequest(model_name="nope"), grpc.StatusCode.NOT_FOUND, "nope"),
    ],
)
async def test_predict_deadline_bad_input(stack: Stack, request_, code, needle) -> None:
    with pytest.raises(aio.AioRpcError) as err:
        await stack.admin.PredictDeadline(request_, timeout=5)
    assert err.value.code() == code and needle in err.value.details()


async def test_a_priority_beyond_the_models_levels_is_refused(stack: Stack) -> None:
    with pytest.raises(aio.AioRpcError) as err:
        await stack.stub.ModelInfer(slow_request("x", priority=4), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'priority'" in err.value.details() and "3 priority levels" in err.value.details()
    await stack.stub.ModelInfer(slow_request("after", priority=3), timeout=30)  # still serving


async def test_sequential_requests_take_the_fast_path(stack: Stack) -> None:
    feeds = {"X": np.array([[5.1, 3.5, 1.4, 0.2]], np.float32)}
    before = await queue_stats(stack, "iris")
    for i in range(20):
        await stack.stub.ModelInfer(infer_request("iris", feeds, id=str(i)), timeout=5)
    after = await queue_stats(stack, "iris")
    assert after.batches - before.batches == 20
    assert after.fast_path - before.fast_path == 20
    assert after.window_changes == before.window_changes and after.policy == "deadline"


async def test_without_the_fast_path_sequential_requests_wait_the_window(tmp_path: Path, demo) -> None:
    """MLOS_SCHEDULER_FAST_PATH=false (bench-modes' "off" side) through the front door: each lone
    request still becomes a batch, none by the fast path."""
    feeds = {"X": np.array([[5.1, 3.5, 1.4, 0.2]], np.float32)}
    async with running_stack(tmp_path, demo, load=("iris",), fast_path=False) as stack:
        before = await queue_stats(stack, "iris")
        for i in range(5):
            await stack.stub.ModelInfer(infer_request("iris", feeds, id=str(i)), timeout=5)
        after = await queue_stats(stack, "iris")
    assert after.batches - before.batches == 5 and after.fast_path == before.fast_path == 0


async def test_aging_lets_an_old_low_priority_request_through(tmp_path: Path, demo, slow_path) -> None:
    async for stack in _slow_stack(tmp_path, demo, slow_path, aging_ms=5.0):
        blocker = await blocked(stack)
        done: list[str] = []

        async def send(rid: str, priority: int, stack: Stack = stack, done: list[str] = done) -> None:
            await stack.stub.ModelInfer(slow_request(rid, priority), timeout=30)
            done.append(rid)

        filler = asyncio.ensure_future(send("filler", 1))  # keeps the executor busy for a second batch
        await until(stack, lambda q: q.pending == 1, "the filler queued")
        old = asyncio.ensure_future(send("old-low", 3))
        await until(stack, lambda q: q.pending == 2, "the low one queued")
        await asyncio.sleep(0.02)  # it ages: 20 ms > 2 levels x 5 ms
        news = []
        for i in range(2):
            news.append(asyncio.ensure_future(send(f"new-high-{i}", 1)))
            await until(stack, lambda q, n=i + 3: q.pending + q.in_flight_batches >= n, f"{i + 3} waiting")
        await asyncio.gather(blocker, filler, old, *news)
        assert done.index("old-low") < done.index("new-high-0"), done  # aged past the newer high ones


async def test_the_models_default_priority_and_timeout_apply(stack: Stack) -> None:
    reply = await stack.admin.PredictDeadline(spb.PredictDeadlineRequest(model_name="slow"), timeout=5)
    assert 4_900 < reply.allowed_ms < 5_001  # default_timeout_us 5 s when the request sets none
    own = await stack.admin.PredictDeadline(spb.PredictDeadlineRequest(model_name="slow", timeout_us=9_000_000), timeout=5)
    assert 8_900 < own.allowed_ms < 9_001  # a request's own timeout wins over the default
    await stack.stub.ModelInfer(slow_request("defaults"), timeout=30)
    stats = await stack.admin.GetAdmissionStats(spb.GetAdmissionStatsRequest(model_name="slow"), timeout=5)
    assert any(s.priority == 3 and s.met >= 1 for s in stats.stats)  # priority 0 -> default_priority 3


async def test_an_idle_model_sits_at_the_low_window(stack: Stack) -> None:
    qs = await queue_stats(stack, "iris")
    assert qs.window_us == pytest.approx(750.0)  # balanced preset, depth 0-1


async def test_unloading_drops_the_models_queue_metrics(stack: Stack) -> None:
    await stack.stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="ocr_cls"), timeout=60)
    labels = {"model": "ocr_cls", "version": "1"}
    assert stack.metrics.get_sample_value("mlos_inference_pending_request_count", labels) == 0
    await stack.stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="ocr_cls"), timeout=60)
    assert stack.metrics.get_sample_value("mlos_inference_pending_request_count", labels) is None
    assert stack.metrics.get_sample_value("mlos_scheduler_batch_window_seconds", labels) is None

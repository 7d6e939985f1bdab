"""DynamicBatcher and merging as plain domain code: no gRPC, no mocks."""

from __future__ import annotations

import asyncio
import struct

import numpy as np
import pytest

from mlos_common.errors import DeadlineExceeded, InvalidArgument, MlosError, Unavailable
from mlos_common.signatures import TensorSpec
from mlos_common.tensors import array_from_raw, array_to_raw, encode_bytes
from mlos_scheduler.batcher import DynamicBatcher
from mlos_scheduler.domain import InferRequest, InferResult, ModelInfo, Tensor
from mlos_scheduler.errors import BatchMismatch, QueueFull
from mlos_scheduler.merging import merge_inputs, split_outputs
from mlos_scheduler.window import AdaptiveWindow


def model(max_batch_size: int = 8, delay_us: int = 0) -> ModelInfo:
    return ModelInfo(
        name="m", version=1, sha256="0" * 64,
        inputs=(TensorSpec("x", "FP32", (-1, -1)),), outputs=(TensorSpec("y", "FP32", (-1, -1)),),
        max_batch_size=max_batch_size, max_queue_delay_us=delay_us, instance_count=1, device="cpu",
    )


def req(rid: str, rows: int = 1, width: int = 2, deadline: float | None = None) -> InferRequest:
    data = np.full((rows, width), float(len(rid)), np.float32) + np.arange(rows * width, dtype=np.float32).reshape(rows, width)
    return InferRequest(model="m", version="", id=rid, inputs=[Tensor("x", "FP32", (rows, width), array_to_raw(data))],
                        outputs=[], rows=rows, deadline=deadline)


class Recorder:
    """A run_batch that records each batch, doubles the input, and can be held or made to fail."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None
        self.fail_alone: dict[str, MlosError] = {}  # request id -> the error it alone fails with
        self.started = asyncio.Event()

    async def __call__(
        self, m: ModelInfo, requests: list[InferRequest], timeout: float | None
    ) -> list[InferResult | MlosError]:
        self.batches.append([r.id for r in requests])
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        if m.max_batch_size <= 0:  # nothing merges: each request runs on its own
            return [self.fail_alone.get(r.id)
                    or InferResult(m.name, m.version, r.id, [Tensor("y", "FP32", r.inputs[0].shape, doubled(r))])
                    for r in requests]
        merged = merge_inputs(requests, m.max_batch_size > 0)
        x = array_from_raw("x", "FP32", merged[0].shape, merged[0].raw)
        out = [Tensor("y", "FP32", x.shape, array_to_raw(x * 2))]
        return [InferResult(m.name, m.version, r.id, outs) for r, outs in zip(requests, split_outputs(out, requests))]


def doubled(r: InferRequest) -> bytes:
    return array_to_raw(array_from_raw("x", "FP32", r.inputs[0].shape, r.inputs[0].raw) * 2)


async def test_fast_path_dispatches_a_lone_request_at_once() -> None:
    rec = Recorder()
    b = DynamicBatcher(model(delay_us=1_000_000), rec, max_queue_size=4, slots=1)
    r = req("a")
    result = await asyncio.wait_for(b.submit(r), 0.5)  # a 1 s delay window must not apply when idle
    assert rec.batches == [["a"]]
    assert result.id == "a" and result.outputs[0].raw == doubled(r)
    st = b.stats()
    assert (st.requests, st.batches, st.rows, st.pending, st.in_flight) == (1, 1, 1, 0, 0)


async def test_requests_arriving_during_a_batch_leave_together() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    b = DynamicBatcher(model(), rec, max_queue_size=16, slots=1)
    first = asyncio.create_task(b.submit(req("first")))
    await rec.started.wait()
    waiting = [req(f"r{i}") for i in range(5)]
    tasks = [asyncio.create_task(b.submit(r)) for r in waiting]
    await asyncio.sleep(0.01)
    assert rec.batches == [["first"]]  # the slot is busy; the rest wait
    assert b.stats().pending == 5
    rec.gate.set()
    await first
    results = await asyncio.gather(*tasks)
    assert rec.batches == [["first"], [f"r{i}" for i in range(5)]]
    for r, res in zip(waiting, results):
        assert res.id == r.id and res.outputs[0].raw == doubled(r)
    assert b.stats().mean_batch_size == 3.0


async def test_incompatible_trailing_shapes_never_merge() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    b = DynamicBatcher(model(), rec, max_queue_size=16, slots=1)
    first = asyncio.create_task(b.submit(req("first")))
    await rec.started.wait()
    reqs = [req("w2a", width=2), req("w3a", width=3), req("w2b", width=2), req("w3b", width=3)]
    tasks = [asyncio.create_task(b.submit(r)) for r in reqs]
    await asyncio.sleep(0)
    rec.gate.set()
    results = await asyncio.gather(first, *tasks)
    assert rec.batches == [["first"], ["w2a", "w2b"], ["w3a", "w3b"]]
    for r, res in zip(reqs, results[1:]):
        assert res.outputs[0].raw == doubled(r) and res.outputs[0].shape == r.inputs[0].shape


async def test_max_batch_size_counts_rows() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    b = DynamicBatcher(model(max_batch_size=4), rec, max_queue_size=16, slots=1)
    first = asyncio.create_task(b.submit(req("first")))
    await rec.started.wait()
    sizes = {"a": 3, "b": 2, "c": 1, "d": 4, "e": 1}
    reqs = [req(k, rows=v) for k, v in sizes.items()]
    tasks = [asyncio.create_task(b.submit(r)) for r in reqs]
    await asyncio.sleep(0)
    rec.gate.set()
    results = await asyncio.gather(first, *tasks)
    assert rec.batches[0] == ["first"]
    for batch in rec.batches[1:]:
        assert sum(sizes[i] for i in batch) <= 4, rec.batches
    assert sorted(i for batch in rec.batches[1:] for i in batch) == sorted(sizes)
    assert rec.batches[1] == ["a", "c"]  # the first fitting partner joins; b (2 rows) would overflow
    for r, res in zip(reqs, results[1:]):
        assert res.outputs[0].raw == doubled(r)


async def test_model_without_batching_sends_queued_requests_together_unmerged() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    b = DynamicBatcher(model(max_batch_size=0), rec, max_queue_size=16, slots=1)
    first = asyncio.create_task(b.submit(req("first")))
    await rec.started.wait()
    reqs = [req(f"r{i}", width=i + 1) for i in range(3)]  # different shapes: they could never merge
    tasks = [asyncio.create_task(b.submit(r)) for r in reqs]
    await asyncio.sleep(0)
    rec.gate.set()
    results = await asyncio.gather(first, *tasks)
    assert rec.batches == [["first"], ["r0", "r1", "r2"]]  # one dispatch, so one executor hop
    for r, res in zip(reqs, results[1:]):
        assert res.id == r.id and res.outputs[0].raw == doubled(r)
    assert b.stats().batches == 2


async def test_a_request_of_a_group_fails_alone() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    b = DynamicBatcher(model(max_batch_size=0), rec, max_queue_size=16, slots=1)
    first = asyncio.create_task(b.submit(req("first")))
    await rec.started.wait()
    rec.fail_alone["bad"] = InvalidArgument("input 'x' is wrong")
    tasks = [asyncio.create_task(b.submit(req(i))) for i in ("ok1", "bad", "ok2")]
    await asyncio.sleep(0)
    rec.gate.set()
    results = await asyncio.gather(first, *tasks, return_exceptions=True)
    assert isinstance(results[2], InvalidArgument) and "input 'x'" in results[2].message
    assert [r.id for r in (results[1], results[3])] == ["ok1", "ok2"]


async def test_queued_request_past_its_deadline_never_runs() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    b = DynamicBatcher(model(), rec, max_queue_size=16, slots=1)
    first = asyncio.create_task(b.submit(req("first")))
    await rec.started.wait()
    loop = asyncio.get_running_loop()
    doomed = asyncio.create_task(b.submit(req("doomed", deadline=loop.time() + 0.02)))
    with pytest.raises(DeadlineExceeded) as err:
        await asyncio.wait_for(doomed, 1.0)  # fails by its own timer while the slot is still busy
    assert "'m'" in err.value.message
    later = asyncio.create_task(b.submit(req("later")))
    await asyncio.sleep(0)
    rec.gate.set()
    await asyncio.gather(first, later)
    assert rec.batches == [["first"], ["later"]]
    assert all("doomed" not in batch for batch in rec.batches)


async def test_queue_limit() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    b = DynamicBatcher(model(), rec, max_queue_size=2, slots=1)
    first = asyncio.create_task(b.submit(req("first")))
    await rec.started.wait()
    queued = [asyncio.create_task(b.submit(req(f"q{i}"))) for i in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(QueueFull) as err:
        await b.submit(req("over"))
    assert err.value.code == "RESOURCE_EXHAUSTED" and "2/2" in err.value.message
    rec.gate.set()
    await asyncio.gather(first, *queued)


async def test_close_fails_pending_with_unavailable() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    b = DynamicBatcher(model(), rec, max_queue_size=16, slots=1)
    first = asyncio.create_task(b.submit(req("first")))
    await rec.started.wait()
    pending = [asyncio.create_task(b.submit(req(f"p{i}"))) for i in range(3)]
    await asyncio.sleep(0)
    await b.close("model 'm' was unloaded")
    for t in pending:
        with pytest.raises(Unavailable, match="unloaded"):
            await t
    with pytest.raises(Unavailable):
        await b.submit(req("after"))
    rec.gate.set()
    await first  # the running batch still finishes
    assert rec.batches == [["first"]]


@pytest.mark.parametrize("error", [Unavailable("executor gone"), RuntimeError("boom")])
async def test_run_batch_error_reaches_every_waiter(error: Exception) -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    b = DynamicBatcher(model(), rec, max_queue_size=16, slots=1)
    first = asyncio.create_task(b.submit(req("first")))
    await rec.started.wait()
    tasks = [asyncio.create_task(b.submit(req(f"r{i}"))) for i in range(4)]
    await asyncio.sleep(0)
    rec.fail = error
    rec.gate.set()
    results = await asyncio.gather(first, *tasks, return_exceptions=True)
    assert len(rec.batches) == 2
    assert all(r is error for r in results), results
    # the batcher is not stuck: the slot was given back
    rec.fail = None
    assert (await asyncio.wait_for(b.submit(req("ok")), 1)).id == "ok"
    assert b.stats().in_flight == 0


# ---- merging ----


def test_merge_and_split_numeric() -> None:
    a = np.arange(6, dtype=np.int64).reshape(1, 2, 3)
    c = np.arange(100, 118, dtype=np.int64).reshape(3, 2, 3)
    ra = InferRequest("m", "", "a", [Tensor("t", "INT64", a.shape, array_to_raw(a))], [], rows=1)
    rc = InferRequest("m", "", "c", [Tensor("t", "INT64", c.shape, array_to_raw(c))], [], rows=3)
    (merged,) = merge_inputs([ra, rc], batched=True)
    assert merged.shape == (4, 2, 3)
    assert np.array_equal(array_from_raw("t", "INT64", merged.shape, merged.raw), np.concatenate([a, c]))
    out = np.concatenate([a, c]) * 10
    pieces = split_outputs([Tensor("o", "INT64", out.shape, array_to_raw(out))], [ra, rc])
    assert [p[0].shape for p in pieces] == [(1, 2, 3), (3, 2, 3)]
    assert np.array_equal(array_from_raw("o", "INT64", (1, 2, 3), pieces[0][0].raw), a * 10)
    assert np.array_equal(array_from_raw("o", "INT64", (3, 2, 3), pieces[1][0].raw), c * 10)


def test_merge_and_split_bytes() -> None:
    a = np.array([[b"x", b""]], dtype=object)
    c = np.array([[b"hello", b"w"], [b"\x00\x01", b"longer string"]], dtype=object)
    ra = InferRequest("m", "", "a", [Tensor("s", "BYTES", a.shape, encode_bytes(a))], [], rows=1)
    rc = InferRequest("m", "", "c", [Tensor("s", "BYTES", c.shape, encode_bytes(c))], [], rows=2)
    (merged,) = merge_inputs([ra, rc], batched=True)
    assert merged.shape == (3, 2)
    got = array_from_raw("s", "BYTES", merged.shape, merged.raw)
    assert got.tolist() == np.concatenate([a, c]).tolist()
    pieces = split_outputs([merged], [ra, rc])
    assert array_from_raw("s", "BYTES", (1, 2), pieces[0][0].raw).tolist() == a.tolist()
    assert array_from_raw("s", "BYTES", (2, 2), pieces[1][0].raw).tolist() == c.tolist()
    assert struct.unpack_from("<I", pieces[1][0].raw)[0] == 5


def test_single_request_passes_through_and_mismatch_is_caught() -> None:
    r1 = req("a", rows=2)
    assert merge_inputs([r1], batched=False) is r1.inputs
    r2 = req("b", rows=1)
    with pytest.raises(BatchMismatch):
        merge_inputs([r1, r2], batched=False)
    wrong = np.zeros((5, 2), np.float32)  # 5 rows back for a batch of 3
    with pytest.raises(BatchMismatch):
        split_outputs([Tensor("y", "FP32", wrong.shape, array_to_raw(wrong))], [r1, r2])


@pytest.mark.parametrize("heavy", [True, False])
async def test_heavy_models_get_every_execution_slot(heavy: bool) -> None:
    rec = Recorder()
    # heavy_batch_s of 0 s: any measured batch counts as heavy; 1 h: none does
    b = DynamicBatcher(model(), rec, max_queue_size=16, slots=1, heavy_slots=2,
                       heavy_batch_s=0.0 if heavy else 3600.0, window=AdaptiveWindow((0.0, 0.0, 0.0)))
    assert b.slots_now == 1  # nothing measured yet
    await b.submit(req("warm"))
    assert b.batch_s_avg > 0
    rec.gate = asyncio.Event()
    rec.started.clear()
    first = asyncio.create_task(b.submit(req("a")))
    await rec.started.wait()
    second = asyncio.create_task(b.submit(req("b", width=3)))  # cannot merge with a: its own batch
    for _ in range(5):  # a few loop turns: submit, pump, the batch task starting
        await asyncio.sleep(0)
    running = [batch for batch in rec.batches[1:]]
    assert running == ([["a"], ["b"]] if heavy else [["a"]]), running
    assert b.slots_now == (2 if heavy else 1)
    rec.gate.set()
    await asyncio.gather(first, second)

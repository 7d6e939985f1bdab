"""ModelInfer / ModelStreamInfer / ModelStatistics against the real stack, checked against onnxruntime."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
from grpc import aio
from sched_testkit import Stack, assert_matches, infer_request, ort_run, response_arrays

from mlos.inference import grpc_service_pb2 as pb
from mlos.scheduler.v1 import scheduler_pb2 as spb

pytestmark = pytest.mark.asyncio(loop_scope="session")

OCR_OUT = "save_infer_model/scale_0.tmp_1"


@pytest.mark.parametrize("name,batch", [("iris", 1), ("iris", 5), ("ocr_cls", 1), ("ocr_cls", 4), ("silero_vad", 1)])
async def test_infer_raw_matches_onnxruntime(stack: Stack, name: str, batch: int) -> None:
    model = stack.models[name]
    feeds = model.sample_inputs(batch=batch, seed=batch)
    resp = await stack.stub.ModelInfer(infer_request(name, feeds, id=f"req-{name}"), timeout=30)
    assert resp.model_name == name
    assert resp.model_version == "1"
    assert resp.id == f"req-{name}"
    got = response_arrays(resp)
    assert_matches(got, ort_run(model, feeds))


async def test_co_located_executor_is_reached_over_its_unix_link(stack: Stack) -> None:
    link = stack.core.executors[0].client.link
    assert stack.executor_servicer.link_socket and link.unix_name == stack.executor_servicer.link_socket
    works = link.works_sent
    model = stack.models["ocr_cls"]
    feeds = model.sample_inputs(batch=2, seed=7)
    assert_matches(response_arrays(await stack.stub.ModelInfer(infer_request("ocr_cls", feeds), timeout=30)),
                   ort_run(model, feeds))
    assert link.works_sent == works + 1


async def test_silero_state_round_trip(stack: Stack) -> None:
    """Feeding stateN back in (a non-zero state) still matches onnxruntime step by step."""
    model = stack.models["silero_vad"]
    feeds = model.sample_inputs()
    for _ in range(3):
        got = response_arrays(await stack.stub.ModelInfer(infer_request("silero_vad", feeds), timeout=30))
        want = ort_run(model, feeds)
        assert_matches(got, want)
        feeds = {**feeds, "state": want["stateN"]}
    assert np.abs(feeds["state"]).sum() > 0


async def test_typed_contents_match_raw(stack: Stack) -> None:
    iris = stack.models["iris"]
    feeds = iris.sample_inputs(batch=3, seed=40)
    req = pb.ModelInferRequest(model_name="iris")
    t = req.inputs.add(name="X", datatype="FP32", shape=[3, 4])
    t.contents.fp32_contents.extend(feeds["X"].reshape(-1).tolist())
    typed = response_arrays(await stack.stub.ModelInfer(req, timeout=30))
    raw = response_arrays(await stack.stub.ModelInfer(infer_request("iris", feeds), timeout=30))
    assert_matches(typed, ort_run(iris, feeds))
    assert_matches(typed, raw)

    silero = stack.models["silero_vad"]
    feeds = silero.sample_inputs()
    req = pb.ModelInferRequest(model_name="silero_vad")
    for name in ("input", "state"):
        t = req.inputs.add(name=name, datatype="FP32", shape=list(feeds[name].shape))
        t.contents.fp32_contents.extend(feeds[name].reshape(-1).tolist())
    sr = req.inputs.add(name="sr", datatype="INT64", shape=[])
    sr.contents.int64_contents.append(int(feeds["sr"]))
    typed = response_arrays(await stack.stub.ModelInfer(req, timeout=30))
    assert_matches(typed, ort_run(silero, feeds))


async def test_requested_outputs_subset(stack: Stack) -> None:
    iris = stack.models["iris"]
    feeds = iris.sample_inputs(batch=4, seed=60)
    resp = await stack.stub.ModelInfer(infer_request("iris", feeds, outputs=["probabilities"]), timeout=30)
    assert [o.name for o in resp.outputs] == ["probabilities"]
    assert_matches(response_arrays(resp), ort_run(iris, feeds, ["probabilities"]))

    resp = await stack.stub.ModelInfer(infer_request("iris", feeds, outputs=["label"]), timeout=30)
    assert [o.name for o in resp.outputs] == ["label"]
    assert_matches(response_arrays(resp), ort_run(iris, feeds, ["label"]))

    silero = stack.models["silero_vad"]
    feeds = silero.sample_inputs()
    resp = await stack.stub.ModelInfer(infer_request("silero_vad", feeds, outputs=["stateN"]), timeout=30)
    assert [o.name for o in resp.outputs] == ["stateN"]
    assert_matches(response_arrays(resp), ort_run(silero, feeds, ["stateN"]))


async def _queue(stack: Stack, name: str) -> spb.QueueStats:
    reply = await stack.admin.GetQueueStats(spb.GetQueueStatsRequest(model_name=name))
    (q,) = reply.queues
    return q


async def test_concurrent_requests_are_batched_without_cross_talk(stack: Stack) -> None:
    model = stack.models["ocr_cls"]
    before = await _queue(stack, "ocr_cls")
    n = 32
    feeds = [model.sample_inputs(batch=1, seed=1000 + i) for i in range(n)]
    responses = await asyncio.gather(
        *(stack.stub.ModelInfer(infer_request("ocr_cls", f, id=str(i)), timeout=30) for i, f in enumerate(feeds))
    )
    for i, (f, resp) in enumerate(zip(feeds, responses)):
        assert resp.id == str(i)
        assert_matches(response_arrays(resp), ort_run(model, f))
    # the inputs are different, so the answers must be too (a cross-talk bug could hide behind equal inputs)
    outs = {response_arrays(r)[OCR_OUT].tobytes() for r in responses}
    assert len(outs) > 1

    after = await _queue(stack, "ocr_cls")
    requests = after.requests - before.requests
    batches = after.batches - before.batches
    assert requests == n
    assert 0 < batches < requests, f"{requests} requests ran as {batches} batches"
    assert after.mean_batch_size > 1
    assert after.max_batch_size == 8
    assert after.pending == 0 and after.in_flight_batches == 0


async def test_requests_of_a_model_without_batching_share_executor_hops(stack: Stack) -> None:
    """silero_vad has no batch dimension: concurrent requests never merge, but those that queue
    together leave in one stream message, each run alone, each answered with its own result."""
    model = stack.models["silero_vad"]
    link = stack.core.executors[0].client.link
    rtt = "mlos_scheduler_executor_roundtrip_seconds_count"
    labels = {"executor": stack.core.executors[0].addr}
    messages_before, works_before = link.messages_sent, link.works_sent
    rtt_before = stack.metrics.get_sample_value(rtt, labels) or 0
    n = 24
    feeds = [model.sample_inputs(seed=3000 + i) for i in range(n)]
    responses = await asyncio.gather(
        *(stack.stub.ModelInfer(infer_request("silero_vad", f, id=str(i)), timeout=30) for i, f in enumerate(feeds))
    )
    for i, (f, resp) in enumerate(zip(feeds, responses)):
        assert resp.id == str(i)
        assert_matches(response_arrays(resp), ort_run(model, f))
    assert link.works_sent - works_before == n  # one piece of work per request: nothing merged
    messages = link.messages_sent - messages_before
    assert messages < n, f"{n} requests took {messages} stream messages"
    assert (stack.metrics.get_sample_value(rtt, labels) or 0) - rtt_before == messages


async def test_mixed_batch_sizes_split_correctly(stack: Stack) -> None:
    model = stack.models["ocr_cls"]
    sizes = [1, 3, 1, 1, 3, 1, 2, 1, 1, 3, 1, 1]
    feeds = [model.sample_inputs(batch=b, seed=2000 + i) for i, b in enumerate(sizes)]
    responses = await asyncio.gather(
        *(stack.stub.ModelInfer(infer_request("ocr_cls", f, id=str(i)), timeout=30) for i, f in enumerate(feeds))
    )
    for i, (b, f, resp) in enumerate(zip(sizes, feeds, responses)):
        assert resp.id == str(i)
        got = response_arrays(resp)
        assert got[OCR_OUT].shape == (b, 2)
        assert_matches(got, ort_run(model, f))


async def test_incompatible_image_sizes_are_not_merged(stack: Stack) -> None:
    """ocr_cls takes any H, W: requests with different trailing dims run, each correctly."""
    model = stack.models["ocr_cls"]
    rng = np.random.default_rng(7)
    feeds = [
        {"x": rng.random((1, 3, 48, w), dtype=np.float32)} for w in (192, 160, 192, 96, 160, 192)
    ]
    responses = await asyncio.gather(*(stack.stub.ModelInfer(infer_request("ocr_cls", f), timeout=30) for f in feeds))
    for f, resp in zip(feeds, responses):
        assert_matches(response_arrays(resp), ort_run(model, f))


async def test_stream_infer_with_one_bad_request(stack: Stack) -> None:
    iris = stack.models["iris"]
    feeds = [iris.sample_inputs(batch=1 + i % 2, seed=300 + i) for i in range(5)]
    requests = [infer_request("iris", f, id=f"s{i}") for i, f in enumerate(feeds)]
    bad = 2
    requests[bad].inputs[0].datatype = "FP64"  # wrong datatype: rejected, the stream goes on

    async def gen():
        for r in requests:
            yield r

    call = stack.stub.ModelStreamInfer(gen(), timeout=30)
    replies = [r async for r in call]
    assert len(replies) == 5
    errors = [r for r in replies if r.error_message]
    oks = [r for r in replies if not r.error_message]
    assert len(errors) == 1 and len(oks) == 4
    assert errors[0].infer_response.id == f"s{bad}"
    assert "INVALID_ARGUMENT" in errors[0].error_message and "'X'" in errors[0].error_message
    assert sorted(r.infer_response.id for r in oks) == ["s0", "s1", "s3", "s4"]
    for r in oks:
        i = int(r.infer_response.id[1:])
        assert_matches(response_arrays(r.infer_response), ort_run(iris, feeds[i]))
    assert await call.code() == grpc.StatusCode.OK


async def test_model_statistics_after_traffic(stack: Stack) -> None:
    name = "iris_stats"  # a fresh name, so the counts are this test's alone
    iris = stack.models["iris"]
    await stack.registry.register(name, iris.path)
    feeds = [iris.sample_inputs(batch=b, seed=b) for b in (1, 2, 1, 3, 1, 1)]
    await stack.stub.ModelInfer(infer_request(name, feeds[0]), timeout=30)  # auto-loads
    await asyncio.gather(*(stack.stub.ModelInfer(infer_request(name, f), timeout=30) for f in feeds[1:]))
    bad = infer_request(name, feeds[0])
    bad.inputs[0].datatype = "FP64"
    with pytest.raises(aio.AioRpcError) as err:
        await stack.stub.ModelInfer(bad, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    reply = await stack.stub.ModelStatistics(pb.ModelStatisticsRequest(name=name))
    (s,) = reply.model_stats
    assert s.name == name and s.version == "1"
    rows = sum(f["X"].shape[0] for f in feeds)
    assert s.inference_count == rows
    assert 0 < s.execution_count <= s.inference_count
    assert s.inference_stats.success.count == len(feeds)
    assert s.inference_stats.success.ns > 0
    assert s.inference_stats.fail.count == 1
    assert s.inference_stats.queue.count == len(feeds)
    assert s.inference_stats.compute_infer.count == len(feeds)
    assert sum(b.compute_infer.count for b in s.batch_stats) == s.execution_count
    # perf_analyzer aborts unless the three compute phases carry the same counts.
    stats = s.inference_stats
    assert stats.compute_input.count == stats.compute_infer.count == stats.compute_output.count
    assert stats.compute_input.ns > 0 and stats.compute_output.ns > 0
    for b in s.batch_stats:
        assert b.compute_input.count == b.compute_infer.count == b.compute_output.count
    assert s.last_inference > 0

    everything = await stack.stub.ModelStatistics(pb.ModelStatisticsRequest())
    assert {"iris_stats", "ocr_cls"} <= {m.name for m in everything.model_stats}

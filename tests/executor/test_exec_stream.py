"""The Execute stream through WorkLink, over gRPC and over the Unix link: many pieces of work
per message, each failing alone."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from exec_testkit import ExecutorServed, RegistryServed, StartExecutor, tensor

from mlos.common.v1 import tensor_pb2
from mlos.executor.v1 import executor_pb2 as pb
from mlos_common.errors import DeadlineExceeded, Unavailable
from mlos_common.tensors import array_from_raw


def work(name: str, version: int, inputs: list[tensor_pb2.Tensor], outputs: list[str] | None = None) -> pb.Work:
    return pb.Work(model=pb.ModelKey(name=name, version=version), inputs=inputs, output_names=outputs or [])


def arrays(result: pb.WorkResult) -> dict[str, np.ndarray]:
    assert not result.error_code, result.error_message
    return {t.name: array_from_raw(t.name, t.datatype, t.shape, t.raw) for t in result.outputs}


@pytest.fixture(params=["grpc", "unix"])
async def executor(request, start_executor: StartExecutor) -> ExecutorServed:
    """An executor whose client's WorkLink uses the gRPC stream, or the co-located Unix link."""
    ex = await start_executor()
    if request.param == "unix":
        assert await ex.client.link.prefer_unix(ex.servicer.link_socket)
        assert ex.client.link.unix_name == ex.servicer.link_socket
    return ex


async def loaded(registry: RegistryServed, executor: ExecutorServed, name: str, path) -> int:
    mv = await registry.client.register(name, path)
    await executor.client.load(name, mv.version, mv.sha256)
    return mv.version


async def test_work_of_one_turn_leaves_in_one_message(registry, executor, model_files):
    plus = await loaded(registry, executor, "plus", model_files.plus_one)
    dbl = await loaded(registry, executor, "dbl", model_files.int64_double)
    link = executor.client.link
    xs = [np.full((i + 1, 3), i, np.float32) for i in range(5)]
    a = np.arange(4, dtype=np.int64).reshape(2, 2)
    futures = [link.submit(work("plus", plus, [tensor("X", x)]), None) for x in xs]
    futures.append(link.submit(work("dbl", dbl, [tensor("A", a)]), None))
    results = await asyncio.gather(*futures)
    assert (link.streams_opened, link.messages_sent, link.works_sent) == (1, 1, 6)
    for x, result in zip(xs, results):
        np.testing.assert_array_equal(arrays(result)["Y"], x + 1)
        assert result.compute_ns > 0
    np.testing.assert_array_equal(arrays(results[-1])["B"], a * 2)
    assert link.in_flight == 0


async def test_each_piece_of_work_fails_alone_and_the_stream_goes_on(registry, executor, model_files):
    plus = await loaded(registry, executor, "plus", model_files.plus_one)
    link = executor.client.link
    good = np.ones((2, 3), np.float32)
    bad = {
        "not loaded": (work("ghost", 1, [tensor("X", good)]), "FAILED_PRECONDITION", "'ghost'"),
        "raw size": (
            work("plus", plus, [tensor_pb2.Tensor(name="X", datatype="FP32", shape=[2, 3], raw=b"\0" * 20)]),
            "INVALID_ARGUMENT", "24 bytes",
        ),
        "dtype": (work("plus", plus, [tensor("X", good.astype(np.float64))]), "INVALID_ARGUMENT", "FP32"),
        "output": (work("plus", plus, [tensor("X", good)], ["NOPE"]), "INVALID_ARGUMENT", "NOPE"),
        "datatype": (
            work("plus", plus, [tensor_pb2.Tensor(name="X", datatype="FP99", shape=[1], raw=b"1234")]),
            "INVALID_ARGUMENT", "FP99",
        ),
    }
    futures = [link.submit(w, None) for w, _, _ in bad.values()]
    futures.insert(2, link.submit(work("plus", plus, [tensor("X", good)]), None))
    results = await asyncio.gather(*futures)
    np.testing.assert_array_equal(arrays(results.pop(2))["Y"], good + 1)
    for (what, (_, code, needle)), result in zip(bad.items(), results):
        assert result.error_code == code, (what, result)
        assert needle in result.error_message, (what, result.error_message)
    again = await link.submit(work("plus", plus, [tensor("X", good)]), None)
    np.testing.assert_array_equal(arrays(again)["Y"], good + 1)
    assert link.streams_opened == 1


async def test_work_past_its_deadline_fails_and_the_next_runs(registry, executor, model_files):
    plus = await loaded(registry, executor, "plus", model_files.plus_one)
    link = executor.client.link
    x = np.zeros((1, 3), np.float32)
    with pytest.raises(DeadlineExceeded, match=executor.addr):
        await link.submit(work("plus", plus, [tensor("X", x)]), 1e-6)
    np.testing.assert_array_equal(arrays(await link.submit(work("plus", plus, [tensor("X", x)]), 5.0))["Y"], x + 1)


async def test_executor_gone_fails_unfinished_work_as_unavailable(registry, executor, model_files):
    ex = executor
    plus = await loaded(registry, ex, "plus", model_files.plus_one)
    x = np.zeros((1, 3), np.float32)
    arrays(await ex.client.link.submit(work("plus", plus, [tensor("X", x)]), 5.0))
    await ex.servicer.close_unix_link()  # the process going away closes both
    await ex.server.stop(None)
    with pytest.raises(Unavailable, match=ex.addr):
        await ex.client.link.submit(work("plus", plus, [tensor("X", x)]), 5.0)
    assert ex.client.link.in_flight == 0


async def test_trace_context_rides_in_the_work_when_recorded(registry, start_executor: StartExecutor, model_files):
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from mlos_common.bootstrap import ServerParts
    from mlos_common.tracing import build_tracer_provider
    from mlos_scheduler.executors import _traceparent

    assert build_tracer_provider("nothing-exports") is None  # no exporter: no tracing cost at all
    executor_spans = InMemorySpanExporter()
    ex = await start_executor(parts=ServerParts(
        tracer_provider=build_tracer_provider("executor", "", SimpleSpanProcessor(executor_spans))
    ))
    plus = await loaded(registry, ex, "plus", model_files.plus_one)
    x = np.zeros((1, 3), np.float32)
    assert _traceparent() == ""  # nothing records here: the work carries no context
    arrays(await ex.client.link.submit(work("plus", plus, [tensor("X", x)]), 5.0))
    assert not [s for s in executor_spans.get_finished_spans() if s.name == "mlos.executor/execute"]

    caller = build_tracer_provider("scheduler", "", SimpleSpanProcessor(InMemorySpanExporter()))
    with caller.get_tracer("test").start_as_current_span("batch") as parent:
        w = work("plus", plus, [tensor("X", x)])
        w.traceparent = _traceparent()
        arrays(await ex.client.link.submit(w, 5.0))
    [span] = [s for s in executor_spans.get_finished_spans() if s.name == "mlos.executor/execute"]
    assert span.context.trace_id == parent.get_span_context().trace_id
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    assert span.attributes["mlos.model"] == "plus"


async def test_unix_link_is_unreachable_by_a_wrong_name_and_grpc_stays(registry, start_executor, model_files):
    ex = await start_executor()
    assert ex.servicer.link_socket and (await ex.client.status()).link_socket == ex.servicer.link_socket
    assert not await ex.client.link.prefer_unix("mlos-executor-nobody-0-00000000")
    assert ex.client.link.unix_name == ""
    plus = await loaded(registry, ex, "plus", model_files.plus_one)
    x = np.zeros((1, 3), np.float32)
    np.testing.assert_array_equal(arrays(await ex.client.link.submit(work("plus", plus, [tensor("X", x)]), 5.0))["Y"], x + 1)


async def test_hostile_frames_close_only_their_connection(registry, start_executor, model_files):
    import struct

    ex = await start_executor(max_message_bytes=1 << 20)
    plus = await loaded(registry, ex, "plus", model_files.plus_one)
    address = "\0" + ex.servicer.link_socket
    for frame in (struct.pack("<I", 2 << 20), struct.pack("<I", 5) + b"\xff\xff\xff\xff\xff", b"\x01\x00"):
        reader, writer = await asyncio.open_unix_connection(address)
        writer.write(frame)
        if frame == b"\x01\x00":
            writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the executor hung up
        writer.close()
    assert await ex.client.link.prefer_unix(ex.servicer.link_socket)
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(arrays(await ex.client.link.submit(work("plus", plus, [tensor("X", x)]), 5.0))["Y"], x + 1)


async def test_a_broken_unix_link_falls_back_to_grpc(registry, start_executor, model_files):
    ex = await start_executor()
    plus = await loaded(registry, ex, "plus", model_files.plus_one)
    link = ex.client.link
    assert await link.prefer_unix(ex.servicer.link_socket)
    x = np.zeros((1, 3), np.float32)
    arrays(await link.submit(work("plus", plus, [tensor("X", x)]), 5.0))
    await ex.servicer.close_unix_link()  # e.g. the executor restarted under a new socket name
    with pytest.raises(Unavailable, match="Unix link|closed the work stream"):
        await link.submit(work("plus", plus, [tensor("X", x)]), 5.0)
    assert link.unix_name == ""
    np.testing.assert_array_equal(arrays(await link.submit(work("plus", plus, [tensor("X", x)]), 5.0))["Y"], x + 1)
    assert link.streams_opened == 2

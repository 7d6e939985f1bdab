"""Stacks of their own: queue limit, message limit, and truthful readiness when the executor dies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sched_testkit import Stack, assert_matches, infer_request, ort_run, response_arrays, running_stack

from mlos.inference import grpc_service_pb2 as pb
from mlos_cli.demo import DemoModel

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def small(tmp_path_factory: pytest.TempPathFactory, demo: dict[str, DemoModel]) -> AsyncIterator[Stack]:
    """A scheduler with a tiny queue, one batch slot, a 1 MiB message limit, and the executor
    reached over its gRPC stream even though it is co-located (executor_link="grpc")."""
    async with running_stack(
        tmp_path_factory.mktemp("small"), demo, load=("iris", "ocr_cls"),
        max_queue_size=2, batch_slots=1, max_message_bytes=1 << 20, executor_link="grpc",
    ) as s:
        yield s


async def test_executor_link_grpc_keeps_the_grpc_stream(small: Stack) -> None:
    link = small.core.executors[0].client.link
    assert small.executor_servicer.link_socket and link.unix_name == ""
    feeds = small.models["iris"].sample_inputs(batch=2)
    resp = await small.stub.ModelInfer(infer_request("iris", feeds), timeout=30)
    assert_matches(response_arrays(resp), ort_run(small.models["iris"], feeds))
    assert link.streams_opened == 1


async def test_queue_full_is_resource_exhausted_naming_the_limit(small: Stack) -> None:
    model = small.models["ocr_cls"]
    feeds = [model.sample_inputs(batch=1, seed=i) for i in range(48)]

    async def one(f):
        try:
            return await small.stub.ModelInfer(infer_request("ocr_cls", f), timeout=30)
        except aio.AioRpcError as exc:
            return exc

    results = await asyncio.gather(*(one(f) for f in feeds))
    errors = [r for r in results if isinstance(r, aio.AioRpcError)]
    assert errors, "a queue of 2 with one batch slot never filled up"
    for e in errors:
        assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (e.code(), e.details())
        assert "2/2" in e.details() and "ocr_cls" in e.details()
    oks = [(f, r) for f, r in zip(feeds, results) if not isinstance(r, aio.AioRpcError)]
    assert oks
    for f, r in oks:
        assert_matches(response_arrays(r), ort_run(model, f))
    # the queue drains and the model serves again
    f = model.sample_inputs(batch=1, seed=99)
    assert_matches(response_arrays(await small.stub.ModelInfer(infer_request("ocr_cls", f), timeout=30)),
                   ort_run(model, f))


async def test_message_over_limit_is_resource_exhausted(small: Stack) -> None:
    big = np.zeros((1, 3, 48, 2048), np.float32)  # 1.2 MB > 1 MiB
    with pytest.raises(aio.AioRpcError) as err:
        await small.stub.ModelInfer(infer_request("ocr_cls", {"x": big}), timeout=30)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    ok = np.zeros((1, 3, 48, 1024), np.float32)  # 590 KB fits
    resp = await small.stub.ModelInfer(infer_request("ocr_cls", {"x": ok}), timeout=30)
    assert_matches(response_arrays(resp), ort_run(small.models["ocr_cls"], {"x": ok}))


async def test_readiness_is_truthful_when_the_executor_stops(tmp_path: Path, demo: dict[str, DemoModel]) -> None:
    async with running_stack(tmp_path, demo, load=("iris",)) as s:
        health = health_pb2_grpc.HealthStub(s.channel)
        assert (await s.stub.ServerReady(pb.ServerReadyRequest())).ready
        assert (await health.Check(health_pb2.HealthCheckRequest(service=""))).status == (
            health_pb2.HealthCheckResponse.SERVING
        )
        iris = s.models["iris"]
        feeds = iris.sample_inputs(batch=1)
        await s.stub.ModelInfer(infer_request("iris", feeds), timeout=10)

        executor_addr = s.settings.executor_list()[0]
        await s.stop_executor()
        await s.monitor.check_all()

        assert not (await s.stub.ServerReady(pb.ServerReadyRequest())).ready
        assert not (await s.stub.ModelReady(pb.ModelReadyRequest(name="iris"))).ready
        assert (await health.Check(health_pb2.HealthCheckRequest(service=""))).status == (
            health_pb2.HealthCheckResponse.NOT_SERVING
        )
        assert (await s.stub.ServerLive(pb.ServerLiveRequest())).live  # alive, just not ready

        with pytest.raises(aio.AioRpcError) as err:
            await s.stub.ModelInfer(infer_request("iris", feeds), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
        assert "executor" in err.value.details() and executor_addr in err.value.details()

        # a model that still has to be loaded fails the same way, not INTERNAL
        with pytest.raises(aio.AioRpcError) as err:
            await s.stub.ModelInfer(infer_request("ocr_cls", s.models["ocr_cls"].sample_inputs()), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
        assert executor_addr in err.value.details()


async def test_heavy_batch_threshold_comes_from_settings_and_executor_slots(tmp_path: Path, demo: dict[str, DemoModel]) -> None:
    async with running_stack(tmp_path, demo, load=("iris",), heavy_batch_ms=0.0) as s:
        feeds = s.models["iris"].sample_inputs(batch=1)
        await s.stub.ModelInfer(infer_request("iris", feeds), timeout=10)
        served = s.core.served[("iris", 1)]
        executor_slots = (await s.core.executors[0].client.status()).execution_slots
        assert s.core.executors[0].execution_slots == executor_slots == 2
        assert (served.batcher.slots, served.batcher.heavy_slots, served.batcher.slots_now) == (1, 2, 2)

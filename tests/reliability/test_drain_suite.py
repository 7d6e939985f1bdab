"""SIGTERM to the scheduler of a running suite with requests in flight: every one of them is
answered OK, a request after the signal is answered during the drain window or refused with
UNAVAILABLE (never hangs), and the process exits 0 within its grace. (../shared/research/reliability.md §b 1.)"""

from __future__ import annotations

import asyncio
import signal
import time

import grpc
import numpy as np
import pytest
from grpc import aio
from slow_models import build_slow_model

from mlos.inference import grpc_service_pb2 as pb
from mlos.inference import grpc_service_pb2_grpc as pbg
from mlos_common.tensors import array_to_raw
from mlos_executor.client import ExecutorClient
from mlos_registry.client import RegistryClient
from mlos_registry.domain import ServingConfig

pytestmark = pytest.mark.asyncio(loop_scope="session")

IN_FLIGHT = 24
ROWS = 32  # ~1.6 GFLOP per request (width 1024, depth 24): the requests queue for a second or more
GRACE_S = 10.0  # the services' default shutdown_grace_s
WIDTH = 1024


def _slow_request() -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="slow")
    request.inputs.add(name="x", datatype="FP32", shape=[ROWS, WIDTH])
    request.raw_input_contents.append(array_to_raw(np.full((ROWS, WIDTH), 0.1, dtype=np.float32)))
    return request


async def test_sigterm_answers_every_request_in_flight(running, tmp_path) -> None:
    path = build_slow_model(tmp_path / "slow.onnx", width=WIDTH)
    async with RegistryClient(running.addr("registry")) as registry:
        await registry.register("slow", str(path), config=ServingConfig(max_batch_size=ROWS))
    scheduler = running.suite.children["scheduler"].process
    async with aio.insecure_channel(running.addr("scheduler")) as channel, ExecutorClient(running.addr("executor")) as executor:
        stub = pbg.GRPCInferenceServiceStub(channel)
        await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="slow"), timeout=60)
        await stub.ModelInfer(_slow_request(), timeout=30)  # warm
        calls = [asyncio.ensure_future(stub.ModelInfer(_slow_request(), timeout=60)) for _ in range(IN_FLIGHT)]
        for _ in range(500):  # bounded: until the executor is running them
            if any(m.in_flight for m in (await executor.status()).models):
                break
            await asyncio.sleep(0.01)
        scheduler.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        replies = await asyncio.gather(*calls, return_exceptions=True)
        failed = [r for r in replies if isinstance(r, BaseException)]
        assert not failed, f"{len(failed)} of {IN_FLIGHT} in-flight requests failed: {failed[:3]}"
        assert all(r.outputs[0].shape == [ROWS, WIDTH] for r in replies)
        # A call after the signal is answered while the drain window is open (calls keep being
        # picked up until none has come for 0.25 s), else refused UNAVAILABLE; it never hangs.
        try:
            late = await stub.ModelInfer(_slow_request(), timeout=10)
            assert late.outputs[0].shape == [ROWS, WIDTH]
        except aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
        assert await asyncio.wait_for(scheduler.wait(), GRACE_S + 5) == 0
        with pytest.raises(aio.AioRpcError) as after:  # once it has stopped: refused, not hung
            await stub.ModelInfer(_slow_request(), timeout=10)
        assert after.value.code() == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - signalled < GRACE_S + 5

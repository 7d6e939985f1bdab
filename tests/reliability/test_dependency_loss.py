"""A dependency that dies does not take the front door with it: with the predictor killed, the
scheduler keeps scheduling on what it last knew; with the registry killed, loaded models keep
serving (the scheduler stays ready: "" SERVING, its "mlos.registry" health entry NOT_SERVING) and
what needs the registry fails fast with UNAVAILABLE naming it.
(../shared/research/reliability.md §b 16; the restart itself is the launcher's supervision.)"""

from __future__ import annotations

import asyncio
import signal

import grpc
import numpy as np
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mlos.inference import grpc_service_pb2 as pb
from mlos.inference import grpc_service_pb2_grpc as pbg
from mlos_common.tensors import array_to_raw

pytestmark = pytest.mark.asyncio(loop_scope="session")

CALL_TIMEOUT_S = 10.0
PROBES = 50


def _iris() -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="iris")
    request.inputs.add(name="X", datatype="FP32", shape=[1, 4])
    request.raw_input_contents.append(array_to_raw(np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)))
    return request


async def _kill(running, name: str) -> None:
    process = running.suite.children[name].process
    process.send_signal(signal.SIGKILL)
    await process.wait()


async def _health(channel: aio.Channel, service: str) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                            timeout=CALL_TIMEOUT_S)
    return reply.status


async def _serves(channel: aio.Channel) -> None:
    stub = pbg.GRPCInferenceServiceStub(channel)
    for _ in range(PROBES):
        reply = await stub.ModelInfer(_iris(), timeout=CALL_TIMEOUT_S)
        assert reply.outputs
    assert await _health(channel, "") == health_pb2.HealthCheckResponse.SERVING


async def test_predictor_down_scheduling_goes_on(running) -> None:
    async with aio.insecure_channel(running.addr("scheduler")) as channel:
        await _serves(channel)
        await _kill(running, "predictor")
        await _serves(channel)


async def test_registry_down_loaded_models_serve_and_lookups_say_why(running) -> None:
    async with aio.insecure_channel(running.addr("scheduler")) as channel:
        await _serves(channel)
        await _kill(running, "registry")
        await _serves(channel)
        stub = pbg.GRPCInferenceServiceStub(channel)
        with pytest.raises(aio.AioRpcError) as caught:
            await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="never-registered"),
                                           timeout=CALL_TIMEOUT_S)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
        assert "registry" in caught.value.details().lower()
        # the dependency's own health entry says it is gone (the peer monitor's next round)
        for _ in range(100):
            if await _health(channel, "mlos.registry") == health_pb2.HealthCheckResponse.NOT_SERVING:
                break
            await asyncio.sleep(0.1)
        assert await _health(channel, "mlos.registry") == health_pb2.HealthCheckResponse.NOT_SERVING
    assert running.alive()["scheduler"] and running.alive()["executor"]

"""Bodies that are not valid protobuf get INVALID_ARGUMENT from every service, and serving goes on."""

from __future__ import annotations

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sched_testkit import Stack
from test_sched_errors import still_serves

from mlos.executor.v1 import executor_pb2, executor_pb2_grpc

pytestmark = pytest.mark.asyncio(loop_scope="session")

GARBAGE = [b"\xff\xff\xff\xff", b"\x0a\x05ab", b"\x08"]  # bad tag, truncated string, truncated varint
SCHEDULER_UNARY = [
    "/inference.GRPCInferenceService/ModelInfer",
    "/inference.GRPCInferenceService/ServerReady",
    "/inference.GRPCInferenceService/RepositoryModelLoad",
    "/mlos.scheduler.v1.SchedulerAdmin/GetQueueStats",
    "/grpc.health.v1.Health/Check",
]
EXECUTOR_UNARY = ["/mlos.executor.v1.Executor/Status", "/mlos.executor.v1.Executor/LoadModel"]


async def _raw_unary(channel: aio.Channel, method: str, body: bytes) -> aio.AioRpcError:
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    with pytest.raises(aio.AioRpcError) as err:
        await call(body, timeout=10)
    return err.value


@pytest.mark.parametrize("body", GARBAGE)
@pytest.mark.parametrize("method", SCHEDULER_UNARY)
async def test_scheduler_refuses_garbage(stack: Stack, method: str, body: bytes) -> None:
    err = await _raw_unary(stack.channel, method, body)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    assert method in err.details() and "not a valid" in err.details(), err.details()
    await still_serves(stack)


async def test_scheduler_stream_refuses_garbage(stack: Stack) -> None:
    call = stack.channel.stream_stream(
        "/inference.GRPCInferenceService/ModelStreamInfer", request_serializer=None, response_deserializer=None
    )

    async def bodies():
        yield GARBAGE[0]

    with pytest.raises(aio.AioRpcError) as err:
        async for _ in call(bodies(), timeout=10):
            pass
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert "inference.ModelInferRequest" in err.value.details()
    await still_serves(stack)


@pytest.mark.parametrize("method", EXECUTOR_UNARY)
async def test_executor_refuses_garbage(stack: Stack, method: str) -> None:
    async with aio.insecure_channel(stack.settings.executor_list()[0]) as channel:
        err = await _raw_unary(channel, method, GARBAGE[0])
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
        status = await executor_pb2_grpc.ExecutorStub(channel).Status(executor_pb2.StatusRequest(), timeout=10)
        assert status.executor_id
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING

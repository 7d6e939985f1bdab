"""Every RPC of every service, fed random bytes and mutated valid messages through a generic channel
(no serializer), against the real processes: no process dies, every status is one a client can
act on (never UNKNOWN or INTERNAL), no message carries a traceback or the suite's private paths,
and a good request is answered afterwards. The RPCs come from the services' descriptors, so a new
RPC is fuzzed without touching this test.

(../shared/research/reliability.md §b 19, 21.)
"""

from __future__ import annotations

import random

import grpc
import numpy as np
import pytest
from grpc import aio

from mlos.executor.v1 import executor_pb2
from mlos.inference import grpc_service_pb2 as infer_pb2
from mlos.predictor.v1 import predictor_pb2
from mlos.registry.v1 import registry_pb2
from mlos.scheduler.v1 import scheduler_pb2
from mlos_common.tensors import array_to_raw

# Which process serves each proto service.
SERVED_BY = {
    "inference.GRPCInferenceService": "scheduler",
    "mlos.scheduler.v1.SchedulerAdmin": "scheduler",
    "mlos.executor.v1.Executor": "executor",
    "mlos.predictor.v1.Predictor": "predictor",
    "mlos.registry.v1.Registry": "registry",
}
FILES = (infer_pb2, scheduler_pb2, executor_pb2, predictor_pb2, registry_pb2)
# Statuses a client can act on. UNKNOWN (an unmapped exception) and INTERNAL are bugs here.
ALLOWED = {
    grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.CANCELLED,
}
# RPCs that must not run on fuzz input: Train starts minutes of CPU work on any message it parses.
SKIP = {"/mlos.predictor.v1.Predictor/Train"}
RANDOM_INPUTS = 12
MUTATIONS = 24
CALL_TIMEOUT_S = 10.0
STREAM_READ = 3  # messages read from a server stream before it is cancelled
LEAKS = ("Traceback (most recent call last)", 'File "/', "site-packages")


def methods() -> list[tuple[str, str, bool, bool]]:
    """(process, /full/method, client_streaming, server_streaming) for every RPC in the protos."""
    found = []
    for module in FILES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                path = f"/{service.full_name}/{m.name}"
                if path not in SKIP:
                    found.append((SERVED_BY[service.full_name], path, m.client_streaming, m.server_streaming))
    return found


def test_every_service_in_the_protos_is_fuzzed() -> None:
    services = {s.full_name for module in FILES for s in module.DESCRIPTOR.services_by_name.values()}
    assert services == set(SERVED_BY), "a new service needs its process in SERVED_BY"


def random_payloads(rng: random.Random) -> list[bytes]:
    sizes = [0, 1, 2, 7, 64, 512, 4096] + [rng.randrange(1, 2048) for _ in range(RANDOM_INPUTS - 7)]
    return [rng.randbytes(n) for n in sizes]


def _infer_request() -> bytes:
    request = infer_pb2.ModelInferRequest(model_name="iris")
    request.inputs.add(name="X", datatype="FP32", shape=[2, 4])
    request.raw_input_contents.append(array_to_raw(np.ones((2, 4), dtype=np.float32)))
    return request.SerializeToString()


VALID = {  # well-formed requests whose byte-mutations explore the parsers behind the first checks
    "/inference.GRPCInferenceService/ModelInfer": _infer_request,
    "/inference.GRPCInferenceService/ModelMetadata": lambda: infer_pb2.ModelMetadataRequest(name="iris").SerializeToString(),
    "/inference.GRPCInferenceService/RepositoryModelLoad":
        lambda: infer_pb2.RepositoryModelLoadRequest(model_name="iris").SerializeToString(),
    "/mlos.registry.v1.Registry/GetModel": lambda: registry_pb2.GetModelRequest(name="iris").SerializeToString(),
    "/mlos.predictor.v1.Predictor/Predict":
        lambda: predictor_pb2.PredictRequest(
            kind="latency", features=predictor_pb2.FeatureRow(values=[1.0] * 8)).SerializeToString(),
}


def mutations(valid: bytes, rng: random.Random) -> list[bytes]:
    made = []
    for _ in range(MUTATIONS):
        data = bytearray(valid)
        for _ in range(rng.randrange(1, 4)):
            kind = rng.randrange(3)
            if kind == 0 and data:  # flip a byte
                data[rng.randrange(len(data))] = rng.randrange(256)
            elif kind == 1 and data:  # cut
                del data[rng.randrange(len(data)):]
            else:  # insert junk
                at = rng.randrange(len(data) + 1)
                data[at:at] = rng.randbytes(rng.randrange(1, 16))
        made.append(bytes(data))
    return made


async def call(channel: aio.Channel, path: str, client_streaming: bool, server_streaming: bool,
               payload: bytes) -> tuple[grpc.StatusCode, str]:
    """One raw call; the status and message it ended with."""
    ident = {"request_serializer": None, "response_deserializer": None}
    try:
        if client_streaming and server_streaming:
            stream = channel.stream_stream(path, **ident)(iter([payload]), timeout=CALL_TIMEOUT_S)
            await _read_some(stream)
        elif client_streaming:
            await channel.stream_unary(path, **ident)(iter([payload]), timeout=CALL_TIMEOUT_S)
        elif server_streaming:
            await _read_some(channel.unary_stream(path, **ident)(payload, timeout=CALL_TIMEOUT_S))
        else:
            await channel.unary_unary(path, **ident)(payload, timeout=CALL_TIMEOUT_S)
    except aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


async def _read_some(stream) -> None:  # noqa: ANN001 - an aio streaming call
    read = 0
    async for _ in stream:
        read += 1
        if read >= STREAM_READ:
            break
    stream.cancel()


@pytest.mark.asyncio(loop_scope="session")
async def test_random_and_mutated_messages_get_only_actionable_statuses(running) -> None:
    rng = random.Random(20261129)
    bad: list[str] = []
    calls = 0
    channels = {name: aio.insecure_channel(running.addr(name)) for name in set(SERVED_BY.values())}
    try:
        for process, path, client_streaming, server_streaming in methods():
            payloads = random_payloads(rng) + (mutations(VALID[path](), rng) if path in VALID else [])
            for payload in payloads:
                code, details = await call(channels[process], path, client_streaming, server_streaming, payload)
                calls += 1
                quiet_watch = server_streaming and code == grpc.StatusCode.DEADLINE_EXCEEDED  # nothing to say yet
                if code not in ALLOWED and not quiet_watch:
                    bad.append(f"{path} <- {payload[:24]!r}... : {code.name}: {details[:200]}")
                leaked = [x for x in (*LEAKS, str(running.home)) if x in details]
                if leaked:
                    bad.append(f"{path}: message leaks {leaked}: {details[:200]}")
        assert running.alive() == {n: True for n in running.alive()}, "a service died under fuzzing"
        assert not bad, f"{len(bad)} of {calls} calls:\n" + "\n".join(bad[:30])
        reply = infer_pb2.ModelInferResponse.FromString(
            await channels["scheduler"].unary_unary("/inference.GRPCInferenceService/ModelInfer")(
                _infer_request(), timeout=CALL_TIMEOUT_S))
        assert reply.model_name == "iris" and reply.outputs
    finally:
        for channel in channels.values():
            await channel.close()

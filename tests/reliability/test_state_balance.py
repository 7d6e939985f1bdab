"""2,000 mixed requests against the running suite — answered, cancelled by the client, timed out,
refused as invalid — leave nothing behind: no request pending in the scheduler, none in flight in
the executor, no growth in open file descriptors, bounded resident memory, and the suite serves
on. (../shared/research/reliability.md §b 8.)"""

from __future__ import annotations

import asyncio
import random
import time
import urllib.request

import grpc
import numpy as np
import pytest
from grpc import aio

from mlos.inference import grpc_service_pb2 as pb
from mlos.inference import grpc_service_pb2_grpc as pbg
from mlos_common.tensors import array_to_raw
from mlos_executor.client import ExecutorClient

pytestmark = pytest.mark.asyncio(loop_scope="session")

REQUESTS = 2000
CALLERS = 16
FD_SLACK = 6  # a channel or two the servers may open meanwhile (telemetry, health)
RSS_SLACK_BYTES = 64 * 2**20
SETTLE_TIMEOUT_S = 15.0
EXPECTED = {"ok": {grpc.StatusCode.OK}, "invalid": {grpc.StatusCode.INVALID_ARGUMENT},
            "timeout": {grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.OK},
            "cancel": {grpc.StatusCode.CANCELLED, grpc.StatusCode.OK}}


def _request(rows: int, broken: bool = False) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="iris")
    request.inputs.add(name="X", datatype="FP32", shape=[rows, 4])
    data = array_to_raw(np.ones((rows, 4), dtype=np.float32))
    request.raw_input_contents.append(data[:-4] if broken else data)  # one value short
    return request


async def _one(stub: pbg.GRPCInferenceServiceStub, kind: str, rng: random.Random) -> grpc.StatusCode:
    request = _request(rng.randrange(1, 5), broken=kind == "invalid")
    try:
        if kind == "cancel":
            call = stub.ModelInfer(request, timeout=10.0)
            await asyncio.sleep(0)  # sent, not answered
            call.cancel()
            await call
        else:
            await stub.ModelInfer(request, timeout=0.0005 if kind == "timeout" else 10.0)
    except asyncio.CancelledError:
        return grpc.StatusCode.CANCELLED
    except aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def _pending(metrics_url: str) -> float:
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("mlos_inference_pending_request_count{"))


async def _settled(running, executor: ExecutorClient, metrics_url: str) -> tuple[float, int]:
    """Waits (bounded) until nothing is pending or in flight; returns what is left at the end."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        pending = await asyncio.to_thread(_pending, metrics_url)
        in_flight = sum(m.in_flight for m in (await executor.status()).models)
        if (pending == 0 and in_flight == 0) or time.monotonic() > deadline:
            return pending, in_flight
        await asyncio.sleep(0.1)


async def test_mixed_requests_leave_nothing_behind(running) -> None:
    rng = random.Random(7)
    metrics_url = running.suite.endpoints()["metrics"]["scheduler"]
    async with aio.insecure_channel(running.addr("scheduler")) as channel, ExecutorClient(running.addr("executor")) as executor:
        stub = pbg.GRPCInferenceServiceStub(channel)
        for _ in range(50):  # warm: channels, sessions, thread pools exist before the baseline
            assert await _one(stub, "ok", rng) == grpc.StatusCode.OK
        before = {n: (running.open_fds(n), running.rss_bytes(n)) for n in ("scheduler", "executor")}
        kinds = rng.choices(["ok", "invalid", "timeout", "cancel"], weights=[4, 2, 2, 2], k=REQUESTS)
        gate = asyncio.Semaphore(CALLERS)

        async def run(kind: str) -> tuple[str, grpc.StatusCode]:
            async with gate:
                return kind, await _one(stub, kind, rng)

        results = await asyncio.gather(*(run(k) for k in kinds))
        wrong = [(k, c.name) for k, c in results if c not in EXPECTED[k]]
        assert not wrong, wrong[:20]
        assert {k for k, c in results if c != grpc.StatusCode.OK} >= {"invalid", "timeout", "cancel"}
        assert await _settled(running, executor, metrics_url) == (0, 0)
        for name, (fds, rss) in before.items():
            assert running.open_fds(name) <= fds + FD_SLACK, f"{name} holds more file descriptors"
            assert running.rss_bytes(name) <= rss + RSS_SLACK_BYTES, f"{name} grew by more than 64 MB"
        assert await _one(stub, "ok", rng) == grpc.StatusCode.OK
    assert all(running.alive().values())


CLIENT = r'''
import sys, grpc, json
from mlos.inference import grpc_service_pb2 as pb
def raw(text):
    return len(text).to_bytes(4, "little") + text
request = pb.ModelInferRequest(model_name="tinyllama-test")
request.inputs.add(name="text_input", datatype="BYTES", shape=[1])
request.raw_input_contents.append(raw(b"the quick brown fox"))
request.inputs.add(name="sampling_parameters", datatype="BYTES", shape=[1])
request.raw_input_contents.append(raw(json.dumps({"max_tokens": 400, "temperature": 0}).encode()))
request.inputs.add(name="stream", datatype="BOOL", shape=[1])
request.raw_input_contents.append(b"\x01")
channel = grpc.insecure_channel(sys.argv[1])
stream = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer",
                               request_serializer=pb.ModelInferRequest.SerializeToString,
                               response_deserializer=pb.ModelStreamInferResponse.FromString)
for reply in stream(iter([request]), timeout=60):
    print("token", flush=True)  # the first streamed token: the parent kills this process now
    break
import time; time.sleep(60)
'''
CRASHING_CLIENTS = 8
ROUNDS = 3


async def _spawn_client(addr: str) -> asyncio.subprocess.Process:
    import sys

    process = await asyncio.create_subprocess_exec(sys.executable, "-c", CLIENT, addr, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 60)
    assert line.strip() == b"token", "the client got no streamed token"
    return process


async def _generations_settled(executor: ExecutorClient) -> tuple[int, int]:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        gen = [m.generation for m in (await executor.status()).models if m.task == "generate"]
        active, waiting = sum(g.active for g in gen), sum(g.waiting for g in gen)
        if (active, waiting) == (0, 0) or time.monotonic() > deadline:
            return active, waiting
        await asyncio.sleep(0.1)


async def test_clients_killed_mid_stream_leave_nothing_behind(running) -> None:
    """Clients SIGKILLed after their first streamed token: every generation they started is
    cancelled (none keeps decoding for nobody), descriptors come back, and streaming goes on."""
    async with ExecutorClient(running.addr("executor")) as executor:
        (await _spawn_client(running.addr("scheduler"))).kill()  # warm: the model's contexts exist
        assert await _generations_settled(executor) == (0, 0)
        before = {n: running.open_fds(n) for n in ("scheduler", "executor")}
        cancelled_before = sum(m.generation.cancelled for m in (await executor.status()).models)
        for _ in range(ROUNDS):
            clients = await asyncio.gather(*(_spawn_client(running.addr("scheduler")) for _ in range(CRASHING_CLIENTS)))
            for process in clients:
                process.kill()
            await asyncio.gather(*(p.wait() for p in clients))
        assert await _generations_settled(executor) == (0, 0), "generations go on for clients that are gone"
        cancelled = sum(m.generation.cancelled for m in (await executor.status()).models) - cancelled_before
        assert cancelled >= CRASHING_CLIENTS * ROUNDS // 2, f"only {cancelled} generations were cancelled"
        for name, fds in before.items():
            assert running.open_fds(name) <= fds + FD_SLACK, f"{name} holds more file descriptors"
        survivor = await _spawn_client(running.addr("scheduler"))
        survivor.kill()
        await survivor.wait()
    assert all(running.alive().values())

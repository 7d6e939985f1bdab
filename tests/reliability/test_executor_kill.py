"""kill -9 of the executor with 200 requests in flight, under the launcher's supervision: every
request is answered or fails with an explicit status within its deadline (none hangs), only the
executor is restarted, and the same front door serves again. Long (a slow model keeps 200
requests queued). One kill in `make test`; five kills in a row, each with 200 in flight, in
`make test-long`. (../shared/research/reliability.md §b 11.)"""

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
from mlos_cli.supervise import RestartPolicy, Supervisor
from mlos_common.tensors import array_to_raw
from mlos_executor.client import ExecutorClient
from mlos_registry.client import RegistryClient
from mlos_registry.domain import ServingConfig

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(600)]

IN_FLIGHT = 200
DEADLINE_S = 20.0
ROWS, WIDTH = 8, 512
EXPLICIT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.FAILED_PRECONDITION,
            grpc.StatusCode.RESOURCE_EXHAUSTED}


def _slow() -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="slow")
    request.inputs.add(name="x", datatype="FP32", shape=[ROWS, WIDTH])
    request.raw_input_contents.append(array_to_raw(np.full((ROWS, WIDTH), 0.1, dtype=np.float32)))
    return request


async def _timed(stub: pbg.GRPCInferenceServiceStub) -> tuple[grpc.StatusCode, float]:
    sent = time.monotonic()
    try:
        await stub.ModelInfer(_slow(), timeout=DEADLINE_S)
        return grpc.StatusCode.OK, time.monotonic() - sent
    except aio.AioRpcError as exc:
        return exc.code(), time.monotonic() - sent


async def _kill_round(running, stub: pbg.GRPCInferenceServiceStub, events: list[dict]) -> str:
    """200 requests in flight, kill -9 of the executor, every outcome explicit and in time, served
    again after the restart; a line saying what happened."""
    calls = [asyncio.ensure_future(_timed(stub)) for _ in range(IN_FLIGHT)]
    async with ExecutorClient(running.addr("executor")) as executor:
        for _ in range(500):  # bounded: until the executor is running them
            if any(m.in_flight for m in (await executor.status()).models):
                break
            await asyncio.sleep(0.01)
    victim = running.pid("executor")
    restarts_before = sum(e.get("event") == "restarted" for e in events)
    running.suite.children["executor"].process.send_signal(signal.SIGKILL)
    outcomes = await asyncio.gather(*calls)
    assert all(took <= DEADLINE_S + 1.0 for _, took in outcomes), max(t for _, t in outcomes)
    failed = [code for code, _ in outcomes if code != grpc.StatusCode.OK]
    assert failed, "the kill should have failed some of the 200 requests in flight"
    assert set(failed) <= EXPLICIT, set(failed)
    for _ in range(600):  # bounded: until the restarted executor serves the model again
        restarted = sum(e.get("event") == "restarted" for e in events) > restarts_before
        if restarted and (await _timed(stub))[0] == grpc.StatusCode.OK:
            break
        await asyncio.sleep(0.1)
    assert (await _timed(stub))[0] == grpc.StatusCode.OK
    assert running.pid("executor") != victim
    return (f"{IN_FLIGHT} in flight: {len(failed)} failed explicitly ({sorted(c.name for c in set(failed))}), "
            f"slowest {max(t for _, t in outcomes):.2f}s")


async def _supervised_kills(running, tmp_path, rounds: int) -> None:
    suite = running.suite
    if "slow" not in {m.name for m in await _listed(running)}:
        path = build_slow_model(tmp_path / "slow.onnx", width=WIDTH)
        async with RegistryClient(running.addr("registry")) as registry:
            await registry.register("slow", str(path), config=ServingConfig(max_batch_size=ROWS))
    events: list[dict] = []
    stop = asyncio.Event()
    policy = RestartPolicy(initial_backoff_s=0.2, max_backoff_s=1.0, max_restarts=rounds + 1)
    supervising = asyncio.ensure_future(Supervisor(suite.children, suite.restart, policy, events.append).run(stop))
    others = {n: running.pid(n) for n in ("registry", "predictor", "scheduler")}
    try:
        async with aio.insecure_channel(running.addr("scheduler")) as channel:
            stub = pbg.GRPCInferenceServiceStub(channel)
            await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="slow"), timeout=60)
            assert (await _timed(stub))[0] == grpc.StatusCode.OK
            for _ in range(rounds):
                print(await _kill_round(running, stub, events))
        assert {n: running.pid(n) for n in others} == others, "only the executor may be restarted"
    finally:
        stop.set()
        await supervising


async def _listed(running) -> list:
    async with RegistryClient(running.addr("registry")) as registry:
        return await registry.list()


async def test_executor_killed_with_200_in_flight_is_restarted_and_nothing_hangs(running, tmp_path) -> None:
    await _supervised_kills(running, tmp_path, rounds=1)


@pytest.mark.long
async def test_five_kills_in_a_row_each_with_200_in_flight(running, tmp_path) -> None:
    await _supervised_kills(running, tmp_path, rounds=5)

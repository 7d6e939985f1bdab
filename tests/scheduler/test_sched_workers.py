"""MLOS_SCHEDULER_WORKERS=2: a supervisor and two real scheduler workers behind one gRPC and one
REST port (SO_REUSEPORT), with the real registry and executor of `stack`: correct answers on many
connections, both workers serving, a killed worker restarted, SIGTERM draining all, and a port
in use still a clear start-up error."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import onnxruntime as ort
import pytest
import pytest_asyncio
from grpc import aio
from proc_testkit import alive
from prometheus_client import CollectorRegistry
from sched_testkit import Stack, assert_matches, infer_request, ort_run, response_arrays
from workers_testkit import Supervised, run_scheduler, supervised, supervisor_env, until

from mlos.inference import grpc_service_pb2 as pb
from mlos.inference import grpc_service_pb2_grpc as pbg
from mlos_scheduler.config import SchedulerSettings
from mlos_scheduler.supervisor import Supervisor
from mlos_scheduler.worker_metrics import SupervisorMetrics

pytestmark = pytest.mark.asyncio(loop_scope="session")

CONNECTIONS = 16


def _env(stack: Stack, **settings) -> dict[str, str]:
    settings.setdefault("registry_addr", stack.settings.registry_addr)
    return supervisor_env(executor_addrs=stack.settings.executor_addrs, **settings)


async def test_a_worker_gets_every_setting_of_its_supervisor(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = SchedulerSettings(workers=3, max_queue_size=7, startup_models="iris", executor_addrs="a:1,b:2")
    env = Supervisor(settings, 4001, 4002, SupervisorMetrics(CollectorRegistry()))._env(2)
    for key in [k for k in os.environ if k.startswith("MLOS_SCHEDULER_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("MLOS_SCHEDULER_"):
            monkeypatch.setenv(key, value)
    worker = SchedulerSettings()
    assert worker == settings.model_copy(update={
        "workers": 1, "reuse_port": True, "worker_index": 2, "grpc_port": 4001, "http_port": 4002, "metrics_port": 0,
    })


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def workers(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Supervised]:
    async with supervised(_env(stack), tmp_path_factory.mktemp("workers") / "scheduler.log") as sup:
        yield sup


async def _answers_on_fresh_connections(stack: Stack, addr: str, connections: int, rounds: int) -> int:
    """`connections` channels (each its own TCP connection, so the kernel picks a worker for each),
    `rounds` iris and ocr_cls requests on each, checked against onnxruntime; returns the count."""
    channels = [aio.insecure_channel(addr, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(connections)]

    async def one(channel: aio.Channel, seed: int) -> None:
        stub = pbg.GRPCInferenceServiceStub(channel)
        assert (await stub.ServerReady(pb.ServerReadyRequest(), timeout=10)).ready
        for r in range(rounds):
            for name in ("iris", "ocr_cls"):
                model = stack.models[name]
                feeds = model.sample_inputs(batch=1 + (seed + r) % 3, seed=seed * 100 + r)
                resp = await stub.ModelInfer(infer_request(name, feeds), timeout=30)
                assert_matches(response_arrays(resp), ort_run(model, feeds))

    try:
        await asyncio.gather(*(one(c, i) for i, c in enumerate(channels)))
    finally:
        for channel in channels:
            await channel.close()
    return connections * rounds


async def test_many_connections_get_correct_answers_from_both_workers(stack: Stack, workers: Supervised) -> None:
    assert workers.line["workers"] == 2
    sent = await _answers_on_fresh_connections(stack, workers.addr, CONNECTIONS, rounds=3)
    served = await workers.per_worker("mlos_inference_request_success_total", model="ocr_cls")
    assert set(served) == {"0", "1"}, served  # 2**-15 odds that 16 connections all land on one worker
    assert all(n > 0 for n in served.values()), served
    assert sum(served.values()) == sent, served
    up = await workers.per_worker("mlos_scheduler_worker_up")
    assert up == {"0": 1.0, "1": 1.0}


async def test_rest_on_the_shared_port_is_ready_on_every_connection(stack: Stack, workers: Supervised) -> None:
    iris = stack.models["iris"]
    feeds = iris.sample_inputs(batch=2, seed=5)
    body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [2, 4], "data": feeds["X"].ravel().tolist()}]}
    for _ in range(8):  # a new connection each time: whichever worker answers is ready
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{workers.line['http_port']}", timeout=30) as http:
            assert (await http.get("/v2/health/ready")).status_code == 200
            reply = (await http.post("/v2/models/iris/infer", json=body)).json()
            label = next(o for o in reply["outputs"] if o["name"] == "label")
            assert label["data"] == ort_run(iris, feeds)["label"].ravel().tolist()


async def test_a_second_supervisor_on_the_same_ports_fails_clearly(stack: Stack, workers: Supervised, tmp_path: Path) -> None:
    port = workers.line["grpc_port"]
    env = _env(stack, grpc_port=port)
    process, line = await run_scheduler(env, tmp_path / "second.log")
    assert line is None
    assert await process.wait() == 1
    log = (tmp_path / "second.log").read_text()
    assert f"cannot listen on 127.0.0.1:{port}: the address is already in use" in log, log
    assert "Traceback" not in log


@pytest.mark.parametrize("which", ["grpc_port", "http_port"])
async def test_a_port_held_by_another_process_fails_clearly(stack: Stack, tmp_path: Path, which: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        process, line = await run_scheduler(_env(stack, **{which: port}), tmp_path / "busy.log")
        assert line is None
        assert await process.wait() == 1
    log = (tmp_path / "busy.log").read_text()
    assert f"cannot listen on 127.0.0.1:{port}: the address is already in use" in log, log
    assert "Traceback" not in log and "scheduler[w" not in log  # no worker was started


async def test_a_killed_worker_is_restarted_and_service_goes_on(stack: Stack, workers: Supervised) -> None:
    before = await workers.worker_pids()
    os.kill(before["0"], signal.SIGKILL)

    async def replaced() -> bool:
        pids = await workers.worker_pids()
        up = await workers.per_worker("mlos_scheduler_worker_up")
        return pids.get("0") not in (None, before["0"]) and up == {"0": 1.0, "1": 1.0}

    await until(replaced, "worker 0 to be restarted and ready")
    restarts = (await workers.metrics())[("mlos_scheduler_worker_restarts_total", ())]
    assert restarts == 1
    assert (await workers.worker_pids())["1"] == before["1"]
    assert "worker 0 exited with code -9; restarting it (1 of 5)" in workers.log()
    await _answers_on_fresh_connections(stack, workers.addr, CONNECTIONS, rounds=1)


@pytest.fixture(scope="module")
def detector() -> Path:
    """rapidocr's text detector (50-120 ms per 640x640 image here): work that is surely still
    running when the signal comes."""
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    assert spec is not None and spec.submodule_search_locations, "rapidocr-onnxruntime is installed by make install"
    return Path(spec.submodule_search_locations[0]) / "models" / "ch_PP-OCRv4_det_infer.onnx"


async def test_sigterm_drains_every_worker_and_exits_zero(stack: Stack, tmp_path: Path, detector: Path) -> None:
    await stack.registry.register("workers_det", str(detector))
    image = np.random.default_rng(3).random((1, 3, 640, 640), dtype=np.float32)
    want = ort.InferenceSession(str(detector), providers=["CPUExecutionProvider"]).run(None, {"x": image})[0]
    request = infer_request("workers_det", {"x": image})
    async with supervised(_env(stack), tmp_path / "drain.log") as sup:
        pids = await sup.worker_pids()
        channels = [aio.insecure_channel(sup.addr, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(4)]
        stubs = [pbg.GRPCInferenceServiceStub(c) for c in channels]
        await stubs[0].ModelInfer(request, timeout=60)  # loaded on the executor; each worker loads on first use
        calls = [asyncio.ensure_future(s.ModelInfer(request, timeout=60)) for s in stubs for _ in range(2)]

        async def running() -> bool:
            return stack.executor_core.in_flight > 0

        await until(running, "the detector to run on the executor", interval_s=0.005, attempts=6000)
        sup.process.send_signal(signal.SIGTERM)  # with work on the executor: that work must finish
        code = await asyncio.wait_for(sup.process.wait(), 30)
        results = await asyncio.gather(*calls, return_exceptions=True)
        for channel in channels:
            await channel.close()
    assert code == 0, sup.log()
    answered = [r for r in results if not isinstance(r, BaseException)]
    assert answered, (results, sup.log())  # the requests running at SIGTERM were answered
    for result in answered:
        assert np.allclose(response_arrays(result)["sigmoid_0.tmp_0"], want, atol=1e-5)
    for error in (r for r in results if isinstance(r, BaseException)):
        # sent as the ports closed: refused (UNAVAILABLE) or dropped before any handler ran (CANCELLED)
        assert isinstance(error, aio.AioRpcError), error
        assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), (error, sup.log())
    log = sup.log()
    for index in ("0", "1"):
        assert f"scheduler[w{index}]: draining" in log and f"scheduler[w{index}]: stopped" in log, log
    assert not [pid for pid in pids.values() if alive(pid)]


async def test_workers_that_never_get_ready_stop_the_supervisor(stack: Stack, tmp_path: Path) -> None:
    """A registry nobody answers on: the workers start but are never SERVING."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        nowhere = f"127.0.0.1:{unused.getsockname()[1]}"
    # 6 s: long enough for both workers to finish starting (imports take ~2 s on a busy 2-core
    # host), so each stops gracefully; short enough to keep the test quick.
    env = _env(stack, registry_addr=nowhere, worker_ready_timeout_s=6)
    process, line = await run_scheduler(env, tmp_path / "never.log")
    assert line is None
    assert await process.wait() == 1
    log = (tmp_path / "never.log").read_text()
    assert "cannot start: scheduler worker" in log and "not ready within 6s" in log, log
    assert "scheduler[w0]: stopped" in log and "scheduler[w1]: stopped" in log, log


async def test_past_the_restart_limit_the_supervisor_exits_non_zero(stack: Stack, tmp_path: Path) -> None:
    async with supervised(_env(stack, worker_restart_limit=0), tmp_path / "limit.log") as sup:
        pids = await sup.worker_pids()
        os.kill(pids["1"], signal.SIGKILL)
        assert await asyncio.wait_for(sup.process.wait(), 30) == 1
    assert "worker 1 exited with code -9; restart limit (0) reached, stopping" in sup.log()
    assert not alive(pids["0"])


async def test_workers_stop_when_the_supervisor_is_killed(stack: Stack, tmp_path: Path) -> None:
    async with supervised(_env(stack), tmp_path / "orphans.log") as sup:
        pids = await sup.worker_pids()
        sup.process.kill()
        await sup.process.wait()

        async def gone() -> bool:
            return not any(alive(pid) for pid in pids.values())

        await until(gone, "the workers to stop after their supervisor was killed")
    assert "scheduler[w0]: draining" in sup.log() and "scheduler[w1]: draining" in sup.log()

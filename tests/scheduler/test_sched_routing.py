"""Routing over several executors, through real gRPC: placement, predicted completion, failover,
the circuit breaker and its probe, reloading on a restarted executor, truthful readiness."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import numpy as np
import onnx
import pytest
from grpc import aio
from onnx import TensorProto, helper, numpy_helper
from sched_testkit import (
    InProcessExecutor,
    Stack,
    assert_matches,
    infer_request,
    ort_run,
    response_arrays,
    running_stack,
)
from workers_testkit import until

from mlos.inference import grpc_service_pb2 as pb
from mlos_cli.demo import DemoModel
from mlos_common.errors import Internal, Unavailable
from mlos_executor.client import relay
from mlos_scheduler.breaker import Breaker, BreakerState
from mlos_scheduler.dispatch import may_retry

pytestmark = pytest.mark.asyncio(loop_scope="session")

LAYERS = 24  # 24 x (512x512 @ 512x512): a few hundred ms per batch on one core, whatever the rows


@pytest.fixture(scope="session")
def slow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Y = X + mean(tanh(...tanh(X^T X W)...W)): heavy work that depends on the input (not folded away)."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32) / 32, "W")
    nodes = [helper.make_node("Transpose", ["X"], ["XT"]), helper.make_node("MatMul", ["XT", "X"], ["T0"])]
    for i in range(LAYERS):
        nodes += [helper.make_node("MatMul", [f"T{i}", "W"], [f"M{i}"]), helper.make_node("Tanh", [f"M{i}"], [f"T{i + 1}"])]
    nodes += [helper.make_node("ReduceMean", [f"T{LAYERS}"], ["S"], keepdims=0), helper.make_node("Add", ["X", "S"], ["Y"])]
    graph = helper.make_graph(
        nodes, "slow", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 512])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 512])], [w],
    )
    path = tmp_path_factory.mktemp("slow") / "slow.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def executions(executor: InProcessExecutor, name: str) -> int:
    loaded = executor.core.models.get((name, 1))
    return loaded.executions if loaded is not None else 0


def metric(stack: Stack, name: str, labels: dict[str, str]) -> float:
    return stack.metrics.get_sample_value(name, labels) or 0.0


async def ask_iris(stack: Stack, seed: int, timeout: float = 20) -> None:
    iris = stack.models["iris"]
    feeds = iris.sample_inputs(batch=2, seed=seed)
    resp = await stack.stub.ModelInfer(infer_request("iris", feeds), timeout=timeout)
    assert_matches(response_arrays(resp), ort_run(iris, feeds))


async def ready(stack: Stack) -> tuple[bool, bool]:
    server = (await stack.stub.ServerReady(pb.ServerReadyRequest())).ready
    model = (await stack.stub.ModelReady(pb.ModelReadyRequest(name="iris"))).ready
    return server, model


async def test_batches_go_to_the_holder_with_least_predicted_completion(
    tmp_path: Path, demo: dict[str, DemoModel], slow_model: Path
) -> None:
    async with running_stack(tmp_path, demo, load=(), extra={"slow": slow_model}, executors=2) as s:
        a, b = s.core.executors
        d = s.core.dispatcher
        await d.replicate(await s.core.lookup("slow", 0), a, 60)
        await d.replicate(await s.core.lookup("iris", 0), a, 60)
        await s.core.load("slow")  # a usable executor holds them: placement keeps them there
        await s.core.load("iris")
        await d.replicate(s.core.find("iris", "").model, b, 60)
        assert d.placed[("slow", 1)] == [a] and d.placed[("iris", 1)] == [a, b]
        ea, eb = s.executors

        for i in range(4):  # both idle: the first holder
            await ask_iris(s, i)
        assert (executions(ea, "iris"), executions(eb, "iris")) == (4, 0)

        x = np.random.default_rng(1).standard_normal((2, 512)).astype(np.float32)
        want = ort_run(DemoModel("slow", slow_model, "test"), {"X": x})
        # One slow batch first: its measured round trip becomes the estimate a's outstanding work counts.
        assert_matches(response_arrays(await s.stub.ModelInfer(infer_request("slow", {"X": x}), timeout=60)), want)
        slow = asyncio.ensure_future(s.stub.ModelInfer(infer_request("slow", {"X": x}), timeout=60))

        async def a_busy() -> bool:
            return d.book.outstanding_s(a) > 0

        await until(a_busy, "the slow batch to reach executor a", attempts=2000, interval_s=0.005)
        for i in range(4):  # a is busy with the slow model: b completes sooner
            await ask_iris(s, 10 + i)
        assert not slow.done(), "the slow batch finished before the test could route around it"
        assert (executions(ea, "iris"), executions(eb, "iris")) == (4, 4)
        assert_matches(response_arrays(await slow), want)
        assert d.book.outstanding_s(a) == 0


async def test_failover_moves_the_model_and_opens_the_breaker(tmp_path: Path, demo: dict[str, DemoModel]) -> None:
    async with running_stack(tmp_path, demo, load=("iris",), executors=2, breaker_failures=1, breaker_open_s=3600) as s:
        a, b = s.core.executors
        ea, eb = s.executors
        d = s.core.dispatcher
        assert d.placed[("iris", 1)] == [a]
        await ask_iris(s, 0)
        await ea.stop()
        for i in range(3):  # each answered: the first by retrying on b after loading iris there
            await ask_iris(s, i + 1, timeout=10)
        assert executions(eb, "iris") == 3 and d.placed[("iris", 1)] == [a, b]
        assert d.breakers[a.addr].state is BreakerState.OPEN
        assert metric(s, "mlos_scheduler_executor_breaker_state", {"executor": a.addr}) == BreakerState.OPEN
        assert metric(s, "mlos_scheduler_batch_retries_total", {"executor": a.addr, "reason": "unavailable"}) == 1
        assert metric(s, "mlos_scheduler_model_reloads_total", {"executor": b.addr}) == 1
        assert await ready(s) == (True, True)  # iris is held by a usable executor


async def test_breaker_probe_closes_it_and_readiness_follows(tmp_path: Path, demo: dict[str, DemoModel]) -> None:
    async with running_stack(tmp_path, demo, load=("iris",), executors=2, breaker_failures=1, breaker_open_s=0.2) as s:
        a, b = s.core.executors
        ea, eb = s.executors
        d = s.core.dispatcher
        await ea.stop()
        await eb.stop()
        with pytest.raises(aio.AioRpcError) as err:
            await s.stub.ModelInfer(infer_request("iris", s.models["iris"].sample_inputs(seed=1)), timeout=10)
        assert err.value.code().name == "UNAVAILABLE", err.value.details()
        assert a.addr in err.value.details() and b.addr in err.value.details()
        assert d.breakers[a.addr].state is not BreakerState.CLOSED and d.breakers[b.addr].state is not BreakerState.CLOSED
        assert await ready(s) == (False, False)  # iris has no usable executor

        await eb.restart()  # same port, nothing loaded: the probe closes b's breaker, iris moves there

        async def back() -> bool:
            return await ready(s) == (True, True)

        await until(back, "b's probe to close its breaker and iris to be loaded there", attempts=200, interval_s=0.05)
        assert d.breakers[b.addr].state is BreakerState.CLOSED and ("iris", 1) in eb.core.models
        assert d.breakers[b.addr].opened_count >= 1  # it did open; a probe, not a request, closed it
        await ask_iris(s, 2)
        assert executions(eb, "iris") == 1


async def test_a_restarted_executor_gets_the_model_again(tmp_path: Path, demo: dict[str, DemoModel]) -> None:
    async with running_stack(tmp_path, demo, load=("iris",)) as s:
        (ex,) = s.executors
        await ask_iris(s, 0)
        await ex.restart()  # a fresh executor on the same address has lost every model
        assert ("iris", 1) not in ex.core.models
        await asyncio.gather(*(ask_iris(s, i, timeout=10) for i in range(4)))
        assert executions(ex, "iris") >= 1
        addr = s.core.executors[0].addr
        assert metric(s, "mlos_scheduler_model_reloads_total", {"executor": addr}) == 1  # once for them all
        assert metric(s, "mlos_scheduler_batch_retries_total", {"executor": addr, "reason": "not_loaded"}) >= 1


async def test_only_transport_failures_are_retried() -> None:
    unknown = relay(aio.AioRpcError(_code("UNKNOWN"), aio.Metadata(), aio.Metadata(), "boom"), "e:1")
    assert isinstance(unknown, Internal) and not may_retry(unknown, output_seen=False)
    gone = relay(aio.AioRpcError(_code("UNAVAILABLE"), aio.Metadata(), aio.Metadata(), "refused"), "e:1")
    assert isinstance(gone, Unavailable) and may_retry(gone, output_seen=False)
    assert not may_retry(gone, output_seen=True)  # a stream that produced output is never retried


def _code(name: str) -> grpc.StatusCode:
    return grpc.StatusCode[name]


async def test_breaker_opens_after_k_failures_and_probes_once() -> None:
    now = [0.0]
    breaker = Breaker(failures_to_open=3, open_s=2.0, clock=lambda: now[0])
    assert not breaker.failed() and not breaker.failed()
    breaker.succeeded()  # an answer resets the count
    assert [breaker.failed() for _ in range(3)] == [False, False, True]
    assert breaker.state is BreakerState.OPEN and not breaker.usable
    assert not breaker.start_probe()  # too early
    now[0] = 2.0
    assert breaker.start_probe() and breaker.state is BreakerState.HALF_OPEN
    assert not breaker.start_probe()  # one probe at a time
    assert breaker.failed() and breaker.state is BreakerState.OPEN  # failed probe: open again
    now[0] = 4.0
    assert breaker.start_probe()
    breaker.succeeded()
    assert breaker.state is BreakerState.CLOSED and breaker.usable

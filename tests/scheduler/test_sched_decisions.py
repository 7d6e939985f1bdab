"""The scheduler's decisions from the predictor's scores, end to end through real gRPC: a real
predictor (books + GetScores, its documented priors answering), a real registry, two real
executors and the scheduler with its PredictorLink. Nothing is set by hand: the scores come from
telemetry - the scheduler's own request telemetry for clients, health samples streamed by a real
TelemetryStreamer for an executor - through the predictor's GetScores into the scheduler's table."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest
import pytest_asyncio
from grpc import aio
from predictor_testkit import Running, poll, start_predictor
from sched_testkit import InProcessExecutor, Stack, assert_matches, infer_request, ort_run, response_arrays, running_stack

from mlos.inference import grpc_service_pb2 as pb
from mlos.predictor.v1 import predictor_pb2
from mlos_cli.demo import DemoModel
from mlos_predictor.client import PredictorClient, TelemetryStreamer

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def predictor() -> AsyncIterator[Running]:
    running = await start_predictor()
    yield running
    await running.server.stop(None)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def decided(
    tmp_path_factory: pytest.TempPathFactory, demo: dict[str, DemoModel], predictor: Running
) -> AsyncIterator[Stack]:
    async with running_stack(
        tmp_path_factory.mktemp("decisions"), demo, load=("iris",), executors=2, predictor_addr=predictor.addr,
        client_window_s=0.1, scores_interval_ms=50,
    ) as s:
        yield s


def as_client(name: str) -> tuple[tuple[str, str], ...]:
    return (("x-mlos-client", name),)


async def ask(stack: Stack, client: str, seed: int = 0) -> None:
    iris = stack.models["iris"]
    feeds = iris.sample_inputs(batch=2, seed=seed)
    resp = await stack.stub.ModelInfer(infer_request("iris", feeds), metadata=as_client(client), timeout=20)
    assert_matches(response_arrays(resp), ort_run(iris, feeds))


async def refused_with(
    stack: Stack, client: str, code: grpc.StatusCode, request: pb.ModelInferRequest | None = None
) -> list[aio.AioRpcError | None]:
    """Sends `request` (default: a good iris request) as `client` until one is refused with
    `code` (bounded); returns what each attempt got (None = served), the refusal last."""
    request = request or infer_request("iris", {"X": np.ones((2, 4), dtype=np.float32)})
    got: list[aio.AioRpcError | None] = []

    async def refused() -> bool:
        try:
            await stack.stub.ModelInfer(request, metadata=as_client(client), timeout=20)
            got.append(None)
        except aio.AioRpcError as exc:
            got.append(exc)
            return exc.code() == code
        return False

    await poll(refused, timeout_s=10, what=f"client {client!r} to be refused with {code.name}")
    return got


async def test_a_client_sending_malformed_requests_is_refused_while_another_is_served(decided: Stack) -> None:
    await ask(decided, "alice")  # a well-behaved client, known to the predictor
    wrong_shape = infer_request("iris", {"X": np.zeros((1, 3), dtype=np.float32)})
    *before, error = await refused_with(decided, "mallet", grpc.StatusCode.PERMISSION_DENIED, wrong_shape)
    assert before and all(e is not None and e.code() == grpc.StatusCode.INVALID_ARGUMENT for e in before)
    assert error is not None
    details = error.details()
    assert "client 'mallet' is refused" in details and "threat_block_score 0.8" in details
    assert "malformed_fraction 1.00" in details, details  # the predictor's reason, in its words
    assert len(await refused_with(decided, "mallet", grpc.StatusCode.PERMISSION_DENIED)) == 1  # whatever it sends
    await ask(decided, "alice", seed=1)  # still served
    labels = {"decision": "refused", "code": "PERMISSION_DENIED", "reason": "malformed"}
    assert (decided.metrics.get_sample_value("mlos_scheduler_threat_decisions_total", labels) or 0) >= 2


async def test_a_client_flooding_nan_is_refused(decided: Stack) -> None:
    nan = infer_request("iris", {"X": np.full((2, 4), np.nan, dtype=np.float32)})
    *served, error = await refused_with(decided, "nancy", grpc.StatusCode.PERMISSION_DENIED, nan)
    assert served and all(e is None for e in served)  # NaN is a float: served, but the values are sampled
    assert error is not None and "nonfinite_fraction 1.00" in error.details(), error
    await ask(decided, "alice", seed=2)


async def test_a_bursting_client_is_rate_limited(decided: Stack, predictor: Running) -> None:
    await ask(decided, "bursty")  # one request in a window: its usual rate

    async def known() -> bool:
        async with PredictorClient(predictor.addr) as c:
            return any(s.entity == "bursty" for s in (await c.scores("threat")).scores)

    await poll(known, what="the predictor to have bursty's first window")
    await asyncio.gather(*(ask(decided, "bursty", seed=i) for i in range(60)), return_exceptions=True)
    *_, error = await refused_with(decided, "bursty", grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert error is not None
    details = error.details()
    assert "client 'bursty' is rate-limited" in details and "burst_ratio" in details, details
    assert "refused for the next" in details and "send fewer requests per second" in details
    await ask(decided, "alice", seed=3)


def health(executor_id: str, errors: int, uptime_s: float) -> predictor_pb2.HealthSample:
    return predictor_pb2.HealthSample(
        executor_id=executor_id, unix_ms=int(time.time() * 1000), window_s=1.0, executions=100, errors=errors,
        latency_drift=1.0, rss_bytes=100 << 20, uptime_s=uptime_s, loaded_models=1,
    )


def executions(executor: InProcessExecutor) -> int:
    loaded = executor.core.models.get(("iris", 1))
    return loaded.executions if loaded is not None else 0


async def test_an_executor_reporting_errors_gets_no_work_while_a_healthy_one_exists(
    decided: Stack, predictor: Running
) -> None:
    d, risk = decided.core.dispatcher, decided.core.dispatcher.risk
    assert risk is not None
    [first] = d.placed[("iris", 1)]
    second = next(e for e in decided.core.executors if e is not first)
    ex_first, ex_second = (decided.executors[decided.core.executors.index(e)] for e in (first, second))
    async with TelemetryStreamer(predictor.addr, flush_interval_s=0.01) as streamer:
        for uptime_s, errors in ((10.0, 0), (11.0, 60), (12.0, 90)):  # the first executor degrades
            streamer.offer(health(first.executor_id, errors, uptime_s))
            await asyncio.sleep(0.002)  # distinct unix_ms: the predictor keeps each executor's samples in order

        async def flagged() -> bool:
            return first.addr in risk.flagged

        await poll(flagged, what="the scheduler to see the first executor's failure score")
    score = decided.core.scores.above("failure", first.executor_id) if decided.core.scores else None
    assert score is not None and score.value >= 0.5 and "error_rate 0.90" in score.reason

    await ask(decided, "worker-4", seed=4)  # starts loading iris on the healthy executor

    async def moved() -> bool:
        return second in d.placed[("iris", 1)]

    await poll(moved, what="iris to be loaded on the executor that is not risky")
    before_first, before_second = executions(ex_first), executions(ex_second)
    for seed in range(5, 13):  # a client each: one client's eight requests at once would look like a burst
        await ask(decided, f"worker-{seed}", seed=seed)
    assert executions(ex_first) == before_first  # no traffic for the risky executor
    assert executions(ex_second) == before_second + 8

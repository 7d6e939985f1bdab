"""The front door's watch through real gRPC (ModelInfer, ModelStreamInfer) and REST: who sent what
(per client and per model) and the threat gate's refusals, on a real registry + executor +
scheduler. The scheduler is built as with a predictor but its link is not started, so the tests
drain the windows and set the scores themselves (test_predictor_link.py runs the real link)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc
import httpx
import numpy as np
import pytest
import pytest_asyncio
from grpc import aio
from sched_testkit import Stack, infer_request, running_stack

from mlos_cli.demo import DemoModel
from mlos_scheduler.client_stats import ClientWindow
from mlos_scheduler.rest import start_rest
from mlos_scheduler.scores import Score

pytestmark = pytest.mark.asyncio(loop_scope="session")

NOWHERE = "127.0.0.1:9"  # a predictor address nothing listens on: the link is not started here


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def door_stack(tmp_path_factory: pytest.TempPathFactory, demo: dict[str, DemoModel]) -> AsyncIterator[Stack]:
    async with running_stack(
        tmp_path_factory.mktemp("door"), demo, load=("iris",), predictor_addr=NOWHERE, start_link=False
    ) as s:
        yield s


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def door_http(door_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    port, close = await start_rest(door_stack.settings.model_copy(update={"http_port": 0}), door_stack.core)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield client
    await close()


@pytest.fixture
def watched(door_stack: Stack) -> Stack:
    """The door stack with empty windows and no scores."""
    door = door_stack.core.door
    assert door.clients is not None and door.rates is not None and door_stack.core.scores is not None
    door.clients.drain()
    door.rates.drain()
    door_stack.core.scores.replace("threat", [])
    return door_stack


def windows(stack: Stack) -> dict[str, ClientWindow]:
    assert stack.core.door.clients is not None
    return {w.client: w for w in stack.core.door.clients.drain()}


def as_client(name: str) -> tuple[tuple[str, str], ...]:
    return (("x-mlos-client", name),)


def iris_feeds(stack: Stack, batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    return stack.models["iris"].sample_inputs(batch=batch, seed=seed)


async def test_requests_are_counted_per_client_and_per_model(watched: Stack) -> None:
    feeds = iris_feeds(watched)
    nan = {"X": np.full((2, 4), np.nan, dtype=np.float32)}
    for f in (feeds, feeds, nan):  # a NaN flood is served (the model takes floats) but seen
        await watched.stub.ModelInfer(infer_request("iris", f), metadata=as_client("alice"), timeout=30)
    await watched.stub.ModelInfer(infer_request("iris", feeds), timeout=30)  # no header: the peer's host
    seen = windows(watched)
    alice, host = seen["alice"], seen["127.0.0.1"]
    assert (alice.requests, alice.malformed, alice.shape_errors) == (3, 0, 0)
    assert (alice.values_sampled, alice.nonfinite) == (24, 8)
    assert alice.value_absmax == pytest.approx(float(np.abs(feeds["X"]).max()))
    assert alice.bytes_max == alice.bytes_mean == feeds["X"].nbytes  # gRPC: the input tensors' bytes
    assert host.requests == 1
    assert watched.core.door.rates is not None and watched.core.door.rates.drain() == [("iris", 4)]


async def test_malformed_requests_and_shape_errors_are_counted(watched: Stack) -> None:
    feeds = iris_feeds(watched)
    ragged = infer_request("iris", feeds)
    ragged.raw_input_contents[0] = ragged.raw_input_contents[0][:-4]  # bytes do not fit the shape
    wrong_shape = infer_request("iris", {"X": np.zeros((2, 3), dtype=np.float32)})
    wrong_type = infer_request("iris", {"X": np.zeros((2, 4), dtype=np.float64)})
    bad_param = infer_request("iris", feeds)
    bad_param.parameters["priority"].string_param = "high"
    unknown_model = infer_request("no-such-model", feeds)
    codes = []
    for request in (ragged, wrong_shape, wrong_type, bad_param, unknown_model):
        with pytest.raises(aio.AioRpcError) as err:
            await watched.stub.ModelInfer(request, metadata=as_client("mallet"), timeout=30)
        codes.append(err.value.code())
    assert codes == [grpc.StatusCode.INVALID_ARGUMENT] * 4 + [grpc.StatusCode.NOT_FOUND]
    mallet = windows(watched)["mallet"]
    assert (mallet.requests, mallet.malformed, mallet.shape_errors) == (5, 4, 2)
    assert watched.core.door.rates is not None and watched.core.door.rates.drain() == [("iris", 4)]  # not the unknown one


BAD_HEADER = "x-mlos-client must be 1 to 128 printable ASCII characters"


@pytest.mark.parametrize("header", ["", "x" * 129])
async def test_a_bad_client_header_is_refused_and_counted_for_the_host(watched: Stack, header: str) -> None:
    with pytest.raises(aio.AioRpcError) as err:
        await watched.stub.ModelInfer(infer_request("iris", iris_feeds(watched)), metadata=as_client(header), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert BAD_HEADER in err.value.details()
    host = windows(watched)["127.0.0.1"]
    assert (host.requests, host.malformed) == (1, 1)


@pytest.mark.parametrize("header", [b"tab\there", "caf\u00e9".encode("latin-1")])
async def test_a_bad_rest_client_header_is_refused(watched: Stack, door_http: httpx.AsyncClient, header: bytes) -> None:
    resp = await door_http.post("/v2/models/iris/infer", content=b"{}", headers={"x-mlos-client": header})
    assert resp.status_code == 400 and BAD_HEADER in resp.json()["error"]
    assert windows(watched)["127.0.0.1"].malformed == 1


async def test_stream_messages_are_counted_one_by_one(watched: Stack) -> None:
    good = infer_request("iris", iris_feeds(watched), id="ok")
    bad = infer_request("iris", {"X": np.zeros((1, 5), dtype=np.float32)}, id="bad")

    async def requests():
        for r in (good, bad, good):
            yield r

    replies = [r async for r in watched.stub.ModelStreamInfer(requests(), metadata=as_client("bob"), timeout=30)]
    assert sorted(bool(r.error_message) for r in replies) == [False, False, True]
    bob = windows(watched)["bob"]
    assert (bob.requests, bob.malformed, bob.shape_errors, bob.values_sampled) == (3, 1, 1, 21)


async def test_rest_requests_are_counted_per_client(watched: Stack, door_http: httpx.AsyncClient) -> None:
    body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [1.0, 2.0, -30.0, 4.0]}]}
    raw = json.dumps(body).encode()
    ok = await door_http.post("/v2/models/iris/infer", content=raw, headers={"x-mlos-client": "carol"})
    assert ok.status_code == 200, ok.text
    broken = await door_http.post("/v2/models/iris/infer", content=b"{not json", headers={"x-mlos-client": "carol"})
    assert broken.status_code == 400
    anonymous = await door_http.post("/v2/models/iris/infer", json=body)
    assert anonymous.status_code == 200
    seen = windows(watched)
    carol = seen["carol"]
    assert (carol.requests, carol.malformed, carol.values_sampled, carol.value_absmax) == (2, 1, 4, 30.0)
    assert carol.bytes_max == len(raw)  # the body's length
    assert seen["127.0.0.1"].requests == 1


def flag(stack: Stack, *scores: tuple[str, float, str]) -> None:
    assert stack.core.scores is not None
    now = stack.core.scores.clock()
    stack.core.scores.replace("threat", [Score(c, v, reason, 0, now) for c, v, reason in scores])


def refused(stack: Stack, code: str, reason: str) -> float:
    labels = {"decision": "refused", "code": code, "reason": reason}
    return stack.metrics.get_sample_value("mlos_scheduler_threat_decisions_total", labels) or 0.0


async def test_flagged_clients_are_refused_at_every_door(watched: Stack, door_http: httpx.AsyncClient) -> None:
    flag(watched, ("mallory", 0.95, "burst_ratio 14 (rate 14x its usual)"), ("eve", 0.9, "nonfinite_fraction 1.0"),
         ("alice", 0.3, "steady"))
    before = refused(watched, "RESOURCE_EXHAUSTED", "burst"), refused(watched, "PERMISSION_DENIED", "nonfinite")
    request = infer_request("iris", iris_feeds(watched))
    with pytest.raises(aio.AioRpcError) as err:
        await watched.stub.ModelInfer(request, metadata=as_client("mallory"), timeout=30)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "'mallory' is rate-limited" in err.value.details() and "0.95" in err.value.details()
    with pytest.raises(aio.AioRpcError) as err:
        await watched.stub.ModelInfer(request, metadata=as_client("eve"), timeout=30)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'eve' is refused" in err.value.details() and "nonfinite_fraction 1.0" in err.value.details()
    await watched.stub.ModelInfer(request, metadata=as_client("alice"), timeout=30)  # below the threshold: served

    async def one():
        yield request

    [reply] = [r async for r in watched.stub.ModelStreamInfer(one(), metadata=as_client("eve"), timeout=30)]
    assert reply.error_message.startswith("PERMISSION_DENIED: client 'eve' is refused")
    rest = await door_http.post("/v2/models/iris/infer", content=b"{}", headers={"x-mlos-client": "mallory"})
    assert rest.status_code == 429 and "rate-limited" in rest.json()["error"]

    after = refused(watched, "RESOURCE_EXHAUSTED", "burst"), refused(watched, "PERMISSION_DENIED", "nonfinite")
    assert (after[0] - before[0], after[1] - before[1]) == (2, 2)
    seen = windows(watched)  # refused requests are counted (the predictor sees what a client sends), unread
    assert (seen["mallory"].requests, seen["eve"].requests, seen["eve"].values_sampled) == (2, 2, 0)
    assert seen["alice"].requests == 1


async def test_loopback_peers_without_a_client_header_are_exempt(watched: Stack) -> None:
    """The host's own tools share one identity and are never refused; naming themselves, they are judged."""
    flag(watched, ("127.0.0.1", 0.99, "burst_ratio 68.04 (typical 1.00)"))
    labels = {"decision": "exempt", "code": "RESOURCE_EXHAUSTED", "reason": "burst"}
    before = watched.metrics.get_sample_value("mlos_scheduler_threat_decisions_total", labels) or 0.0
    await watched.stub.ModelInfer(infer_request("iris", iris_feeds(watched)), timeout=30)  # served
    assert watched.metrics.get_sample_value("mlos_scheduler_threat_decisions_total", labels) == before + 1
    flag(watched, ("127.0.0.1", 0.99, "burst_ratio 68.04 (typical 1.00)"), ("tool", 0.99, "burst_ratio 68"))
    with pytest.raises(aio.AioRpcError) as err:
        await watched.stub.ModelInfer(infer_request("iris", iris_feeds(watched)), metadata=as_client("tool"), timeout=30)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_threat_action_off_only_observes(tmp_path_factory: pytest.TempPathFactory, demo: dict[str, DemoModel]) -> None:
    async with running_stack(
        tmp_path_factory.mktemp("observe"), demo, load=("iris",), predictor_addr=NOWHERE, start_link=False,
        threat_action="off",
    ) as s:
        flag(s, ("eve", 0.99, "malformed_fraction 1.0"))
        await s.stub.ModelInfer(infer_request("iris", iris_feeds(s)), metadata=as_client("eve"), timeout=30)
        labels = {"decision": "observed", "code": "PERMISSION_DENIED", "reason": "malformed"}
        assert s.metrics.get_sample_value("mlos_scheduler_threat_decisions_total", labels) == 1


async def test_without_a_predictor_nothing_is_watched(stack: Stack) -> None:
    """The shared stack has no predictor: no door, no scores, no risk (and nothing is counted)."""
    assert not stack.core.door.active and stack.core.scores is None and stack.core.dispatcher.risk is None
    await stack.stub.ModelInfer(infer_request("iris", iris_feeds(stack)), metadata=as_client("alice"), timeout=30)
    assert stack.core.door.clients is None

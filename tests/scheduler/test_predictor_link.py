"""The scheduler's PredictorLink with a real predictor: request telemetry streamed in windows
(per model and per client), the streamer's counts as Prometheus series, the score feed's polling
and ageing when the predictor is away, and no link at all without an address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from predictor_testkit import Running, free_port, poll, start_predictor
from sched_testkit import Stack, infer_request, running_stack

from mlos_cli.demo import DemoModel
from mlos_predictor.client import PredictorClient
from mlos_scheduler.config import SchedulerSettings
from mlos_scheduler.predictor_link import PredictorLink, client_samples, rate_samples
from mlos_scheduler.risk import entity_of
from mlos_scheduler.scores import Score
from mlos_scheduler.server import build_core

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def predictor() -> AsyncIterator[Running]:
    running = await start_predictor()
    yield running
    await running.server.stop(None)


def metric(stack: Stack, name: str) -> float:
    value = stack.metrics.get_sample_value(name)
    assert value is not None, name
    return value


async def test_request_telemetry_streams_to_the_predictor(
    tmp_path: Path, demo: dict[str, DemoModel], predictor: Running
) -> None:
    async with running_stack(
        tmp_path, demo, load=("iris",), predictor_addr=predictor.addr, client_window_s=0.05, rate_window_s=0.1,
    ) as s:
        assert s.link is not None and s.link.streamer is not None
        feeds = s.models["iris"].sample_inputs(batch=2, seed=1)
        for client in ("alice", "bob", "alice"):
            await s.stub.ModelInfer(infer_request("iris", feeds), metadata=(("x-mlos-client", client),), timeout=30)
        streamer = s.link.streamer

        async def followed() -> bool:  # the predictor's books hold the clients' and the model's windows
            async with PredictorClient(predictor.addr) as c:
                clients = {x.entity: x for x in (await c.scores("threat")).scores}
                models = {x.entity for x in (await c.scores("workload")).scores}
            return {"alice", "bob"} <= set(clients) and "iris" in models

        await poll(followed, what="the predictor to follow the clients and the model from the telemetry")
        async with PredictorClient(predictor.addr) as c:
            alice = next(x for x in (await c.scores("threat", ["alice"])).scores)
        assert alice.prediction.value < 0.8 and alice.features[4] == 0.0  # malformed_fraction of a good client
        counted = predictor.registry.get_sample_value
        for sample, least in (("client", 2), ("rate", 1)):  # none of the scheduler's samples looks absurd to it
            assert (counted("mlos_predictor_telemetry_samples_total", {"sample": sample, "result": "accepted"}) or 0) >= least
            assert counted("mlos_predictor_telemetry_samples_total", {"sample": sample, "result": "rejected"}) is None
        st = streamer.stats()
        assert st.dropped == 0 and st.sent >= 3 and st.connected
        assert metric(s, "mlos_scheduler_telemetry_sent_total") >= 3
        assert metric(s, "mlos_scheduler_telemetry_connected") == 1
        assert metric(s, "mlos_scheduler_telemetry_dropped_total") == 0


async def test_samples_are_built_from_the_windows(tmp_path: Path, demo: dict[str, DemoModel], predictor: Running) -> None:
    """What the link sends, message by message, from the front door's windows (link not started)."""
    async with running_stack(tmp_path, demo, load=("iris", "ocr_cls"), predictor_addr=predictor.addr, start_link=False) as s:
        door = s.core.door
        assert door.rates is not None and door.clients is not None
        feeds = s.models["iris"].sample_inputs(batch=1, seed=2)
        await s.stub.ModelInfer(infer_request("iris", feeds), metadata=(("x-mlos-client", "carol"),), timeout=30)
        rates = {r.model_name: r for r in rate_samples(door.rates.drain(), 1234, 10.0)}
        [carol] = client_samples(door.clients.drain(), 1234, 0.5)
        assert (rates["iris"].requests, rates["ocr_cls"].requests) == (1, 0)  # a quiet model is reported too
        assert (rates["iris"].window_s, rates["iris"].unix_ms) == (10.0, 1234)
        assert (carol.client, carol.requests, carol.malformed, carol.values_sampled, carol.window_s) == ("carol", 1, 0, 4, 0.5)
        assert carol.bytes_max == carol.bytes_mean == feeds["X"].nbytes
        assert carol.value_absmax == float(abs(feeds["X"]).max())


async def test_scores_age_out_when_the_predictor_is_away(tmp_path: Path, demo: dict[str, DemoModel]) -> None:
    """No predictor answers: the feed keeps retrying (counted) and its reviews stop a stale score
    from steering the routing."""
    nowhere = f"127.0.0.1:{free_port()}"
    async with running_stack(
        tmp_path, demo, load=("iris",), predictor_addr=nowhere, scores_interval_ms=20, scores_stale_intervals=2,
    ) as s:
        assert s.link is not None and s.link.scores is not None and s.core.scores is not None
        risk = s.core.dispatcher.risk
        assert risk is not None
        executor = s.core.executors[0]
        s.core.scores.replace("failure", [Score(entity_of(executor), 0.9, "error_rate 0.6", 0, s.core.scores.clock())])
        risk.review(s.core.executors)
        assert risk.flagged == {executor.addr}
        feed = s.link.scores

        async def aged() -> bool:
            return feed.failures >= 2 and not risk.flagged

        await poll(aged, what="the stale failure score to stop flagging the executor")
        assert not feed.connected and feed.last_error


async def test_without_an_address_nothing_starts() -> None:
    from mlos_common.bootstrap import ServerParts

    settings = SchedulerSettings(predictor_addr="", executor_addrs="127.0.0.1:1", registry_addr="127.0.0.1:2")
    core, registry_client = build_core(settings, ServerParts(), None)
    link = PredictorLink(settings, core)
    link.start()
    assert link.streamer is None and link.scores is None and core.scores is None and not core.door.active
    await link.close()
    await core.close()
    await registry_client.close()

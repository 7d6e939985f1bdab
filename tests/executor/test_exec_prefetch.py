"""Prefetch on the workload forecast: which models are chosen, and loads into a real executor from
a real registry (the forecast given here; with the predictor's GetScores in test_exec_predictor)."""

from __future__ import annotations

import logging

import pytest
from exec_testkit import ExecutorServed, RegistryServed, StartExecutor, save, weights_model
from memory_testkit import sized_model, table_model

from mlos_common.errors import Unavailable
from mlos_executor.budget import MB
from mlos_executor.peers import RegistryPeer
from mlos_executor.prefetch import Decision, Forecast, Prefetcher, choose
from mlos_executor.server import prefetch_loader


def test_choose_takes_forecast_models_not_held_highest_rate_first() -> None:
    forecasts = [Forecast("slow", 0.2), Forecast("busy", 9.0), Forecast("held", 50.0), Forecast("edge", 0.5),
                 Forecast("warm", 3.0)]
    assert [f.model for f in choose(forecasts, {"held"}, min_rate=0.5)] == ["busy", "warm", "edge"]
    assert choose(forecasts, set(), min_rate=100.0) == []
    assert choose([], set(), min_rate=0.0) == []


class Forecasts:
    """What the forecast says this round (a plain function's answer: the decision logic's input)."""

    def __init__(self, *forecasts: Forecast) -> None:
        self.forecasts = list(forecasts)
        self.down = False

    async def __call__(self) -> list[Forecast]:
        if self.down:
            raise Unavailable("predictor 127.0.0.1:1 unavailable")
        return list(self.forecasts)


def prefetcher_of(ex: ExecutorServed, peer: RegistryPeer, forecasts: Forecasts, decisions: list[Decision] | None = None,
                  min_rate: float = 0.5) -> Prefetcher:
    """A Prefetcher loading into `ex`'s core from the real registry, on `forecasts`."""
    return Prefetcher(
        forecasts, peer.latest, prefetch_loader(ex.core),
        held=lambda: {n for n, _ in ex.core.models}, min_rate=min_rate,
        on_decision=decisions.append if decisions is not None else None,
    )


@pytest.fixture
async def registry_peer(registry: RegistryServed):
    peer = RegistryPeer(registry.addr)
    yield peer
    await peer.close()


async def test_a_model_with_forecast_traffic_is_loaded_and_warmed_one_without_is_not(
    registry: RegistryServed, start_executor: StartExecutor, model_files, registry_peer: RegistryPeer
) -> None:
    ex = await start_executor(prefetch_min_rate=1.0)
    await registry.client.register("plus", model_files.plus_one)
    await registry.client.register("quiet", model_files.two_outputs)
    decisions: list[Decision] = []
    forecasts = Forecasts(Forecast("plus", 4.0), Forecast("quiet", 0.3), Forecast("gone", 2.0))
    p = prefetcher_of(ex, registry_peer, forecasts, decisions, min_rate=ex.settings.prefetch_min_rate)
    got = await p.poll()
    assert got == decisions
    assert [(d.model, d.outcome) for d in got] == [("plus", "loaded"), ("gone", "not_registered")]
    assert set(ex.core.models) == {("plus", 1)}
    assert ex.core.get("plus", 1).warmup  # warmed, not only loaded
    assert await p.poll() == [Decision("gone", 2.0, "not_registered", got[1].detail)]  # plus is held now


async def test_a_forecast_model_that_does_not_fit_is_left_out(
    registry: RegistryServed, start_executor: StartExecutor, model_files, registry_peer: RegistryPeer, tmp_path
) -> None:
    ex = await start_executor(memory_budget_mb=20)
    await registry.client.register("heavy", save(weights_model(2048), tmp_path / "heavy.onnx"))
    await registry.client.register("plus", model_files.plus_one)
    forecasts = Forecasts(Forecast("heavy", 10.0), Forecast("plus", 1.0))
    p = prefetcher_of(ex, registry_peer, forecasts)
    got = await p.poll()
    assert [(d.model, d.outcome) for d in got] == [("heavy", "no_room"), ("plus", "loaded")]
    assert "predicted to need" in got[0].detail
    assert set(ex.core.models) == {("plus", 1)}


async def test_a_prefetch_never_evicts_a_loaded_model_a_request_time_load_does(
    registry: RegistryServed, start_executor: StartExecutor, registry_peer: RegistryPeer, tmp_path
) -> None:
    ex = await start_executor(memory_budget_mb=64)
    a = await registry.client.register("a", save(table_model(1024, seed=1), tmp_path / "a.onnx"))
    await ex.client.load("a", a.version, a.sha256)  # idle from now on
    used_mb = ex.core.memory.budget.used_bytes / MB
    c = await registry.client.register("c", sized_model(tmp_path / "c.onnx", 64 - used_mb / 2))
    [decision] = await prefetcher_of(ex, registry_peer, Forecasts(Forecast("c", 5.0))).poll()
    assert decision.outcome == "no_room" and set(ex.core.models) == {("a", 1)} and ex.core.evictor.evictions == 0
    await ex.client.load("c", c.version, c.sha256)  # what a request would do
    assert ("a", 1) not in ex.core.models and ex.core.evictor.recent[0].key == ("a", 1)


async def test_no_forecast_is_counted_and_logged_once(
    start_executor: StartExecutor, registry_peer: RegistryPeer, caplog: pytest.LogCaptureFixture
) -> None:
    ex = await start_executor()
    forecasts = Forecasts()
    forecasts.down = True
    p = prefetcher_of(ex, registry_peer, forecasts)
    with caplog.at_level(logging.INFO, logger="mlos_executor.prefetch"):
        assert await p.poll() == [] and await p.poll() == []
    assert p.polls == {"ok": 0, "no_forecast": 2}
    assert sum("no workload forecast" in r.getMessage() for r in caplog.records) == 1
    forecasts.down = False
    assert await p.poll() == [] and p.polls["ok"] == 1

"""The learning loop through real gRPC: telemetry -> Train -> ONNX -> registry -> served, restarts."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from learn_testkit import base_ms, memory, rate, record
from predictor_testkit import linear_onnx

from mlos_common.errors import InvalidArgument
from mlos_predictor import simulate
from mlos_predictor.client import PredictorClient
from mlos_predictor.kinds import SPECS
from mlos_predictor.models import OnnxModel
from mlos_predictor.simulate import Simulation

LEARNED = ("latency", "workload", "memory")  # kinds the small simulation always trains past their baseline


async def feed(client: PredictorClient, sim: Simulation) -> None:
    async def batches():
        for batch in sim.batches:
            yield batch

    ack = await client.stub.ReportTelemetry(batches())
    assert ack.rejected == 0


@pytest.fixture
def learning(predictor_factory, registry, tmp_path: Path):
    """learning(name) -> a predictor that registers what it learns in `registry`."""

    async def make(name: str = "p", **settings):
        return await predictor_factory(registry_addr=registry.addr, data_dir=tmp_path / name, **settings)

    return make


async def test_train_registers_and_serves_the_onnx_model(learning, registry, simulation, tmp_path: Path) -> None:
    predictor = await learning()
    async with PredictorClient(predictor.addr, timeout_s=120) as c:
        await feed(c, simulation)
        outcomes = {o.kind: o for o in await c.train()}
        assert sorted(outcomes) == sorted(SPECS)
        for kind in LEARNED:
            o = outcomes[kind]
            assert o.replaced, o.reason
            assert f"registered as mlos-predictor-{kind} version 1" in o.reason
            m = o.model
            assert (m.source, m.version, m.registry_name) == ("trained", 1, f"mlos-predictor-{kind}")
            assert m.score == o.candidate_score < m.baseline_score  # MAE: lower is better
            assert m.estimator == "GradientBoostingRegressor" and m.training_rows + m.held_out_rows <= m.rows_available
        info = {m.kind: m for m in await c.model_info()}
        assert info["memory"] == outcomes["memory"].model
        workload = await c.scores("workload")
    listed = {mv.name: mv for mv in await registry.client.list()}
    for kind in LEARNED:
        mv = listed[f"mlos-predictor-{kind}"]
        assert [t.name for t in mv.inputs] == ["features"] and [t.name for t in mv.outputs] == [SPECS[kind].output]
        labels, card = mv.labels, info[kind]
        assert labels["metric"] == "mae" and labels["estimator"] == "GradientBoostingRegressor"
        assert float(labels["score"]) == card.score and float(labels["baseline_score"]) == card.baseline_score
        assert int(labels["training_rows"]) == card.training_rows and int(labels["held_out_rows"]) == card.held_out_rows
    # what GetScores answers is the registered ONNX model's output on the latest rows
    path, _ = await registry.client.fetch_artifact("mlos-predictor-workload", 1, tmp_path / "workload.onnx")
    fetched = OnnxModel(SPECS["workload"], path.read_bytes())
    rows = np.array([list(s.features) for s in workload.scores])
    assert [s.prediction.model_version for s in workload.scores] == [1] * len(rows)
    assert [s.prediction.value for s in workload.scores] == pytest.approx(fetched.predict(rows).tolist(), rel=1e-6)


async def test_restart_reloads_learned_models_and_refuses_a_worse_candidate(
    learning, poll_until, simulation
) -> None:
    first = await learning("first")
    probe = [rate(base_ms() + i * 60_000, n, "probe") for i, n in enumerate([600, 900, 1500, 1200])]
    async with PredictorClient(first.addr, timeout_s=120) as c:
        await feed(c, simulation)
        await c.train()
        before = {m.kind: m for m in await c.model_info()}
        await c.report(probe)
        (probe_before,) = (await c.scores("workload", ["probe"])).scores
    await first.stop()

    second = await learning("second", min_train_rows=40)
    async with PredictorClient(second.addr, timeout_s=120) as c:

        async def restored() -> bool:
            return all(m.version == before[m.kind].version for m in await c.model_info())

        await poll_until(restored, 10.0, "the registered models to be loaded")
        after = {m.kind: m for m in await c.model_info()}
        for kind in LEARNED:
            assert after[kind].source == "trained"
            assert (after[kind].score, after[kind].training_rows) == (before[kind].score, before[kind].training_rows)
        await c.report(probe)
        (probe_after,) = (await c.scores("workload", ["probe"])).scores
        assert probe_after.prediction.model_version == probe_before.prediction.model_version == 1
        assert probe_after.prediction.value == pytest.approx(probe_before.prediction.value)

        # 50 fresh loads of the same process: a candidate fitted on 40 of them loses to the restored model
        await c.report(list(simulate.memory(np.random.default_rng(7), scale=0.025)))
        (outcome,) = await c.train("memory")
    assert not outcome.replaced
    assert "kept the served model: the candidate does not beat it" in outcome.reason, outcome.reason
    assert outcome.model.version == 1 and outcome.model.training_rows == before["memory"].training_rows
    assert not math.isnan(outcome.candidate_score)


async def test_retraining_on_the_same_rows_keeps_the_served_model(learning, registry, simulation) -> None:
    predictor = await learning()
    async with PredictorClient(predictor.addr, timeout_s=120) as c:
        await feed(c, simulation)
        (first,) = await c.train("memory")
        (again,) = await c.train("memory")
    assert first.replaced and not again.replaced
    assert again.candidate_score == first.candidate_score  # the same rows and seed: the same model
    assert "kept the served model: the candidate does not beat it" in again.reason
    assert again.model.version == 1
    assert [mv.version for mv in await registry.client.list("mlos-predictor-memory")] == [1]


async def test_without_a_registry_trained_models_are_served_unregistered(predictor, simulation) -> None:
    async with PredictorClient(predictor.addr, timeout_s=120) as c:
        await feed(c, simulation)
        (outcome,) = await c.train("workload")
        (info,) = await c.model_info("workload")
        scores = await c.scores("workload")
    assert outcome.replaced and "served, not registered (no registry configured)" in outcome.reason
    assert (info.source, info.version) == ("trained", 0)
    assert all(s.prediction.model_version == 0 for s in scores.scores)


async def test_train_refuses_unknown_kinds_and_says_when_rows_are_missing(predictor) -> None:
    async with PredictorClient(predictor.addr) as c:
        with pytest.raises(InvalidArgument, match="unknown prediction kind 'speed'; known kinds: latency, workload"):
            await c.train("speed")
        with pytest.raises(InvalidArgument, match="unknown prediction kind 'speed'"):
            await c.model_info("speed")
        await c.report([memory(base_ms() + i) for i in range(5)])
        (outcome,) = await c.train("memory")
        (info,) = await c.model_info("memory")
    assert not outcome.replaced and outcome.reason == "5 labelled rows; training needs 200"
    assert math.isnan(outcome.candidate_score)
    assert (info.source, info.version, info.rows_available) == ("prior", 0, 5)
    assert math.isnan(info.score) and info.prior == SPECS["memory"].prior_text


async def test_profiles_carry_the_learned_latency_forecast(learning, registry, simulation, tmp_path: Path) -> None:
    predictor = await learning()
    async with PredictorClient(predictor.addr, timeout_s=120) as c:
        await feed(c, simulation)
        watch = c.watch_profiles("probe", interval_ms=50)
        assert (await anext(watch)).profiles == []
        (outcome,) = await c.train("latency")
        assert outcome.replaced and outcome.model.version == 1
        t0 = base_ms()
        await c.report([record(t0, 4.0, "probe", batch=2, executor="e9")])
        first = (await anext(watch)).profiles[0]
        assert first.expected_ms == 0.0  # one execution: no mean before it, so no row to forecast from
        await c.report([record(t0 + 1000, 6.0, "probe", batch=2, executor="e9")])
        second = (await anext(watch)).profiles[0]
        await watch.aclose()
    path, _ = await registry.client.fetch_artifact("mlos-predictor-latency", 1, tmp_path / "latency.onnx")
    model = OnnxModel(SPECS["latency"], path.read_bytes())
    # the row of the second execution: batch 2, mean 4, recent 4 (same executor), nothing else busy, idle 1 s
    (forecast,) = model.predict(np.array([[2.0, 4.0, 4.0, 0.0, math.log1p(1000)]]))
    assert second.expected_ms == pytest.approx(max(forecast, 0.0), rel=1e-6) and second.expected_ms > 0


async def test_restore_skips_a_registered_model_that_breaks_the_contract(
    predictor_factory, registry, poll_until, tmp_path: Path
) -> None:
    """A model registered under mlos-predictor-<kind> by hand loads like a trained one; one that
    does not meet the serving contract is logged and skipped, its kind keeps the prior."""
    good = tmp_path / "memory.onnx"
    good.write_bytes(linear_onnx(SPECS["memory"], [1.5, 0, 0, 0, 0, 0], bias=8.0))
    wrong = tmp_path / "latency.onnx"  # a memory graph: its output is footprint_mb, not compute_ms
    wrong.write_bytes(linear_onnx(SPECS["memory"], [0.0] * 6))
    await registry.client.register("mlos-predictor-memory", good, labels={"estimator": "by hand", "score": "2.5"})
    await registry.client.register("mlos-predictor-latency", wrong)  # tried before memory (kinds' order)
    predictor = await predictor_factory(registry_addr=registry.addr, data_dir=tmp_path / "p")
    async with PredictorClient(predictor.addr) as c:

        async def memory_loaded() -> bool:
            return (await c.model_info("memory"))[0].version == 1

        await poll_until(memory_loaded, 10.0, "the registered memory model")
        info = {m.kind: m for m in await c.model_info()}
        (value,) = await c.predict_batch("memory", [[10.0, 1, 1, 1, 1, 1]])
    assert (info["memory"].source, info["memory"].estimator, info["memory"].score) == ("trained", "by hand", 2.5)
    assert math.isnan(info["memory"].baseline_score)
    assert value.value == pytest.approx(23.0) and value.model_version == 1
    assert (info["latency"].source, info["latency"].version) == ("prior", 0)


async def test_the_schedule_trains_only_its_kinds(predictor_factory, poll_until, simulation) -> None:
    predictor = await predictor_factory(train_interval_s=0.05, train_kinds="memory,workload")
    async with PredictorClient(predictor.addr, timeout_s=120) as c:
        await feed(c, simulation)

        async def trained() -> bool:
            info = {m.kind: m for m in await c.model_info()}
            return info["memory"].source == info["workload"].source == "trained"

        await poll_until(trained, 60.0, "the schedule to train memory and workload")
        info = {m.kind: m for m in await c.model_info()}
    assert {k: m.source for k, m in info.items() if k not in ("memory", "workload")} == dict.fromkeys(
        ("latency", "failure", "threat"), "prior"
    )


def test_train_kinds_setting_names_known_kinds() -> None:
    from pydantic import ValidationError

    from mlos_predictor.config import PredictorSettings

    assert PredictorSettings(train_kinds="memory, latency").scheduled_kinds() == ("memory", "latency")
    with pytest.raises(ValidationError, match="train_kinds: unknown kind.s. speed; known kinds: latency"):
        PredictorSettings(train_kinds="memory,speed")

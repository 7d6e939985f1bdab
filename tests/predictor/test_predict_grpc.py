"""Predict, PredictBatch, metrics, cache and ModelInfo through real gRPC (a server on port 0)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from grpc import StatusCode, aio
from predictor_testkit import linear_onnx, sample_rows, serve_engine

from mlos.predictor.v1 import predictor_pb2
from mlos_common.errors import InvalidArgument
from mlos_predictor.client import PredictorClient
from mlos_predictor.convert import telemetry_from_proto
from mlos_predictor.engine import build_engine
from mlos_predictor.intake import Intake, wall_clock_ms
from mlos_predictor.kinds import KINDS, SPECS
from mlos_predictor.latency import LatencyBook
from mlos_predictor.models import ModelCard, OnnxModel


async def test_predict_by_values_and_by_name(engine_server) -> None:
    spec = SPECS["failure"]
    row = [0.4, 1.0, 0.0, 0.3, 0.0, 50.0]
    async with PredictorClient(engine_server.addr) as client:
        by_values = await client.predict("failure", row)
        by_name = await client.predict("failure", dict(zip(spec.names, row)))
        reply = await client.stub.Predict(
            predictor_pb2.PredictRequest(kind="failure", features=predictor_pb2.FeatureRow(values=row), no_cache=True)
        )
    assert by_values.value == pytest.approx(float(spec.prior(np.array([row]))[0]))
    assert (by_values.cached, by_values.model_version, by_values.reason) == (False, 0, "error_rate 0.40 (typical 0.00)")
    assert by_name.cached and by_name.value == by_values.value
    assert not reply.prediction.cached and reply.latency_ms > 0


@pytest.mark.parametrize("kind", KINDS)
async def test_predict_batch_in_order(engine_server, kind: str) -> None:
    spec = SPECS[kind]
    rows = sample_rows(spec, 100, seed=3)
    async with PredictorClient(engine_server.addr) as client:
        first = await client.predict_batch(kind, rows[:40].tolist())
        predictions = await client.predict_batch(kind, rows.tolist())
    assert [p.value for p in predictions] == pytest.approx(spec.prior(rows).tolist())
    assert [p.cached for p in predictions] == [True] * 40 + [False] * 60
    assert len(first) == 40


async def test_a_trained_model_answers_after_a_swap(engine, engine_server) -> None:
    spec = SPECS["memory"]
    row = [10.0, 1.0, 20.0, 4.0, 1.0, 8.0]
    async with PredictorClient(engine_server.addr) as client:
        prior = await client.predict("memory", row)
        engine.slots["memory"].swap(
            OnnxModel(spec, linear_onnx(spec, [2.0, 0, 0, 0, 0, 1.0], bias=5.0)),
            ModelCard("memory", source="trained", version=3, estimator="Ridge", score=4.0, baseline_score=9.0),
        )
        trained = await client.predict("memory", row)
        (info,) = await client.model_info("memory")
    assert prior.value == pytest.approx(8.0 + 1.5 * 10 + 4 * (5 / 1024) * 8)
    assert (trained.value, trained.cached, trained.model_version) == (pytest.approx(2 * 10 + 8 + 5), False, 3)
    assert (info.source, info.version, info.estimator, info.score, info.baseline_score) == ("trained", 3, "Ridge", 4, 9)


FAILURE_ROW = [0.1, 1.0, 0.0, 0.3, 0.0, 50.0]


def _row(values=(), named=None) -> predictor_pb2.FeatureRow:
    return predictor_pb2.FeatureRow(values=list(values), named=named or {})


@pytest.mark.parametrize(
    ("kind", "row", "message"),
    [
        ("nope", _row(FAILURE_ROW), "unknown prediction kind 'nope'; known kinds: latency, workload, memory, failure, threat"),
        ("", _row(FAILURE_ROW), "unknown prediction kind ''"),
        ("failure", _row(), "no features given; failure takes error_rate, latency_drift"),
        ("failure", _row(FAILURE_ROW[:5]), "failure takes 6 features (error_rate, latency_drift, rss_growth_mb_per_min"),
        ("failure", _row(FAILURE_ROW, {"error_rate": 0.1}), "either as values (in order) or named, not both"),
        ("failure", _row(named={"error_rate": 0.1}), "failure is missing feature(s) latency_drift, rss_growth_mb_per_min"),
        ("failure", _row(named={**dict(zip(SPECS["failure"].names, FAILURE_ROW)), "cpu": 1.0}), "has no feature(s) cpu"),
        ("failure", _row([math.nan, *FAILURE_ROW[1:]]), "feature 'error_rate' of failure is nan; it must be a finite number"),
        ("failure", _row([0.1, math.inf, *FAILURE_ROW[2:]]), "feature 'latency_drift' of failure is inf"),
        ("failure", _row([1.5, *FAILURE_ROW[1:]]), "feature 'error_rate' of failure is 1.5, outside [0, 1]"),
    ],
)
async def test_bad_predict_is_invalid_argument_naming_the_field(engine_server, kind, row, message) -> None:
    async with PredictorClient(engine_server.addr) as client:
        with pytest.raises(aio.AioRpcError) as err:
            await client.stub.Predict(predictor_pb2.PredictRequest(kind=kind, features=row))
    assert err.value.code() == StatusCode.INVALID_ARGUMENT
    assert message in (err.value.details() or "")


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "no rows given: a threat batch needs at least one feature row"),
        ([[1.0] * 8] * 1001, "1001 rows is over the batch limit of 1000; send them in several batches"),
        ([[1.0] * 8, [1.0] * 7], "rows[1]: threat takes 8 features"),
        ([[1.0] * 8, [1.0] * 8, [1.0] * 4 + [2.0] + [1.0] * 3], "rows[2]: feature 'malformed_fraction' of threat is 2"),
    ],
)
async def test_bad_batch_is_invalid_argument_naming_the_row(engine_server, rows, message) -> None:
    async with PredictorClient(engine_server.addr) as client:
        with pytest.raises(InvalidArgument) as err:
            await client.predict_batch("threat", rows)
    assert message in err.value.message


async def test_metrics_reset_and_cache_through_grpc(engine_server) -> None:
    rows = sample_rows(SPECS["workload"], 10).tolist()
    async with PredictorClient(engine_server.addr) as client:
        await client.predict_batch("workload", rows)
        await client.predict_batch("workload", rows[:6])
        (m,) = await client.metrics("workload")
        every = await client.metrics()
        caches = {c.kind: c for c in await client.cache_stats()}
        cleared = await client.clear_cache("workload")
        after = {c.kind: c for c in await client.cache_stats()}
        await client.reset_metrics("workload")
        (reset,) = await client.metrics("workload")
        with pytest.raises(InvalidArgument, match="unknown prediction kind 'cpu'"):
            await client.metrics("cpu")
        with pytest.raises(InvalidArgument, match="unknown prediction kind 'cpu'"):
            await client.clear_cache("cpu")
        with pytest.raises(InvalidArgument, match="unknown prediction kind 'cpu'"):
            await client.reset_metrics("cpu")
    assert (m.count, m.cache_hits, m.cache_misses) == (16, 6, 10) and 0 < m.p50_ms <= m.p99_ms <= m.max_ms
    assert [x.kind for x in every] == list(KINDS)
    w = caches["workload"]
    assert (w.size, w.hits, w.misses, w.ttl_ms, w.capacity) == (10, 6, 10, 100.0, 10_000)
    assert w.hit_rate == pytest.approx(6 / 16) and set(caches) == set(KINDS)
    assert cleared == 10 and after["workload"].size == 0 and after["workload"].hits == 6
    assert (reset.count, reset.cache_hits, reset.max_ms) == (0, 0, 0.0)


async def test_model_info_of_the_priors_and_rows_available() -> None:
    intake = Intake(LatencyBook())
    samples = [
        predictor_pb2.MemorySample(
            model_name=f"m{i}", model_version=1, executor_id="e", unix_ms=wall_clock_ms(), file_bytes=1 << 20,
            input_bytes_per_item=16, output_bytes_per_item=4, batch_size=1, rss_delta_bytes=(3 + i) << 20,
        )
        for i in range(3)
    ]
    assert intake.ingest(telemetry_from_proto(predictor_pb2.TelemetryBatch(memory=samples))) == (3, 0)
    running = await serve_engine(build_engine(), intake)
    try:
        async with PredictorClient(running.addr) as client:
            infos = {i.kind: i for i in await client.model_info()}
            (failure,) = await client.model_info("failure")
            with pytest.raises(InvalidArgument, match="known kinds"):
                await client.model_info("cpu")
    finally:
        await running.server.stop(None)
    assert list(infos) == list(KINDS)
    assert (failure.source, failure.version, failure.registry_name) == ("prior", 0, "mlos-predictor-failure")
    assert list(failure.features) == list(SPECS["failure"].names) and failure.unit == "probability"
    assert (failure.metric, failure.higher_is_better, failure.prior) == ("auc", True, SPECS["failure"].prior_text)
    assert failure.baseline == SPECS["failure"].baseline_text and math.isnan(failure.score)
    assert (infos["threat"].rows_available, infos["memory"].rows_available) == (0, 3)
    assert infos["memory"].metric == "mae" and not infos["memory"].higher_is_better


"""Absurd telemetry is rejected and counted (ack + Prometheus), never trained on, and kills nothing."""

from __future__ import annotations

import math

import pytest
from learn_testkit import base_ms, client, health, memory, rate, record

from mlos_predictor.client import PredictorClient

HOUR_MS = 3_600_000


def _absurd(t: int) -> dict[str, list]:
    future = t + 5 * HOUR_MS  # base is 2 h ago: 3 h ahead of now
    return {
        "rate": [
            rate(t, 10, model=""),
            rate(0, 10),
            rate(future, 10),
            rate(t, 10, window_s=0.0),
            rate(t, 10, window_s=-5.0),
            rate(t, 10, window_s=7200.0),
            rate(t, 10, window_s=math.nan),
            rate(t, 10**12, window_s=1.0),
        ],
        "client": [
            client(t, requests=0),
            client(t, malformed=101),
            client(t, malformed=5, shape_errors=6),
            client(t, nonfinite=2000),
            client(t, bytes_mean=math.nan),
            client(t, bytes_mean=-1.0),
            client(t, bytes_mean=9000.0, bytes_max=10.0),
            client(t, value_absmax=-3.0),
            client(future),
        ],
        "health": [
            health(t, executor=""),
            health(t, errors=101),
            health(t, latency_drift=math.nan),
            health(t, latency_drift=-1.0),
            health(t, uptime_s=math.inf),
            health(t, window_s=0.0),
            health(t, latency_drift=5000.0),  # outside the feature's range [0, 1000]
            health(t, rss_bytes=1 << 62),
            health(future),
        ],
        "memory": [
            memory(t, model=""),
            memory(t, batch_size=0),
            memory(t, model_version=-1),
            memory(t, rss_mb=2e12),
            memory(t, file_bytes=1 << 62),
            memory(-5),
        ],
        "record": [record(future, 5.0), record(t, 0.0), record(t, 5.0, batch=0), record(t, 5.0, model="")],
    }


async def test_absurd_samples_are_rejected_counted_and_not_learned(predictor) -> None:
    t = base_ms()
    absurd = _absurd(t)
    async with PredictorClient(predictor.addr) as c:
        for kind, samples in absurd.items():
            ack = await c.report(samples)
            assert (ack.accepted, ack.rejected) == (0, len(samples)), kind
        for kind in ("workload", "failure", "threat"):
            assert (await c.scores(kind)).scores == [], kind
        ack = await c.report([rate(t, 60), client(t), health(t), memory(t), record(t, 5.0)])
        assert (ack.accepted, ack.rejected) == (5, 0)  # the server is fine and learns good telemetry
    metric = predictor.registry.get_sample_value
    for kind in ("rate", "client", "health", "memory"):
        assert metric("mlos_predictor_telemetry_samples_total", {"sample": kind, "result": "rejected"}) == len(absurd[kind])
        assert metric("mlos_predictor_telemetry_samples_total", {"sample": kind, "result": "accepted"}) == 1
    assert metric("mlos_predictor_telemetry_samples_total", {"sample": "record", "result": "rejected"}) == 1  # the future one
    assert metric("mlos_predictor_telemetry_records_total", {"result": "rejected"}) == 3  # the LatencyBook's own


async def test_out_of_order_samples_are_rejected(predictor) -> None:
    t = base_ms()
    async with PredictorClient(predictor.addr) as c:
        ack = await c.report([health(t + 5000), health(t), rate(t + 60_000, 5), rate(t, 5), client(t), client(t)])
    assert (ack.accepted, ack.rejected) == (3, 3)


@pytest.mark.parametrize("value", [math.nan, math.inf])
async def test_non_finite_value_absmax_is_a_measurement_not_an_error(predictor, value: float) -> None:
    """A NaN flood makes a naive max NaN: the client's telemetry is kept and reads as extreme."""
    async with PredictorClient(predictor.addr) as c:
        ack = await c.report([client(base_ms(), "flood", value_absmax=value, nonfinite=900)])
        assert (ack.accepted, ack.rejected) == (1, 0)
        (score,) = (await c.scores("threat")).scores
    assert score.features[6] > 700 and score.features[7] == pytest.approx(0.9)

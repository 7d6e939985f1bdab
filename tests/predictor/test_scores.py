"""GetScores through real gRPC: the latest row per entity, predicted; the workload scale hint."""

from __future__ import annotations

import math

import numpy as np
import pytest
from learn_testkit import base_ms, client, health, rate, record

from mlos_common.errors import InvalidArgument, NotFound
from mlos_predictor.client import PredictorClient
from mlos_predictor.kinds import SPECS

W_MS = 60_000


async def test_workload_scores_and_executors_needed(predictor) -> None:
    t0 = base_ms()
    samples = [rate(t0 + i * W_MS, n, "a") for i, n in enumerate([600, 1200, 1800, 2400, 3000])]
    samples += [rate(t0 + i * W_MS, 60, "b") for i in range(3)]
    samples += [record(t0 + i, 8.0, "a", batch=4) for i in range(10)]  # a: 2 ms per item
    async with PredictorClient(predictor.addr) as c:
        ack = await c.report(samples)
        assert (ack.accepted, ack.rejected) == (18, 0)
        reply = await c.scores("workload")
    assert [s.entity for s in reply.scores] == ["a", "b"]
    a, b = reply.scores
    assert a.unix_ms == t0 + 4 * W_MS and b.unix_ms == t0 + 2 * W_MS
    assert list(a.features[:5]) == [50.0, 40.0, 30.0, 20.0, 30.0]
    prior = SPECS["workload"].prior(np.array([list(a.features), list(b.features)]))
    assert [a.prediction.value, b.prediction.value] == pytest.approx(prior.tolist())
    assert a.prediction.model_version == 0  # the documented prior answers before any training
    # b has no latency telemetry: only a's load counts
    assert reply.executors_needed == math.ceil(prior[0] * 0.002 / 0.7)


async def test_scale_hint_grows_with_load(predictor) -> None:
    t0 = base_ms()
    samples = [rate(t0 + i * W_MS, 60 * 2000, "big") for i in range(4)]  # 2,000 requests/s
    samples += [record(t0 + i, 5.0, "big", batch=10) for i in range(5)]  # 0.5 ms per item -> 1 executor-s/s
    async with PredictorClient(predictor.addr) as c:
        await c.report(samples)
        reply = await c.scores("workload", ["big"])
    assert reply.scores[0].prediction.value == pytest.approx(2000.0)
    assert reply.executors_needed == 2.0  # ceil(2000 x 0.0005 / 0.7) = ceil(1.43)


async def test_failure_and_threat_scores_follow_executors_and_clients(predictor) -> None:
    t0 = base_ms()
    samples = [health(t0 + i * 5000, "e0") for i in range(3)] + [health(t0, "e1", errors=80)]
    samples += [client(t0 + i * 10_000, "good") for i in range(3)]
    samples += [client(t0, "bad", malformed=90, shape_errors=90)]
    async with PredictorClient(predictor.addr) as c:
        await c.report(samples)
        failure = await c.scores("failure")
        threat = await c.scores("threat", ["bad", "good"])
    assert [s.entity for s in failure.scores] == ["e0", "e1"]
    e0, e1 = failure.scores
    assert e1.prediction.value > e0.prediction.value  # 80 % errors: the prior's risk is high
    assert e1.features[0] == pytest.approx(0.8)
    assert failure.executors_needed == 0.0
    assert [s.entity for s in threat.scores] == ["bad", "good"]
    assert threat.scores[0].prediction.value == pytest.approx(0.9)  # the prior: max of the fractions
    assert threat.scores[1].prediction.value == pytest.approx(0.0)


async def test_bad_scores_requests(predictor) -> None:
    async with PredictorClient(predictor.addr) as c:
        await c.report([rate(base_ms(), 60, "a")])
        with pytest.raises(InvalidArgument, match="GetScores takes kind workload, failure, threat; got 'memory'"):
            await c.scores("memory")
        with pytest.raises(InvalidArgument, match="got 'nope'"):
            await c.scores("nope")
        with pytest.raises(NotFound, match="no workload telemetry for 'ghost'; 1 entities are followed"):
            await c.scores("workload", ["a", "ghost"])
        assert (await c.scores("failure")).scores == []  # nothing followed yet: no scores, no error

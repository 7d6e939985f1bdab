"""The predictor through real gRPC: a server on port 0 in-process."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from mlos.predictor.v1 import predictor_pb2, predictor_pb2_grpc
from mlos_common.bootstrap import ServerParts
from mlos_common.errors import NotFound
from mlos_predictor.client import PredictorClient
from mlos_predictor.config import PredictorSettings
from mlos_predictor.latency import ExecutionRecord, LatencyBook
from mlos_predictor.server import SERVICE_NAME, create_server


def rec(model: str = "resnet", version: int = 1, ns: int = 1_000_000, batch: int = 1, ok: bool = True) -> ExecutionRecord:
    return ExecutionRecord(model_name=model, model_version=version, batch_size=batch, compute_ns=ns, ok=ok)


async def test_stream_1000_records_matches_numpy(predictor) -> None:
    rng = np.random.default_rng(1)
    ns = rng.lognormal(mean=15.0, sigma=0.5, size=1000).astype(np.int64) + 1
    batches = rng.integers(1, 9, size=1000)

    async def records():
        for v, b in zip(ns, batches):
            yield rec(ns=int(v), batch=int(b))

    async with PredictorClient(predictor.addr) as client:
        ack = await client.report(records())
        assert (ack.accepted, ack.rejected) == (1000, 0)
        (s,) = await client.latency_summary("resnet", 1)
    ms = ns / 1e6
    assert (s.model_name, s.model_version, s.count, s.window, s.failures) == ("resnet", 1, 1000, 1000, 0)
    for got, q in ((s.p50_ms, 50), (s.p95_ms, 95), (s.p99_ms, 99)):
        assert got == pytest.approx(np.percentile(ms, q))
    assert s.mean_batch_size == pytest.approx(batches.mean())
    metric = predictor.registry.get_sample_value("mlos_predictor_compute_ms_count", {"model": "resnet"})
    assert metric == 1000


async def test_window_rollover_keeps_last_n(small_window_predictor) -> None:
    values = list(range(1, 251))  # ms; window is 100 -> only 151..250 remain
    async with PredictorClient(small_window_predictor.addr) as client:
        await client.report([rec(ns=v * 1_000_000) for v in values])
        (s,) = await client.latency_summary("resnet")
    kept = np.array(values[-100:], dtype=float)
    assert (s.count, s.window) == (250, 100)
    assert s.p50_ms == pytest.approx(np.percentile(kept, 50))
    assert s.p99_ms == pytest.approx(np.percentile(kept, 99))


async def test_per_version_and_aggregate(predictor) -> None:
    v1 = [rec(version=1, ns=(i + 1) * 100_000, batch=1) for i in range(60)]
    v2 = [rec(version=2, ns=(i + 1) * 1_000_000, batch=3) for i in range(40)]
    async with PredictorClient(predictor.addr) as client:
        await client.report(v1 + v2)
        (s1,) = await client.latency_summary("resnet", 1)
        (s2,) = await client.latency_summary("resnet", 2)
        (agg,) = await client.latency_summary("resnet", 0)
        everything = await client.latency_summary()
    ms1 = np.array([r.compute_ns for r in v1]) / 1e6
    ms2 = np.array([r.compute_ns for r in v2]) / 1e6
    assert (s1.count, s2.count, agg.count) == (60, 40, 100)
    assert s1.p95_ms == pytest.approx(np.percentile(ms1, 95))
    assert s2.p95_ms == pytest.approx(np.percentile(ms2, 95))
    assert agg.model_version == 0
    assert agg.p95_ms == pytest.approx(np.percentile(np.concatenate([ms1, ms2]), 95))
    assert agg.mean_batch_size == pytest.approx((60 * 1 + 40 * 3) / 100)
    assert everything == [agg]


async def test_failures_excluded_from_percentiles(predictor) -> None:
    records = [rec(ns=5_000_000) for _ in range(20)] + [rec(ns=500_000_000, ok=False) for _ in range(5)]
    async with PredictorClient(predictor.addr) as client:
        ack = await client.report(records)
        (s,) = await client.latency_summary("resnet")
    assert ack.accepted == 25
    assert (s.count, s.window, s.failures) == (25, 20, 5)
    assert s.p99_ms == pytest.approx(5.0)


async def test_invalid_records_rejected_in_ack(predictor) -> None:
    records = [
        rec(),
        rec(model=""),
        rec(batch=0),
        rec(ns=0),
        rec(ns=3600 * 10**9),
        rec(version=-3),
        rec(),
    ]
    async with PredictorClient(predictor.addr) as client:
        ack = await client.report(records)
        (s,) = await client.latency_summary("resnet")
    assert (ack.accepted, ack.rejected) == (2, 5)
    assert s.count == 2
    reg = predictor.registry
    assert reg.get_sample_value("mlos_predictor_telemetry_records_total", {"result": "rejected"}) == 5
    assert reg.get_sample_value("mlos_predictor_telemetry_records_total", {"result": "accepted"}) == 2


async def test_unknown_model_not_found(predictor) -> None:
    async with PredictorClient(predictor.addr) as client:
        assert await client.latency_summary() == []  # empty book, every model: empty list
        with pytest.raises(NotFound, match="'ghost'"):
            await client.latency_summary("ghost")
        # the raw status, as any gRPC client sees it
        with pytest.raises(aio.AioRpcError) as info:
            await client.stub.GetLatencySummary(predictor_pb2.LatencySummaryRequest(model_name="ghost"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert "ghost" in info.value.details()
        with pytest.raises(aio.AioRpcError) as info:
            await client.stub.GetLatencySummary(predictor_pb2.LatencySummaryRequest(model_name="x", model_version=-1))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_health_serving(predictor) -> None:
    async with aio.insecure_channel(predictor.addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE_NAME):
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_create_server_with_own_book() -> None:
    book = LatencyBook(window=8, registry=CollectorRegistry())
    server, port = create_server(PredictorSettings(grpc_port=0, metrics_port=-1), book, ServerParts())
    await server.start()
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = predictor_pb2_grpc.PredictorStub(channel)
            call = stub.ReportTelemetry()
            record = predictor_pb2.ExecutionRecord(model_name="m", model_version=3, batch_size=1, compute_ns=7)
            await call.write(predictor_pb2.TelemetryBatch(records=[record]))
            await call.done_writing()
            ack = await call
        assert (ack.accepted, ack.rejected) == (1, 0)
        (s,) = book.summary("m", 3)
        assert s.count == 1 and s.p50_ms == pytest.approx(7e-6)
    finally:
        await server.stop(None)

"""Conversions between the predictor's protobuf messages and its domain dataclasses."""

from __future__ import annotations

from mlos.predictor.v1 import predictor_pb2
from mlos_predictor.latency import ExecutionRecord, LatencySummary
from mlos_predictor.profiles import LatencyProfile


def record_from_proto(msg: predictor_pb2.ExecutionRecord) -> ExecutionRecord:
    return ExecutionRecord(
        model_name=msg.model_name,
        model_version=msg.model_version,
        batch_size=msg.batch_size,
        compute_ns=msg.compute_ns,
        ok=not msg.failed,
        executor_id=msg.executor_id,
        unix_ms=msg.unix_ms,
    )


def record_to_proto(rec: ExecutionRecord | predictor_pb2.ExecutionRecord) -> predictor_pb2.ExecutionRecord:
    if isinstance(rec, predictor_pb2.ExecutionRecord):
        return rec
    return predictor_pb2.ExecutionRecord(
        model_name=rec.model_name,
        model_version=rec.model_version,
        batch_size=rec.batch_size,
        compute_ns=rec.compute_ns,
        failed=not rec.ok,
        executor_id=rec.executor_id,
        unix_ms=rec.unix_ms,
    )


def summary_to_proto(s: LatencySummary) -> predictor_pb2.LatencySummary:
    return predictor_pb2.LatencySummary(
        model_name=s.model_name,
        model_version=s.model_version,
        count=s.count,
        window=s.window,
        p50_ms=s.p50_ms,
        p95_ms=s.p95_ms,
        p99_ms=s.p99_ms,
        mean_batch_size=s.mean_batch_size,
        failures=s.failures,
    )


def summary_from_proto(msg: predictor_pb2.LatencySummary) -> LatencySummary:
    return LatencySummary(
        model_name=msg.model_name,
        model_version=msg.model_version,
        count=msg.count,
        window=msg.window,
        p50_ms=msg.p50_ms,
        p95_ms=msg.p95_ms,
        p99_ms=msg.p99_ms,
        mean_batch_size=msg.mean_batch_size,
        failures=msg.failures,
    )


def profile_to_proto(p: LatencyProfile) -> predictor_pb2.LatencyProfile:
    return predictor_pb2.LatencyProfile(
        model_name=p.model_name, model_version=p.model_version, batch_size=p.batch_size, count=p.count,
        mean_ms=p.mean_ms, std_ms=p.std_ms, p50_ms=p.p50_ms, p95_ms=p.p95_ms, p99_ms=p.p99_ms, max_ms=p.max_ms,
    )


def profile_from_proto(msg: predictor_pb2.LatencyProfile) -> LatencyProfile:
    return LatencyProfile(
        model_name=msg.model_name, model_version=msg.model_version, batch_size=msg.batch_size, count=msg.count,
        mean_ms=msg.mean_ms, std_ms=msg.std_ms, p50_ms=msg.p50_ms, p95_ms=msg.p95_ms, p99_ms=msg.p99_ms,
        max_ms=msg.max_ms,
    )

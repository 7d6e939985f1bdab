"""Conversions between the predictor's protobuf messages and its domain dataclasses."""

from __future__ import annotations

from mlos.predictor.v1 import predictor_pb2

from mlos_predictor.latency import ExecutionRecord, LatencySummary


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

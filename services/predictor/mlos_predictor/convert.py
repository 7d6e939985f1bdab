"""Conversions between the predictor's protobuf messages and its domain dataclasses."""

from __future__ import annotations

from mlos.predictor.v1 import predictor_pb2
from mlos_predictor.intake import Telemetry
from mlos_predictor.latency import ExecutionRecord, LatencySummary
from mlos_predictor.profiles import LatencyProfile
from mlos_predictor.samples import ClientSample, HealthSample, MemorySample, RateSample
from mlos_predictor.scores import EntityScore


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


def telemetry_from_proto(batch: predictor_pb2.TelemetryBatch) -> Telemetry:
    return Telemetry(
        records=[record_from_proto(m) for m in batch.records],
        rates=[RateSample(m.model_name, m.unix_ms, m.window_s, m.requests) for m in batch.rates],
        clients=[
            ClientSample(
                m.client, m.unix_ms, m.window_s, m.requests, m.malformed, m.shape_errors, m.bytes_mean, m.bytes_max,
                m.value_absmax, m.values_sampled, m.nonfinite,
            )
            for m in batch.clients
        ],
        health=[
            HealthSample(
                m.executor_id, m.unix_ms, m.window_s, m.executions, m.errors, m.latency_drift, m.rss_bytes,
                m.memory_budget_bytes, m.uptime_s, m.loaded_models,
            )
            for m in batch.health
        ],
        memory=[
            MemorySample(
                m.model_name, m.model_version, m.executor_id, m.unix_ms, m.file_bytes, m.parameters, m.nodes,
                m.input_bytes_per_item, m.output_bytes_per_item, m.batch_size, m.rss_delta_bytes,
            )
            for m in batch.memory
        ],
    )


def scores_to_proto(scores: list[EntityScore], executors_needed: float) -> predictor_pb2.GetScoresResponse:
    return predictor_pb2.GetScoresResponse(
        scores=[
            predictor_pb2.EntityScore(
                entity=s.entity,
                prediction=predictor_pb2.Prediction(
                    value=s.result.value, reason=s.result.reason, cached=s.result.cached,
                    model_version=s.result.model_version,
                ),
                unix_ms=s.unix_ms,
                features=s.features,
            )
            for s in scores
        ],
        executors_needed=executors_needed,
    )

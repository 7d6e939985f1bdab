"""Conversions between the predictor's protobuf messages and its domain dataclasses."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlos.predictor.v1 import predictor_pb2
from mlos_predictor.cache import CacheStats
from mlos_predictor.engine import Result
from mlos_predictor.intake import Telemetry
from mlos_predictor.kind_metrics import KindMetrics
from mlos_predictor.kinds import KindSpec
from mlos_predictor.latency import ExecutionRecord, LatencySummary
from mlos_predictor.loop import TrainOutcome
from mlos_predictor.models import ModelSlot
from mlos_predictor.profiles import LatencyProfile
from mlos_predictor.rows import check_count, parse_row, rows_array
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
        expected_ms=p.expected_ms,
    )


def profile_from_proto(msg: predictor_pb2.LatencyProfile) -> LatencyProfile:
    return LatencyProfile(
        model_name=msg.model_name, model_version=msg.model_version, batch_size=msg.batch_size, count=msg.count,
        mean_ms=msg.mean_ms, std_ms=msg.std_ms, p50_ms=msg.p50_ms, p95_ms=msg.p95_ms, p99_ms=msg.p99_ms,
        max_ms=msg.max_ms, expected_ms=msg.expected_ms,
    )


# ---- The five learned models ----


def rows_from_proto(spec: KindSpec, rows: Sequence[predictor_pb2.FeatureRow], max_batch: int) -> np.ndarray:
    """The validated (n, F) rows of a PredictBatch; errors name the row and the feature."""
    check_count(spec, len(rows), max_batch)
    return rows_array([parse_row(spec, r.values, r.named, f"rows[{i}]: ") for i, r in enumerate(rows)])


def row_from_proto(spec: KindSpec, row: predictor_pb2.FeatureRow) -> np.ndarray:
    """The validated (1, F) row of a Predict."""
    return rows_array([parse_row(spec, row.values, row.named)])


def prediction_to_proto(r: Result) -> predictor_pb2.Prediction:
    return predictor_pb2.Prediction(value=r.value, reason=r.reason, cached=r.cached, model_version=r.model_version)


def kind_metrics_to_proto(m: KindMetrics) -> predictor_pb2.KindMetrics:
    return predictor_pb2.KindMetrics(
        kind=m.kind, count=m.count, cache_hits=m.cache_hits, cache_misses=m.cache_misses, mean_ms=m.mean_ms,
        min_ms=m.min_ms, max_ms=m.max_ms, p50_ms=m.p50_ms, p95_ms=m.p95_ms, p99_ms=m.p99_ms,
    )  # fmt: skip


def cache_stats_to_proto(s: CacheStats) -> predictor_pb2.KindCacheStats:
    return predictor_pb2.KindCacheStats(
        kind=s.kind, size=s.size, capacity=s.capacity, ttl_ms=s.ttl_ms, hits=s.hits, misses=s.misses,
        expired=s.expired, evicted=s.evicted, hit_rate=s.hit_rate,
    )  # fmt: skip


def model_info_to_proto(slot: ModelSlot, rows_available: int) -> predictor_pb2.KindModelInfo:
    """What answers for a kind (its slot's card) and the kind's contract (its spec)."""
    spec, card = slot.spec, slot.card
    return predictor_pb2.KindModelInfo(
        kind=spec.kind, source=card.source, registry_name=spec.registry_name, version=card.version,
        features=spec.names, unit=spec.unit, estimator=card.estimator, baseline=spec.baseline_text,
        prior=spec.prior_text, metric=spec.metric, higher_is_better=spec.higher_is_better, score=card.score,
        baseline_score=card.baseline_score, training_rows=card.training_rows, held_out_rows=card.held_out_rows,
        trained_unix_ms=card.trained_unix_ms, rows_available=rows_available,
    )  # fmt: skip


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


def outcome_to_proto(outcome: TrainOutcome, slot: ModelSlot, rows_available: int) -> predictor_pb2.TrainOutcome:
    return predictor_pb2.TrainOutcome(
        kind=outcome.kind, replaced=outcome.replaced, reason=outcome.reason,
        candidate_score=outcome.candidate_score, model=model_info_to_proto(slot, rows_available),
    )

"""Executor telemetry: Prometheus metrics and the execution stream to the predictor."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram

from mlos_common.metrics import LATENCY_BUCKETS_S
from mlos_executor.config import ExecutorSettings
from mlos_executor.core import ExecutionSample, Sink


@dataclass
class ExecutorMetrics:
    registry: CollectorRegistry
    executions: Counter = field(init=False)
    batch_elements: Counter = field(init=False)
    compute_seconds: Histogram = field(init=False)

    def __post_init__(self) -> None:
        self.executions = Counter(
            "mlos_executor_executions", "Batches executed, by model and outcome.",
            ["model", "version", "outcome"], registry=self.registry,
        )
        self.batch_elements = Counter(
            "mlos_executor_batch_elements", "Batch elements executed, by model.",
            ["model", "version"], registry=self.registry,
        )
        self.compute_seconds = Histogram(
            "mlos_executor_compute_seconds", "Time inside the runtime per batch.",
            ["model", "version"], buckets=LATENCY_BUCKETS_S, registry=self.registry,
        )

    def record(self, s: ExecutionSample) -> None:
        version = str(s.model_version)
        self.executions.labels(s.model_name, version, "ok" if s.ok else "error").inc()
        if s.ok:
            self.batch_elements.labels(s.model_name, version).inc(s.batch_size)
            self.compute_seconds.labels(s.model_name, version).observe(s.compute_ns / 1e9)


def telemetry_sink(settings: ExecutorSettings, metrics: ExecutorMetrics):
    """Returns (sink, streamer): the sink records metrics and offers to the predictor stream."""
    if not settings.predictor_addr:
        return metrics.record, None
    from mlos.predictor.v1 import predictor_pb2
    from mlos_predictor.client import TelemetryStreamer

    streamer = TelemetryStreamer(settings.predictor_addr)
    streamer.start()
    executor_id = settings.executor_id

    def sink(s: ExecutionSample) -> None:
        metrics.record(s)
        streamer.offer(
            predictor_pb2.ExecutionRecord(
                model_name=s.model_name, model_version=s.model_version, batch_size=s.batch_size,
                compute_ns=s.compute_ns, failed=not s.ok, executor_id=executor_id, unix_ms=int(time.time() * 1000),
            )
        )

    return sink, streamer


__all__ = ["ExecutorMetrics", "Sink", "telemetry_sink"]

"""Executor telemetry: Prometheus metrics and the stream to the predictor.

What goes to the predictor (one TelemetryStreamer; `offer` never blocks, drops are counted):
- an ExecutionRecord per executed batch (latency);
- a MemorySample per warm-up batch size of each load, measured cleanly (memory; memory_guard.py);
- a HealthSample every `health_interval_s` (failure; health.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mlos.predictor.v1 import predictor_pb2
from mlos_common.metrics import LATENCY_BUCKETS_S
from mlos_executor.config import ExecutorSettings
from mlos_executor.core import ExecutionSample, ExecutorCore, Sink
from mlos_executor.eviction import Eviction
from mlos_executor.health import HealthMonitor
from mlos_executor.memory import rss_bytes
from mlos_executor.memory_guard import MemoryMeasurement
from mlos_executor.prefetch import Decision
from mlos_executor.shared_weights import loaded_sharing
from mlos_predictor.streamer import TelemetryStreamer


@dataclass
class ExecutorMetrics:
    registry: CollectorRegistry
    executions: Counter = field(init=False)
    batch_elements: Counter = field(init=False)
    compute_seconds: Histogram = field(init=False)
    prefetches: Counter = field(init=False)
    prefetch_polls: Counter = field(init=False)
    samples: Counter = field(init=False)
    evictions: Counter = field(init=False)

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
        self.prefetches = Counter(
            "mlos_executor_prefetches", "Prefetch decisions on the workload forecast, by outcome "
            "(loaded, no_room, not_registered, failed).", ["outcome"], registry=self.registry,
        )
        self.prefetch_polls = Counter(
            "mlos_executor_prefetch_polls", "Reads of the workload forecast, by outcome (ok, no_forecast).",
            ["outcome"], registry=self.registry,
        )
        self.samples = Counter(
            "mlos_executor_telemetry_samples", "Samples offered to the predictor stream, by kind (health, memory).",
            ["kind"], registry=self.registry,
        )
        self.evictions = Counter(
            "mlos_executor_evictions", "Models evicted to make room for a load, by model and reason "
            "(memory_budget: least recently used with no work in flight).", ["model", "reason"], registry=self.registry,
        )

    def evicted(self, e: Eviction) -> None:
        self.evictions.labels(e.key[0], e.reason).inc()

    def record(self, s: ExecutionSample) -> None:
        version = str(s.model_version)
        self.executions.labels(s.model_name, version, "ok" if s.ok else "error").inc()
        if s.ok:
            self.batch_elements.labels(s.model_name, version).inc(s.batch_size)
            self.compute_seconds.labels(s.model_name, version).observe(s.compute_ns / 1e9)

    def prefetched(self, decision: Decision) -> None:
        self.prefetches.labels(decision.outcome).inc()

    def polled(self, outcome: str) -> None:
        self.prefetch_polls.labels(outcome).inc()

    def watch_memory(self, core: ExecutorCore) -> None:
        """Gauges read at scrape time: the memory budget, what the models use of it, the RSS."""
        budget = core.memory.budget
        for name, doc, read in (
            ("mlos_executor_memory_budget_bytes", "Memory budget for models (0 = none).", lambda: budget.budget_bytes),
            ("mlos_executor_memory_used_bytes", "Loaded models' measured footprints + loads in progress' "
             "predictions.", lambda: budget.used_bytes),
            ("mlos_executor_memory_free_bytes", "Memory budget left (0 with no budget).", budget.free_bytes),
            ("mlos_executor_resident_bytes", "Resident memory of the executor process.", rss_bytes),
        ):
            Gauge(name, doc, registry=self.registry).set_function(read)
        self.registry.register(ModelMemoryCollector(core))

    def watch_pool(self, core: ExecutorCore) -> None:
        """The output pool's counters and the shared weights' bytes, read at scrape time."""
        self.registry.register(_PerfCollector(core))


class ModelMemoryCollector(Collector):
    """`mlos_executor_model_memory_bytes{model,version}`: each loaded model's measured memory, read
    at scrape time (an evicted or unloaded model leaves no stale series)."""

    def __init__(self, core: ExecutorCore) -> None:
        self._core = core

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("mlos_executor_model_memory_bytes", "Measured memory of each loaded model.",
                                   labels=["model", "version"])
        for (name, version), m in list(self._core.models.items()):
            family.add_metric([name, str(version)], m.memory.bytes if m.memory else 0)
        yield family


class _PerfCollector(Collector):
    def __init__(self, core: ExecutorCore) -> None:
        self._core = core

    def collect(self) -> Iterator[Metric]:
        pool = self._core.pool
        if pool is not None:
            for name, doc, value in (
                ("mlos_executor_pool_hits", "Outputs written into a reused pool buffer.", pool.hits),
                ("mlos_executor_pool_misses", "Outputs that needed a new array (first of its shape, all busy, "
                 "or pool full).", pool.misses),
                ("mlos_executor_pool_allocations", "Arrays the output pool allocated.", pool.allocations),
                ("mlos_executor_pool_allocated_bytes", "Bytes the output pool allocated.", pool.allocated_bytes),
            ):
                yield CounterMetricFamily(name, doc, value=value)
            yield GaugeMetricFamily("mlos_executor_pool_held_bytes", "Bytes of the buffers the pool keeps.",
                                    value=pool.held_bytes)
        if self._core.shared_weights is not None:
            stats = loaded_sharing(self._core.models.values())
            yield GaugeMetricFamily("mlos_executor_shared_weight_bytes", "Distinct shared initializers in use, bytes.",
                                    value=stats.held_bytes)
            yield GaugeMetricFamily("mlos_executor_shared_weight_saved_bytes", "Bytes further copies of the shared "
                                    "initializers would take without sharing.", value=stats.saved_bytes)


class ExecutorTelemetry:
    """Metrics, the health monitor and (with a predictor) the stream; its methods are the sinks."""

    def __init__(self, settings: ExecutorSettings, metrics: ExecutorMetrics) -> None:
        self.metrics = metrics
        self.executor_id = settings.executor_id
        self.health = HealthMonitor()
        self.streamer: TelemetryStreamer | None = None
        if settings.predictor_addr:
            self.streamer = TelemetryStreamer(settings.predictor_addr, settings=settings)
            self.streamer.start()

    def execution(self, s: ExecutionSample) -> None:
        self.metrics.record(s)
        self.health.record(s)
        if self.streamer is not None:
            self.streamer.offer(
                predictor_pb2.ExecutionRecord(
                    model_name=s.model_name, model_version=s.model_version, batch_size=s.batch_size,
                    compute_ns=s.compute_ns, failed=not s.ok, executor_id=self.executor_id,
                    unix_ms=int(time.time() * 1000),
                )
            )

    def memory(self, m: MemoryMeasurement) -> None:
        self.metrics.samples.labels("memory").inc()
        if self.streamer is not None:
            f = m.facts
            self.streamer.offer(
                predictor_pb2.MemorySample(
                    model_name=m.model_name, model_version=m.model_version, executor_id=self.executor_id,
                    unix_ms=m.unix_ms, file_bytes=f.file_bytes, parameters=f.parameters, nodes=f.nodes,
                    input_bytes_per_item=f.input_bytes_per_item, output_bytes_per_item=f.output_bytes_per_item,
                    batch_size=m.batch_size, rss_delta_bytes=m.rss_delta_bytes,
                )
            )

    def health_sample(self, core: ExecutorCore) -> predictor_pb2.HealthSample:
        """Closes the health interval and offers its HealthSample (also returned)."""
        h = self.health.snapshot()
        sample = predictor_pb2.HealthSample(
            executor_id=self.executor_id, unix_ms=h.unix_ms, window_s=h.window_s, executions=h.executions,
            errors=h.errors, latency_drift=h.latency_drift, rss_bytes=rss_bytes(),
            memory_budget_bytes=core.memory.budget.budget_bytes, uptime_s=h.uptime_s, loaded_models=len(core.models),
        )
        self.metrics.samples.labels("health").inc()
        if self.streamer is not None:
            self.streamer.offer(sample)
        return sample


def telemetry_sink(settings: ExecutorSettings, metrics: ExecutorMetrics) -> tuple[Callable[[ExecutionSample], None],
                                                                                   TelemetryStreamer | None]:
    """(sink, streamer): the sink records metrics and offers to the predictor stream (if any)."""
    telemetry = ExecutorTelemetry(settings, metrics)
    return telemetry.execution, telemetry.streamer


__all__ = ["ExecutorMetrics", "ExecutorTelemetry", "Sink", "telemetry_sink"]

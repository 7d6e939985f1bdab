"""Per-model inference statistics: Triton's ModelStatistics numbers and Prometheus series.

Metric names mirror Triton's (nv_inference_* -> mlos_inference_*), so dashboards translate.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from mlos_common.metrics import LATENCY_BUCKETS_S
from mlos_scheduler.generation_stats import GenerationBook

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class _BatcherCollector:
    """Queue depth, batching window, window changes and fast-path batches of every served model."""

    def __init__(self, batchers: dict[tuple[str, int], Any]) -> None:
        self._batchers = batchers

    def collect(self) -> Iterator[Metric]:
        labels = ["model", "version"]
        pending = GaugeMetricFamily("mlos_inference_pending_request_count", "Requests queued for a batch slot.", labels=labels)
        window = GaugeMetricFamily("mlos_scheduler_batch_window_seconds", "Adaptive batching window now.", labels=labels)
        changes = CounterMetricFamily("mlos_scheduler_batch_window_changes", "Batching window changes.", labels=labels)
        fast = CounterMetricFamily(
            "mlos_scheduler_fast_path_batches", "Batches dispatched at once by an idle model (no window).", labels=labels
        )
        for (name, version), batcher in list(self._batchers.items()):
            stats, key = batcher.stats(), [name, str(version)]
            pending.add_metric(key, stats.pending)
            window.add_metric(key, batcher.window.window_s)
            changes.add_metric(key, batcher.window.changes)
            fast.add_metric(key, stats.fast_path)
        yield from (pending, window, changes, fast)


@dataclass
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, ns: int, n: int = 1) -> None:
        self.count += n
        self.ns += ns


@dataclass
class ModelStats:
    name: str
    version: int
    last_inference_ms: int = 0
    inference_count: int = 0
    execution_count: int = 0
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_input: Duration = field(default_factory=Duration)   # merging the batch, building the call
    compute_infer: Duration = field(default_factory=Duration)   # executor runtime
    compute_output: Duration = field(default_factory=Duration)  # splitting the answer per request
    batches: dict[int, BatchStats] = field(default_factory=dict)  # batch rows -> durations
    responses: dict[str, ResponseStats] = field(default_factory=dict)  # generations: see generation_stats.py


@dataclass
class BatchStats:
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)


@dataclass
class ResponseStats:
    """A generation model's numbers under one response_stats key (see generation_stats.py)."""

    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    cancel: Duration = field(default_factory=Duration)


class StatsBook:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.models: dict[tuple[str, int], ModelStats] = {}
        r = registry or CollectorRegistry()
        labels = ["model", "version"]
        self._success = Counter("mlos_inference_request_success", "Successful inference requests.", labels, registry=r)
        self._failure = Counter(
            "mlos_inference_request_failure", "Failed inference requests, by status.", [*labels, "reason"], registry=r
        )
        self._count = Counter("mlos_inference_count", "Inferences performed (batch rows).", labels, registry=r)
        self._exec = Counter("mlos_inference_exec_count", "Model executions (batches).", labels, registry=r)
        self._queue_us = Counter(
            "mlos_inference_queue_duration_us", "Cumulative time requests waited in the queue.", labels, registry=r
        )
        self._compute_us = Counter(
            "mlos_inference_compute_infer_duration_us", "Cumulative executor compute time.", labels, registry=r
        )
        self._roundtrip = Histogram(
            "mlos_scheduler_executor_roundtrip_seconds",
            "Time from handing work to an executor to its answer (stream hop both ways + executor), by executor.",
            ["executor"], buckets=LATENCY_BUCKETS_S, registry=r,
        )
        self._request = Histogram(
            "mlos_inference_request_duration_seconds", "End-to-end request time in the scheduler.",
            labels, buckets=LATENCY_BUCKETS_S, registry=r,
        )
        self.batchers: dict[tuple[str, int], Any] = {}  # the served batchers, read at scrape time
        r.register(_BatcherCollector(self.batchers))
        self._batch_rows = Histogram(
            "mlos_scheduler_batch_size", "Rows per dispatched batch.", labels, buckets=BATCH_BUCKETS, registry=r
        )
        self._http = Counter(
            "mlos_http_server_handled", "REST requests answered, by route and HTTP status.", ["route", "code"], registry=r
        )
        self._http_s = Histogram(
            "mlos_http_server_handling_seconds", "REST request time, by route.", ["route"],
            buckets=LATENCY_BUCKETS_S, registry=r,
        )
        self.generation = GenerationBook(r, self.responses)

    def model(self, name: str, version: int) -> ModelStats:
        key = (name, version)
        stats = self.models.get(key)
        if stats is None:
            stats = self.models[key] = ModelStats(name, version)
        return stats

    def responses(self, name: str, version: int, key: str) -> ResponseStats:
        """The numbers of a generation model under one response_stats key (made on first use)."""
        responses = self.model(name, version).responses
        stats = responses.get(key)
        if stats is None:
            stats = responses[key] = ResponseStats()
        return stats

    def succeeded(self, name: str, version: int, rows: int, duration_ns: int) -> None:
        s = self.model(name, version)
        s.success.add(duration_ns)
        s.inference_count += rows
        s.last_inference_ms = int(time.time() * 1000)
        v = str(version)
        self._success.labels(name, v).inc()
        self._count.labels(name, v).inc(rows)
        self._request.labels(name, v).observe(duration_ns / 1e9)

    def failed(self, name: str, version: int, reason: str, duration_ns: int) -> None:
        self.model(name, version).fail.add(duration_ns)
        self._failure.labels(name, str(version), reason).inc()

    def executor_roundtrip(self, executor: str, duration_ns: int) -> None:
        self._roundtrip.labels(executor).observe(duration_ns / 1e9)

    def watch_batcher(self, name: str, version: int, batcher: Any) -> None:
        self.batchers[(name, version)] = batcher

    def unwatch_batcher(self, name: str, version: int) -> None:
        self.batchers.pop((name, version), None)

    def dispatched(self, name: str, version: int, queue_waits_s: list[float], rows: int = 0) -> None:
        if rows:
            self._batch_rows.labels(name, str(version)).observe(rows)
        total_ns = int(sum(queue_waits_s) * 1e9)
        self.model(name, version).queue.add(total_ns, len(queue_waits_s))
        self._queue_us.labels(name, str(version)).inc(total_ns / 1000)

    def executed(
        self, name: str, version: int, rows: int, requests: int, input_ns: int, compute_ns: int, output_ns: int
    ) -> None:
        """One batch: every request in it is charged the batch's durations (as Triton does)."""
        s = self.model(name, version)
        s.execution_count += 1
        s.compute_input.add(input_ns * requests, requests)
        s.compute_infer.add(compute_ns * requests, requests)
        s.compute_output.add(output_ns * requests, requests)
        b = s.batches.get(rows)
        if b is None:
            b = s.batches[rows] = BatchStats()
        b.compute_input.add(input_ns)
        b.compute_infer.add(compute_ns)
        b.compute_output.add(output_ns)
        self._exec.labels(name, str(version)).inc()
        self._compute_us.labels(name, str(version)).inc(compute_ns / 1000)

    def http_request(self, route: str, status: int, seconds: float) -> None:
        """One REST request (routes are templates such as /v2/models/{name}/infer: few series)."""
        self._http.labels(route, str(status)).inc()
        self._http_s.labels(route).observe(seconds)

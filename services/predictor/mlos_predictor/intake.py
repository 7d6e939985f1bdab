"""Intake: every book the predictor learns from, fed one telemetry batch at a time.

`ingest(telemetry)` routes execution records to the LatencyBook (percentiles, profiles) and
the latency rows, rate samples to the workload book, client samples to the threat book, health
samples to the failure book and memory samples to the memory book. A sample that is absurd
(samples.problem) or that its book refuses is counted as rejected, logged at debug level with
the reason, and changes nothing; `last_rejection` keeps the latest reason per sample type.
Counts also go to the Prometheus counter mlos_predictor_telemetry_samples{sample,result}
(execution records keep their own, mlos_predictor_telemetry_records, in the LatencyBook).

Cheap enough for the event loop: O(1) amortised per sample, no numpy except per latency row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter

from mlos_predictor.books import MemoryBook, ThreatBook, WorkloadBook
from mlos_predictor.failure_book import FailureBook
from mlos_predictor.latency import ExecutionRecord, LatencyBook, rejection_reason
from mlos_predictor.latency_rows import LatencyRowBook
from mlos_predictor.rowstore import RowStore
from mlos_predictor.samples import ClientSample, HealthSample, MemorySample, RateSample, Sample, problem

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Telemetry:
    """One TelemetryBatch in domain types."""

    records: Sequence[ExecutionRecord] = ()
    rates: Sequence[RateSample] = ()
    clients: Sequence[ClientSample] = ()
    health: Sequence[HealthSample] = ()
    memory: Sequence[MemorySample] = ()


@dataclass(frozen=True, slots=True)
class IntakeLimits:
    window_rows: int = 20000  # labelled rows kept per kind
    max_entities: int = 10000  # models / executors / clients followed per kind
    failure_horizon_s: float = 30.0
    threat_horizon_s: float = 60.0
    max_skew_s: float = 300.0  # how far in the future a sample's time may be


@dataclass(slots=True)
class _Counts:
    accepted: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class Intake:
    def __init__(
        self,
        latency: LatencyBook,
        limits: IntakeLimits = IntakeLimits(),
        registry: CollectorRegistry | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        n, ents = limits.window_rows, limits.max_entities
        self.limits = limits
        self.latency = latency
        self.latency_rows = LatencyRowBook(latency, n, ents)
        self.workload = WorkloadBook(n, ents)
        self.memory = MemoryBook(n, ents)
        self.failure = FailureBook(n, int(limits.failure_horizon_s * 1000), ents)
        self.threat = ThreatBook(n, int(limits.threat_horizon_s * 1000), ents)
        self._clock_ms = clock_ms
        self._skew_ms = int(limits.max_skew_s * 1000)
        self.counts = _Counts()
        self.last_rejection: dict[str, str] = {}
        self._counter = (
            Counter(
                "mlos_predictor_telemetry_samples",
                "Telemetry samples received, by sample type and result (accepted, or rejected as absurd).",
                ["sample", "result"],
                registry=registry,
            )
            if registry is not None
            else None
        )

    def stores(self) -> dict[str, RowStore]:
        """The labelled rows of each kind."""
        return {
            "latency": self.latency_rows.store,
            "workload": self.workload.store,
            "memory": self.memory.store,
            "failure": self.failure.store,
            "threat": self.threat.store,
        }

    def ingest(self, batch: Telemetry) -> tuple[int, int]:
        """Feeds every book; returns (accepted, rejected) over the batch's records and samples."""
        now_ms = self._clock_ms()
        accepted = rejected = 0
        for rec in batch.records:
            if rec.unix_ms > now_ms + self._skew_ms:
                self._count("record", f"unix_ms {rec.unix_ms} is {(rec.unix_ms - now_ms) / 1000:.0f} s in the future")
                rejected += 1
                continue
            if rejection_reason(rec) is None:
                self.latency_rows.observe(rec)
            if self.latency.record(rec):
                accepted += 1
            else:
                rejected += 1
        books: tuple[tuple[str, Sequence[Sample], Callable], ...] = (
            ("rate", batch.rates, self.workload.add),
            ("client", batch.clients, self.threat.add),
            ("health", batch.health, self.failure.add),
            ("memory", batch.memory, self.memory.add),
        )
        for name, samples, add in books:
            for sample in samples:
                reason = problem(sample, now_ms, self._skew_ms) or add(sample)
                self._count(name, reason)
                if reason is None:
                    accepted += 1
                else:
                    rejected += 1
        return accepted, rejected

    def _count(self, sample: str, reason: str | None) -> None:
        table = self.counts.accepted if reason is None else self.counts.rejected
        table[sample] = table.get(sample, 0) + 1
        if reason is not None:
            self.last_rejection[sample] = reason
            log.debug("rejected %s sample: %s", sample, reason)
        if self._counter is not None:
            self._counter.labels(sample, "accepted" if reason is None else "rejected").inc()

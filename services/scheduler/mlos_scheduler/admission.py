"""Admission decisions and how well miss predictions matched outcomes, per model and priority.

Every request with a deadline that was admitted with a prediction ends as `met` or `missed`
(answered after its deadline, or failed DEADLINE_EXCEEDED after admission); its predicted miss
probability and that outcome feed the Brier score (mean squared error of the probability) and a
reliability table of ten bins. Requests refused at admission (`rejected_predicted`) have no
outcome and stay out of the score. Prometheus: mlos_scheduler_admission_total{model, priority,
decision} and mlos_scheduler_deadline_outcome_total{model, priority, outcome}.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter

BINS = 10


@dataclass
class Bin:
    count: int = 0
    predicted_sum: float = 0.0
    missed: int = 0


@dataclass
class AdmissionRecord:
    model: str
    version: int
    priority: int
    admitted: int = 0
    rejected_predicted: int = 0
    expired_queued: int = 0
    met: int = 0
    missed: int = 0
    cancelled: int = 0
    brier_sum: float = 0.0
    brier_count: int = 0
    bins: list[Bin] = field(default_factory=lambda: [Bin() for _ in range(BINS)])

    @property
    def brier(self) -> float:
        return self.brier_sum / self.brier_count if self.brier_count else 0.0


class AdmissionBook:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.records: dict[tuple[str, int, int], AdmissionRecord] = {}
        r = registry or CollectorRegistry()
        self._decisions = Counter(
            "mlos_scheduler_admission",
            "Admission decisions: admitted, rejected_predicted (refused: predicted to miss), expired_queued "
            "(failed in the queue once its deadline could no longer be met).",
            ["model", "priority", "decision"],
            registry=r,
        )
        self._outcomes = Counter(
            "mlos_scheduler_deadline_outcome",
            "Admitted requests with a deadline by outcome: met, missed, cancelled.",
            ["model", "priority", "outcome"],
            registry=r,
        )

    def record(self, model: str, version: int, priority: int) -> AdmissionRecord:
        key = (model, version, priority)
        rec = self.records.get(key)
        if rec is None:
            rec = self.records[key] = AdmissionRecord(model, version, priority)
        return rec

    def decided(self, model: str, version: int, priority: int, decision: str) -> None:
        rec = self.record(model, version, priority)
        setattr(rec, decision, getattr(rec, decision) + 1)
        self._decisions.labels(model, str(priority), decision).inc()

    def outcome(self, model: str, version: int, priority: int, missed: bool, p_miss: float | None) -> None:
        rec = self.record(model, version, priority)
        if missed:
            rec.missed += 1
        else:
            rec.met += 1
        self._outcomes.labels(model, str(priority), "missed" if missed else "met").inc()
        if p_miss is None:
            return
        actual = 1.0 if missed else 0.0
        rec.brier_sum += (p_miss - actual) ** 2
        rec.brier_count += 1
        b = rec.bins[min(int(p_miss * BINS), BINS - 1)]
        b.count += 1
        b.predicted_sum += p_miss
        b.missed += int(missed)

    def cancelled(self, model: str, version: int, priority: int) -> None:
        self.record(model, version, priority).cancelled += 1
        self._outcomes.labels(model, str(priority), "cancelled").inc()

    def snapshot(self, model: str = "") -> list[AdmissionRecord]:
        return [r for r in self.records.values() if not model or r.model == model]


__all__ = ["AdmissionBook", "AdmissionRecord", "BINS", "Bin"]

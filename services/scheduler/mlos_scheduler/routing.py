"""Predicted completion per executor: the numbers the Dispatcher routes by, and their metrics.

An executor's predicted completion for a batch = its outstanding predicted work (the estimates
of the batches it is running now, summed, divided by its execution slots) + this batch's
estimate on it. Estimates come from an injected `estimate(model, rows) -> seconds` (the latency
profiles, when the scheduler has them); without one, from an EMA of the round trip this
executor took for this model's batches (any executor's EMA for the model before this one has
run it; `prior_s` before anyone has).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge

from mlos_scheduler.breaker import BreakerState
from mlos_scheduler.domain import ModelInfo
from mlos_scheduler.executors import ExecutorPort

Estimate = Callable[[ModelInfo, int], float]  # (model, rows of the batch) -> seconds to run it
EMA_WEIGHT = 0.2  # weight of the newest round trip


@dataclass
class RouteBook:
    estimate: Estimate | None = None
    prior_s: float = 0.001
    _outstanding_s: dict[str, float] = field(default_factory=dict)  # executor addr -> predicted seconds in flight
    _ema_s: dict[tuple[str, str, int], float] = field(default_factory=dict)  # (addr, model, version) -> round trip
    _any_s: dict[tuple[str, int], float] = field(default_factory=dict)  # (model, version) -> last EMA anywhere

    def estimate_s(self, executor: ExecutorPort, model: ModelInfo, rows: int) -> float:
        """Predicted seconds for one batch of `rows` of `model` on `executor`."""
        if self.estimate is not None:
            return self.estimate(model, rows)
        ema = self._ema_s.get((executor.addr, model.name, model.version))
        if ema is None:
            ema = self._any_s.get((model.name, model.version), self.prior_s)
        return ema

    def outstanding_s(self, executor: ExecutorPort) -> float:
        return self._outstanding_s.get(executor.addr, 0.0)

    def completion_s(self, executor: ExecutorPort, model: ModelInfo, rows: int) -> float:
        """Predicted seconds until a batch sent now to `executor` would be answered."""
        queued = self.outstanding_s(executor) / max(1, executor.execution_slots)
        return queued + self.estimate_s(executor, model, rows)

    def started(self, executor: ExecutorPort, estimate_s: float) -> None:
        self._outstanding_s[executor.addr] = self.outstanding_s(executor) + estimate_s

    def finished(self, executor: ExecutorPort, estimate_s: float, model: ModelInfo, roundtrip_s: float | None) -> None:
        """A batch left the executor's books; `roundtrip_s` is None when it got no answer."""
        self._outstanding_s[executor.addr] = max(0.0, self.outstanding_s(executor) - estimate_s)
        if roundtrip_s is None:
            return
        key = (executor.addr, model.name, model.version)
        old = self._ema_s.get(key)
        ema = roundtrip_s if old is None else (1 - EMA_WEIGHT) * old + EMA_WEIGHT * roundtrip_s
        self._ema_s[key] = self._any_s[(model.name, model.version)] = ema


class RoutingMetrics:
    """Prometheus series of routing: breaker state, retries and reloads per executor."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self._breaker = Gauge(
            "mlos_scheduler_executor_breaker_state",
            "Circuit breaker per executor: 0 closed (gets work), 1 half-open (probing), 2 open.",
            ["executor"], registry=r,
        )
        self._retries = Counter(
            "mlos_scheduler_batch_retries",
            "Batches sent again after a try failed, by the executor of the failed try and why "
            "(unavailable: transport failure; not_loaded: the executor had lost the model).",
            ["executor", "reason"], registry=r,
        )
        self._reloads = Counter(
            "mlos_scheduler_model_reloads",
            "Loads of an already placed model on an executor: moved off an executor that failed, loaded "
            "again on one that restarted and lost it, or a replica.",
            ["executor"], registry=r,
        )

    def breaker(self, executor: str, state: BreakerState) -> None:
        self._breaker.labels(executor).set(int(state))

    def retried(self, executor: str, reason: str) -> None:
        self._retries.labels(executor, reason).inc()

    def reloaded(self, executor: str) -> None:
        self._reloads.labels(executor).inc()

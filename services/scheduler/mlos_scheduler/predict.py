"""Deadline-miss prediction (seed 000's MLOS_DEADLINE_PREDICT): pure arithmetic, no I/O.

A request's completion time from now is modelled as a sum of independent normal parts:

    completion = (remaining time of the batches in flight + the queued work that leaves before
                  it, packed into batches of the model's target size) / execution slots
               + the execution time of the batch it joins
               + the scheduler <-> executor share (round trip minus compute, measured)

Each batch's time comes from the local profile replica (`ProfileBook.estimate`: mean and
standard deviation per batch size). The miss probability is P(completion > allowed) under the
normal approximation, with a floor on the spread (5 % of the mean, at least 100 µs) so one
lucky profile cannot make it certain. `should_preempt`: it would miss where the queue puts it,
but would make it if it ran next. Costs a few estimate lookups; nothing is awaited.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from mlos_scheduler.profiles import ExecEstimate

MIN_STD_S = 100e-6
REL_STD = 0.05


@dataclass(frozen=True, slots=True)
class Prediction:
    completion_s: float          # mean predicted time until the answer leaves the scheduler
    std_s: float
    allowed_s: float | None      # deadline - now; None = no deadline
    miss_probability: float      # 0.0 without a deadline
    should_preempt: bool
    queue_s: float               # waiting for the work ahead of it (in flight + queued)
    execution_s: float           # the batch it joins
    network_s: float
    queued_ahead: int
    basis: str

    @property
    def slack_s(self) -> float | None:
        return None if self.allowed_s is None else self.allowed_s - self.completion_s

    def explain(self) -> str:
        allowed = "no deadline" if self.allowed_s is None else f"{self.allowed_s * 1e3:.1f} ms allowed"
        return (
            f"predicted {self.completion_s * 1e3:.1f} ms vs {allowed} (miss probability "
            f"{self.miss_probability:.2f}): {self.queued_ahead} requests and {self.queue_s * 1e3:.1f} ms of work "
            f"ahead, {self.execution_s * 1e3:.1f} ms to execute, {self.network_s * 1e3:.2f} ms on the link "
            f"(execution time from {self.basis})"
        )


@dataclass(frozen=True, slots=True)
class QueueView:
    """What the batcher knows when a request arrives."""

    entries_ahead: int
    rows_ahead: int
    in_flight: tuple[tuple[float, float], ...]  # per running batch: (remaining mean s, std s)
    slots: int
    batch_target: int        # rows per batch the queue packs into (0 = no batch dimension)
    network_s: float
    network_std_s: float


def miss_probability(mean_s: float, std_s: float, allowed_s: float | None) -> float:
    if allowed_s is None:
        return 0.0
    if allowed_s <= 0:
        return 1.0
    z = (allowed_s - mean_s) / (std_s * math.sqrt(2.0))
    return 0.5 * math.erfc(z)


def predict(
    estimate: Callable[[int], ExecEstimate], view: QueueView, rows: int, allowed_s: float | None,
    threshold: float = 0.5,
) -> Prediction:
    """Predicts one request of `rows` rows arriving behind `view`; `allowed_s` = deadline - now."""
    var = 0.0
    queue_mean = 0.0
    for mean, std in view.in_flight:
        queue_mean += mean
        var += std * std
    target = view.batch_target
    if target > 0:
        full, rest = divmod(view.rows_ahead, target)
        own_rows = rest + rows
        if own_rows > target:  # the rest leaves as a batch of its own before ours
            full, rest, own_rows = full + 1, 0, rows
        if full:
            big = estimate(target)
            queue_mean += full * big.mean_s
            var += full * big.std_s**2
        own = estimate(min(own_rows, target))
    else:
        own = estimate(1)
        queue_mean += view.entries_ahead * own.mean_s
        var += view.entries_ahead * own.std_s**2
    slots = max(view.slots, 1)
    queue_s = queue_mean / slots
    var = var / (slots * slots) + own.std_s**2 + view.network_std_s**2
    completion = queue_s + own.mean_s + view.network_s
    std = max(math.sqrt(var), REL_STD * completion, MIN_STD_S)
    p_miss = miss_probability(completion, std, allowed_s)
    preempt = False
    if p_miss > threshold and (view.entries_ahead or len(view.in_flight) >= slots):
        first_done = min((m for m, _ in view.in_flight), default=0.0) if len(view.in_flight) >= slots else 0.0
        front = first_done + own.mean_s + view.network_s
        front_std = max(math.sqrt(own.std_s**2 + view.network_std_s**2), REL_STD * front, MIN_STD_S)
        preempt = miss_probability(front, front_std, allowed_s) <= threshold
    return Prediction(
        completion_s=completion,
        std_s=std,
        allowed_s=allowed_s,
        miss_probability=p_miss,
        should_preempt=preempt,
        queue_s=queue_s,
        execution_s=own.mean_s,
        network_s=view.network_s,
        queued_ahead=view.entries_ahead,
        basis=own.basis,
    )


__all__ = ["Prediction", "QueueView", "miss_probability", "predict"]

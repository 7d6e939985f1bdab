"""Deadline-miss prediction (seed 000's MLOS_DEADLINE_PREDICT): arithmetic, no I/O.

A request's *modelled* completion time from now:

    (remaining time of the batches in flight + the queued work that leaves before it, packed
     into batches of the model's target size) / execution slots, stretched by 1 / (1 - the load
     higher priorities will add while it waits)
  + the batch it joins (filled by the rows queued behind it)

where each batch costs its compute from the local profile replica (`ProfileBook.estimate`) plus
the link's measured share (`Overhead.service`). What the model misses is learned: each priority
level keeps its recent errors (actual - modelled, relative to the modelled time; `ErrorBook`),
and once there are enough, the miss probability is the share of those errors that would overrun
the deadline: an empirical tail, calibrated by construction on what this scheduler sees. Before
that, a normal approximation (spread at least 5 % of the mean and 100 µs). `should_preempt`: it
would miss where the queue puts it but make it if it ran next. A prediction costs ~16 µs here.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from mlos_scheduler.profiles import ExecEstimate

MIN_STD_S = 100e-6
REL_STD = 0.05
MIN_FREE_SHARE = 0.02  # higher priorities' load is capped just under the whole executor


@dataclass(frozen=True, slots=True)
class Prediction:
    completion_s: float          # mean predicted time until the answer leaves the scheduler
    modelled_s: float            # the same without the learned error (what errors are measured against)
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
            f"ahead, {self.execution_s * 1e3:.1f} ms to execute, {self.network_s * 1e3:.2f} ms of learned error "
            f"(execution time from {self.basis})"
        )


class ErrorBook:
    """Recent prediction errors of one priority level: actual time from admission to answer
    minus the modelled completion. Their empirical tail is the miss probability once there are
    `MIN_SAMPLES` of them, so the admission threshold holds for whatever the load does to the
    tail (the normal approximation is only the start-up fallback)."""

    MIN_SAMPLES = 50
    RESORT_EVERY = 16

    def __init__(self, size: int = 512) -> None:
        self._ring: deque[float] = deque(maxlen=size)
        self._sorted: list[float] = []
        self._stale = 0
        self.mean_s = 0.0
        self.var = 0.0

    def add(self, error_s: float, modelled_s: float) -> None:
        """One request's error, relative to its modelled completion, so errors learned on short
        queues carry over to long ones. (Scaling by the square root of the modelled time, as for
        a sum of independent batch times, calibrated worse in the SLO benchmark.)"""
        self._ring.append(error_s / max(modelled_s, MIN_STD_S))
        self._stale += 1
        self.mean_s, self.var = _ema(self.mean_s, self.var, error_s, 0.05)

    def __len__(self) -> int:
        return len(self._ring)

    def exceeding(self, slack_s: float, modelled_s: float) -> float | None:
        """Share of recent errors that would exceed `slack_s` on a request modelled at
        `modelled_s`; None while there are too few."""
        n = len(self._ring)
        if n < self.MIN_SAMPLES:
            return None
        if self._stale >= self.RESORT_EVERY or len(self._sorted) != n:
            self._sorted = sorted(self._ring)
            self._stale = 0
        return (n - bisect.bisect_right(self._sorted, slack_s / max(modelled_s, MIN_STD_S))) / n


@dataclass(slots=True)
class Overhead:
    """Time outside the queue and the runtime, learned per model while it serves.

    `link`: a batch's round trip minus its predicted compute (the link, merging and splitting).
    `errors` (per priority level, ErrorBook): a request's measured time from admission until its
    task resumes with the answer, minus its modelled completion — whatever the model misses (a
    busy event loop; for lower priorities, higher-priority requests that arrive later and go
    ahead). A request cut off by its client's deadline adds a lower bound of its error.
    """

    link_s: float = 0.0
    link_var: float = 0.0
    errors: dict[int, ErrorBook] = field(default_factory=dict)

    def batch_done(self, took_s: float, predicted_compute_s: float) -> None:
        self.link_s, self.link_var = _ema(self.link_s, self.link_var, max(took_s - predicted_compute_s, 0.0), 0.1)

    def request_done(self, priority: int, actual_s: float, modelled_s: float) -> None:
        book = self.errors.get(priority)
        if book is None:
            book = self.errors[priority] = ErrorBook()
        book.add(actual_s - modelled_s, modelled_s)

    def service(self, compute: ExecEstimate) -> ExecEstimate:
        """A batch's time on its slot: predicted compute plus the link's share."""
        return ExecEstimate(compute.mean_s + self.link_s, math.sqrt(compute.std_s**2 + self.link_var), compute.basis)

    def residual_s(self, priority: int) -> tuple[float, float]:
        """(mean, std) of the learned error of predictions at this priority (mean never below 0)."""
        book = self.errors.get(priority)
        return (max(book.mean_s, 0.0), math.sqrt(book.var)) if book is not None else (0.0, 0.0)

    def mean_s(self, priority: int) -> float:
        """Everything outside a batch's compute: the link's share and the learned error."""
        return self.link_s + self.residual_s(priority)[0]


def _ema(mean: float, var: float, sample: float, alpha: float) -> tuple[float, float]:
    delta = sample - mean
    return mean + alpha * delta, (1 - alpha) * (var + alpha * delta * delta)


@dataclass(frozen=True, slots=True)
class QueueView:
    """What the batcher knows when a request arrives."""

    entries_ahead: int
    rows_ahead: int
    in_flight: tuple[tuple[float, float], ...]  # per running batch: (remaining mean s, std s)
    slots: int
    batch_target: int        # rows per batch the queue packs into (0 = no batch dimension)
    network_s: float         # outside queue and batches (Overhead.residual_s of its priority)
    network_std_s: float
    queued_rows: int = 0     # every queued row: lower priorities fill the batch it joins
    higher_load: float = 0.0  # share of the executor slots that higher priorities' arrivals take
    errors: ErrorBook | None = None  # this priority's recent errors: their tail is the miss probability


@dataclass(slots=True)
class ArrivalRates:
    """Rows per second arriving at each priority level, exponentially decayed over `tau_s`."""

    tau_s: float = 1.0
    _rates: dict[int, tuple[float, float]] = field(default_factory=dict)  # priority -> (rows/s, at)

    def add(self, priority: int, rows: int, now: float) -> None:
        rate, at = self._rates.get(priority, (0.0, now))
        self._rates[priority] = (rate * math.exp((at - now) / self.tau_s) + rows / self.tau_s, now)

    def above(self, priority: int, now: float) -> float:
        """Rows per second arriving at priorities higher than `priority` (1 = highest)."""
        return sum(rate * math.exp((at - now) / self.tau_s) for p, (rate, at) in self._rates.items() if p < priority)


def miss_probability(mean_s: float, std_s: float, allowed_s: float | None) -> float:
    if allowed_s is None:
        return 0.0
    if allowed_s <= 0:
        return 1.0
    z = (allowed_s - mean_s) / (std_s * math.sqrt(2.0))
    return 0.5 * math.erfc(z)


def _miss(view: QueueView, modelled: float, mean: float, std: float, allowed_s: float | None) -> float:
    """The empirical tail of this priority's recent errors when there are enough, else normal."""
    if allowed_s is not None and allowed_s > 0 and view.errors is not None:
        tail = view.errors.exceeding(allowed_s - modelled, modelled)
        if tail is not None:
            return tail
    return miss_probability(mean, std, allowed_s)


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
        fill = own_rows + max(view.queued_rows - view.rows_ahead, 0)  # rows behind it join its batch
        own = estimate(min(max(fill, own_rows), target))
    else:
        own = estimate(1)
        queue_mean += view.entries_ahead * own.mean_s
        var += view.entries_ahead * own.std_s**2
    slots = max(view.slots, 1)
    # Higher priorities arriving while it waits go ahead of it (M/G/1 with priorities): its wait
    # stretches by 1 / (1 - their load); at or over 1 it would never start.
    stretch = 1.0 / max(1.0 - view.higher_load, MIN_FREE_SHARE)
    queue_s = queue_mean / slots * stretch
    var = var * (stretch / slots) ** 2 + own.std_s**2 + view.network_std_s**2
    modelled = queue_s + own.mean_s
    completion = modelled + view.network_s
    std = max(math.sqrt(var), REL_STD * completion, MIN_STD_S)
    p_miss = _miss(view, modelled, completion, std, allowed_s)
    # If it ran next: at once in a free slot, else after the first running batch.
    free = len(view.in_flight) < slots
    first_done = 0.0 if free else min((m for m, _ in view.in_flight), default=0.0)
    front = first_done + own.mean_s + view.network_s
    front_std = max(math.sqrt(own.std_s**2 + view.network_std_s**2), REL_STD * front, MIN_STD_S)
    p_front = _miss(view, first_done + own.mean_s, front, front_std, allowed_s)
    preempt = p_miss > threshold and p_front <= threshold and bool(view.entries_ahead or not free)
    return Prediction(
        completion_s=completion,
        modelled_s=modelled,
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


__all__ = ["ArrivalRates", "ErrorBook", "Overhead", "Prediction", "QueueView", "miss_probability", "predict"]

"""A circuit breaker per executor: stop sending work to one that keeps failing, probe it back.

States and transitions (domain only: the Dispatcher runs the probe through the ExecutorPort):

    closed --(K consecutive transport failures)--> open
    open   --(open_s elapsed: the owner starts ONE probe, a real Status call)--> half_open
    half_open --(probe answered)--> closed       half_open --(probe failed)--> open (again open_s)

Only transport failures count (the executor could not be reached: Unavailable); a piece of
work that fails on its data or runtime is the executor answering, and resets the count like any
success. While open or half-open the executor gets no work and no loads; `usable` says so.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field


class BreakerState(enum.IntEnum):
    """Numbered as the Prometheus gauge shows them."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass
class Breaker:
    failures_to_open: int = 3
    open_s: float = 2.0
    clock: Callable[[], float] = field(default=lambda: 0.0)  # the owner's monotonic clock (loop.time)
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0          # consecutive transport failures while closed
    opened_at: float = 0.0
    opened_count: int = 0      # times it has opened, for logs and tests

    @property
    def usable(self) -> bool:
        return self.state is BreakerState.CLOSED

    def succeeded(self) -> None:
        """The executor answered (work, load or probe)."""
        self.failures = 0
        self.state = BreakerState.CLOSED

    def failed(self) -> bool:
        """A transport failure; True when this one opened the breaker (the owner then plans a probe)."""
        if self.state is BreakerState.HALF_OPEN:
            self._open()
            return True
        if self.state is BreakerState.OPEN:
            return False
        self.failures += 1
        if self.failures >= self.failures_to_open:
            self._open()
            return True
        return False

    def probe_due_in_s(self) -> float:
        """Seconds until the probe may start (0 = now); only meaningful while open."""
        return max(0.0, self.opened_at + self.open_s - self.clock())

    def start_probe(self) -> bool:
        """open -> half_open once open_s has passed; False if not (or a probe already runs)."""
        if self.state is not BreakerState.OPEN or self.probe_due_in_s() > 0:
            return False
        self.state = BreakerState.HALF_OPEN
        return True

    def _open(self) -> None:
        self.state = BreakerState.OPEN
        self.opened_at = self.clock()
        self.opened_count += 1
        self.failures = 0

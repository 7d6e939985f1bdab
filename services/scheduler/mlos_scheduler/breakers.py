"""The Dispatcher's circuit breakers: one Breaker (breaker.py) per executor, and their probes.

`failed` counts a transport failure; when that opens the breaker, `on_change` runs (the
Dispatcher moves the executor's models elsewhere) and a probe is planned open_s later: a real
Status call through the ExecutorPort that closes the breaker (then `on_change` runs again, so
models left without a usable holder may come back) or keeps it open another open_s. `answered`
closes it on any answer. Every state change is reported (the breaker-state gauge). Domain only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from mlos_common.errors import MlosError
from mlos_scheduler.breaker import Breaker, BreakerState
from mlos_scheduler.executors import ExecutorPort

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2.0
Spawn = Callable[[Coroutine[Any, Any, None]], None]


class BreakerBoard:
    def __init__(
        self, executors: Sequence[ExecutorPort], failures_to_open: int, open_s: float,
        report: Callable[[str, BreakerState], None], on_change: Callable[[], Coroutine[Any, Any, None]], spawn: Spawn,
    ) -> None:
        self.breakers = {e.addr: Breaker(failures_to_open, open_s, time.monotonic) for e in executors}
        self._report = report
        self._on_change = on_change
        self._spawn = spawn
        self._timers: dict[str, asyncio.TimerHandle] = {}
        for addr, breaker in self.breakers.items():
            report(addr, breaker.state)

    def usable(self, executor: ExecutorPort) -> bool:
        return self.breakers[executor.addr].usable

    def answered(self, executor: ExecutorPort) -> None:
        breaker = self.breakers[executor.addr]
        if breaker.failures or not breaker.usable:
            breaker.succeeded()
            self._report(executor.addr, breaker.state)

    def failed(self, executor: ExecutorPort) -> None:
        breaker = self.breakers[executor.addr]
        if breaker.failed():
            log.warning("executor %s: circuit breaker open after repeated failures; probing in %.1f s",
                        executor.addr, breaker.open_s)
            self._spawn(self._on_change())
            self._plan_probe(executor)
        self._report(executor.addr, breaker.state)

    def _plan_probe(self, executor: ExecutorPort) -> None:
        delay_s = self.breakers[executor.addr].probe_due_in_s()
        loop = asyncio.get_running_loop()
        self._timers[executor.addr] = loop.call_later(delay_s, lambda: self._spawn(self._probe(executor)))

    async def _probe(self, executor: ExecutorPort) -> None:
        breaker = self.breakers[executor.addr]
        if not breaker.start_probe():
            return
        self._report(executor.addr, breaker.state)
        try:
            await executor.probe(min(PROBE_TIMEOUT_S, max(breaker.open_s, 0.1)))
        except MlosError as exc:
            breaker.failed()
            log.info("executor %s: probe failed (%s); breaker stays open", executor.addr, exc.message)
            self._plan_probe(executor)
        else:
            breaker.succeeded()
            log.info("executor %s answered its probe; breaker closed", executor.addr)
            self._spawn(self._on_change())  # models left without a usable holder may go there now
        self._report(executor.addr, breaker.state)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()

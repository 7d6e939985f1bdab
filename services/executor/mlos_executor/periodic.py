"""Background loops of a service: each runs its step every interval until closed.

A step that raises is logged and the loop goes on (the next interval tries again); a step never
overlaps itself (the interval is counted from the end of the previous step). No grpc here.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Step = Callable[[], object | Awaitable[object]]


class Periodic:
    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def every(self, interval_s: float, step: Step, what: str) -> None:
        """Runs `step` (sync or async) every `interval_s`, first after one interval."""
        self._tasks.append(asyncio.get_running_loop().create_task(self._loop(interval_s, step, what), name=what))

    @staticmethod
    async def _loop(interval_s: float, step: Step, what: str) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                result = step()
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a background step's failure must not end its loop
                log.exception("%s failed; trying again in %.1f s", what, interval_s)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

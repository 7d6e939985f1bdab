"""Supervision for `mlos up`: a service that dies is restarted, the others keep serving.

Contract:
- A child that exits while the suite is not stopping is a crash. It is restarted on the ports it
  had (so every peer's address stays right), after a backoff that doubles with each crash of that
  service within `window_s` (initial_backoff_s, 2x, 4x, ... capped at max_backoff_s).
- A restart that fails (the child exits again or never answers SERVING) counts as another crash.
- More than `max_restarts` crashes of one service within `window_s`: the supervisor gives up, says
  which service and how often it crashed, and `run` returns 1 (the caller stops the suite).
- Every crash, restart and give-up is logged (logger mlos_cli.supervise) and handed to `report`
  as an event dict (`mlos up` prints it: JSON on stdout with --json, a line on stderr otherwise).
- A stop request (the `stop` event) ends `run` at once with 0, also during a backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from mlos_cli.launcher import Child, SuiteError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestartPolicy:
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_restarts: int = 5  # within window_s, per service; one more crash gives up
    window_s: float = 300.0


@dataclass
class CrashBook:
    """Crash times per service: the backoff before the next restart, or None to give up."""

    policy: RestartPolicy
    clock: Callable[[], float] = time.monotonic
    crashes: dict[str, list[float]] = field(default_factory=dict)

    def record(self, name: str) -> float | None:
        now = self.clock()
        recent = [t for t in self.crashes.get(name, []) if now - t < self.policy.window_s] + [now]
        self.crashes[name] = recent
        if len(recent) > self.policy.max_restarts:
            return None
        return min(self.policy.max_backoff_s, self.policy.initial_backoff_s * 2 ** (len(recent) - 1))

    def count(self, name: str) -> int:
        return len(self.crashes.get(name, []))


class Supervisor:
    """Watches `children` (name -> Child, kept up to date here) and restarts a dead one through
    `restart(name)`, which starts it again and returns the new Child once it answers SERVING."""

    def __init__(
        self,
        children: dict[str, Child],
        restart: Callable[[str], Awaitable[Child]],
        policy: RestartPolicy,
        report: Callable[[dict], None],
    ) -> None:
        self.children = children
        self.restart = restart
        self.policy = policy
        self.book = CrashBook(policy)
        self.report = report
        self.restarts = 0

    async def run(self, stop: asyncio.Event) -> int:
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while True:
                crashed = await self._next_exit(stopper)
                if crashed is None:
                    return 0
                if not await self._revive(*crashed, stopper):
                    return 0 if stop.is_set() else 1
        finally:
            stopper.cancel()

    async def _next_exit(self, stopper: asyncio.Future) -> tuple[str, int] | None:
        """(name, exit code) of the first child to exit, or None once stop is set."""
        waits = {asyncio.ensure_future(c.process.wait()): c.name for c in self.children.values()}
        done, _ = await asyncio.wait({*waits, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()
        exited = [t for t in done if t in waits]
        if stopper in done or not exited:
            return None
        task = exited[0]
        return waits[task], task.result()

    async def _revive(self, name: str, code: int, stopper: asyncio.Future) -> bool:
        """Restarts `name` until it serves: False when the supervisor gives up or stop is set."""
        while True:
            delay_s = self.book.record(name)
            crashes = self.book.count(name)
            if delay_s is None:
                message = (f"{name} crashed {crashes} times within {self.policy.window_s:.0f}s "
                           f"(last exit code {code}); giving up and stopping the suite")
                log.error("%s", message)
                self.report({"event": "gave_up", "service": name, "crashes": crashes, "exit_code": code,
                             "message": message})
                return False
            log.warning("%s exited with code %s; restarting it in %.1fs (crash %d within %.0fs)",
                        name, code, delay_s, crashes, self.policy.window_s)
            self.report({"event": "crashed", "service": name, "exit_code": code, "restart_in_s": delay_s,
                         "crashes": crashes})
            if await _stopped_within(stopper, delay_s):
                return False
            try:
                child = await self.restart(name)
            except SuiteError as exc:
                log.warning("%s failed to restart: %s", name, exc)
                code = -1
                continue
            self.children[name] = child
            self.restarts += 1
            log.warning("%s restarted (pid %d) on port %d", name, child.process.pid, child.grpc_port)
            self.report({"event": "restarted", "service": name, "pid": child.process.pid, "grpc_port": child.grpc_port,
                         "crashes": crashes})
            return True


async def _stopped_within(stopper: asyncio.Future, delay_s: float) -> bool:
    """Waits delay_s; True when stop was set first."""
    done, _ = await asyncio.wait({stopper}, timeout=delay_s)
    return bool(done)

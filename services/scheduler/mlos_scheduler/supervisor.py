"""MLOS_SCHEDULER_WORKERS > 1: one supervisor process, N scheduler workers behind the same ports.

Contract:
- Ports: before any worker starts, the supervisor binds the gRPC and REST ports once WITHOUT
  SO_REUSEPORT, so a port held by anyone (another MLOS suite included) is a clear start-up error
  (exit 1); port 0 picks the free port the workers will share. It releases them, and the workers
  bind the concrete ports WITH SO_REUSEPORT: the kernel hands each new TCP connection to one
  worker (a gRPC channel or an HTTP keep-alive connection stays on it).
- Workers are `python -m mlos_scheduler` with workers=1, reuse_port=true, worker_index=i, metrics
  on a free port of their own and one private gRPC port. Each has its own queues, batchers,
  statistics and shared-memory registrations, and its own link to each executor.
- Readiness: the supervisor waits for every worker's listening line and for each to answer
  SERVING on its private port (peers up, start-up models loaded); only then does it announce one
  listening line (the shared ports, its own metrics port). So a health check on the shared port,
  whichever worker answers it, is SERVING only when all of them were. A worker that cannot start
  (or is not ready within worker_ready_timeout_s) stops the others; the supervisor exits 1.
- A worker that exits while serving is restarted, at most worker_restart_limit times in the
  supervisor's life; past that everything stops and the supervisor exits 1. A restarted worker
  takes connections as soon as it listens and answers NOT_SERVING until its models are loaded.
- SIGTERM/SIGINT: forwarded to every worker, each drains like a single scheduler; the supervisor
  exits 0 when all have exited (SIGKILL for any still running after shutdown_grace_s + 5 s).
  Workers get SIGTERM if the supervisor itself dies (die_with_parent: Linux parent-death signal).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from mlos_common.bootstrap import StartupError, announce, bind_error, read_announcement, wait_for_serving
from mlos_common.logs import setup_logging
from mlos_common.metrics import start_metrics_server
from mlos_scheduler.config import SchedulerSettings
from mlos_scheduler.worker_metrics import SupervisorMetrics, WorkerScrape

log = logging.getLogger(__name__)

STOP_MARGIN_S = 5.0  # beyond shutdown_grace_s before a worker that does not stop is killed
_PR_SET_PDEATHSIG = 1


def local_addr(host: str) -> str:
    """An address the supervisor can dial for a worker bound on `host` (wildcards -> loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def free_port_or_error(host: str, port: int) -> int:
    """Binds host:port without SO_REUSEPORT and releases it: the port (port 0: the one picked),
    or StartupError naming host:port and why."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, port))
            return probe.getsockname()[1]
    except OSError:
        raise bind_error(host, port) from None


def die_with_parent() -> None:
    """In a worker: SIGTERM (so it drains) when the supervisor dies, even by SIGKILL (Linux;
    elsewhere a no-op). Exits at once if the supervisor is already gone (re-parented to init)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:
        sys.exit("scheduler worker: the supervisor is gone")


@dataclass
class Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    metrics_port: int | None = None
    private_port: int = 0


class Supervisor:
    """Starts, watches, restarts and stops the workers; see the module docstring."""

    def __init__(self, settings: SchedulerSettings, grpc_port: int, http_port: int, metrics: SupervisorMetrics) -> None:
        self.settings = settings
        self.grpc_port = grpc_port
        self.http_port = http_port
        self.metrics = metrics
        self.workers = [Worker(i) for i in range(settings.workers)]
        self.restarts = 0
        self.failed = asyncio.Event()
        self._stopping = False
        self._keepers: list[asyncio.Task] = []

    def metrics_ports(self) -> list[tuple[int, int]]:
        return [(w.index, w.metrics_port) for w in list(self.workers) if w.metrics_port]

    def _env(self, index: int) -> dict[str, str]:
        values = self.settings.model_dump()
        values.update(
            workers=1, reuse_port=True, worker_index=index, grpc_port=self.grpc_port, http_port=self.http_port,
            metrics_port=0 if self.settings.metrics_port >= 0 else -1,
        )
        env = dict(os.environ)
        env.update({f"MLOS_SCHEDULER_{k.upper()}": str(v) for k, v in values.items() if v is not None})
        return env

    async def _spawn(self, w: Worker) -> None:
        """Starts worker w and returns once it answers SERVING on its private port; StartupError if not."""
        self.metrics.up.labels(str(w.index)).set(0)
        w.metrics_port = None
        w.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mlos_scheduler", env=self._env(w.index), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
        )
        self.metrics.pid.labels(str(w.index)).set(w.process.pid)
        ready = asyncio.ensure_future(self._until_ready(w))
        exited = asyncio.ensure_future(w.process.wait())
        try:
            done, _ = await asyncio.wait({ready, exited}, timeout=self.settings.worker_ready_timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
            ready.cancel()  # no-op once done
        if ready not in done:
            why = f"exited with code {w.process.returncode}" if w.process.returncode is not None else (
                f"not ready within {self.settings.worker_ready_timeout_s:g}s")
            raise StartupError(f"scheduler worker {w.index} {why} (its log lines are above)")
        ready.result()
        self.metrics.up.labels(str(w.index)).set(1)
        log.info("worker %d (pid %d) ready on private port %d", w.index, w.process.pid, w.private_port)

    async def _until_ready(self, w: Worker) -> None:
        assert w.process is not None and w.process.stdout is not None
        line = await read_announcement(w.process.stdout)
        if line is None:
            await asyncio.Event().wait()  # it exited: _spawn sees that
            return
        w.metrics_port = line.get("metrics_port")
        w.private_port = int(line["private_port"])
        asyncio.ensure_future(_drain(w.process.stdout))
        addr = f"{local_addr(self.settings.host)}:{w.private_port}"
        await wait_for_serving(addr, self.settings.worker_ready_timeout_s)

    async def start(self) -> None:
        """Starts every worker; on any failure stops those that started and re-raises."""
        spawns = [asyncio.ensure_future(self._spawn(w)) for w in self.workers]
        try:
            await asyncio.gather(*spawns)
        except BaseException:
            for spawn in spawns:
                spawn.cancel()
            await asyncio.gather(*spawns, return_exceptions=True)
            await self.stop()
            raise
        self._keepers = [asyncio.ensure_future(self._keep(w)) for w in self.workers]

    async def _keep(self, w: Worker) -> None:
        """Restarts w whenever it exits, until stopping or the restart limit."""
        while True:
            assert w.process is not None
            code = await w.process.wait()
            if self._stopping:
                return
            self.metrics.up.labels(str(w.index)).set(0)
            if self.restarts >= self.settings.worker_restart_limit:
                log.error("worker %d exited with code %d; restart limit (%d) reached, stopping",
                          w.index, code, self.settings.worker_restart_limit)
                self.failed.set()
                return
            self.restarts += 1
            self.metrics.restarts.inc()
            log.warning("worker %d exited with code %d; restarting it (%d of %d)",
                        w.index, code, self.restarts, self.settings.worker_restart_limit)
            try:
                await self._spawn(w)
            except StartupError as exc:
                log.error("worker %d could not be restarted: %s", w.index, exc)
                self.failed.set()
                return

    async def stop(self) -> None:
        """SIGTERM to every live worker, then wait for each (SIGKILL past the grace period)."""
        self._stopping = True
        for task in self._keepers:
            task.cancel()
        live = [w.process for w in self.workers if w.process is not None and w.process.returncode is None]
        for process in live:
            process.send_signal(signal.SIGTERM)
        for process in live:
            try:
                await asyncio.wait_for(process.wait(), self.settings.shutdown_grace_s + STOP_MARGIN_S)
            except TimeoutError:
                log.warning("worker pid %d did not stop in time; killing it", process.pid)
                process.kill()
                await process.wait()


async def _drain(stream: asyncio.StreamReader) -> None:
    """Reads a worker's stdout to its end so the pipe never fills."""
    while await stream.read(65536):
        pass


async def supervise(settings: SchedulerSettings) -> int:
    """Runs the supervisor until SIGTERM/SIGINT (0) or until workers cannot be kept up (1)."""
    grpc_port = free_port_or_error(settings.host, settings.grpc_port)
    http_port = free_port_or_error(settings.host, settings.http_port) if settings.http_port >= 0 else -1
    registry = CollectorRegistry()
    supervisor = Supervisor(settings, grpc_port, http_port, SupervisorMetrics(registry))
    registry.register(WorkerScrape(local_addr(settings.host), supervisor.metrics_ports))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    http, metrics_port = (None, None)
    if settings.metrics_port >= 0:
        try:
            http, metrics_port = start_metrics_server(registry, settings.host, settings.metrics_port)
        except OSError:
            raise bind_error(settings.host, settings.metrics_port) from None
    try:
        if not await _started(supervisor, stop):
            return 0
        extra = {"http_port": http_port} if http_port >= 0 else {}
        announce("scheduler", grpc_port, metrics_port, workers=settings.workers, **extra)
        log.info("%d workers serving on port %d", settings.workers, grpc_port)
        stopper, failer = asyncio.ensure_future(stop.wait()), asyncio.ensure_future(supervisor.failed.wait())
        await asyncio.wait({stopper, failer}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        failer.cancel()
        log.info("scheduler supervisor: stopping %d workers", settings.workers)
        await supervisor.stop()
        return 1 if supervisor.failed.is_set() else 0
    finally:
        if http is not None:
            http.shutdown()


async def _started(supervisor: Supervisor, stop: asyncio.Event) -> bool:
    """Starts the workers; False if a stop signal came first (the started ones are stopped)."""
    starting, stopper = asyncio.ensure_future(supervisor.start()), asyncio.ensure_future(stop.wait())
    await asyncio.wait({starting, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if starting.done():
        starting.result()  # raises StartupError if a worker could not start
        return True
    starting.cancel()
    try:
        await starting
    except asyncio.CancelledError:
        pass
    return False


def run_supervisor(settings: SchedulerSettings) -> None:
    setup_logging(settings.log_level, "scheduler")
    try:
        code = asyncio.run(supervise(settings))
    except StartupError as exc:
        logging.getLogger("scheduler").error("cannot start: %s", exc)
        code = 1
    sys.exit(code)

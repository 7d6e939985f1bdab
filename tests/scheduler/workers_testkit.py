"""A real multi-worker scheduler (`python -m mlos_scheduler` with MLOS_SCHEDULER_WORKERS=2) in a
child process, pointed at the in-process registry and executor of the shared `stack`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from mlos_common.bootstrap import read_announcement

START_TIMEOUT_S = 90.0


@dataclass
class Supervised:
    process: asyncio.subprocess.Process
    line: dict  # the supervisor's listening line
    log_path: Path

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.line['grpc_port']}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """The supervisor's /metrics: (sample name, sorted labels) -> value."""
        async with httpx.AsyncClient(timeout=10) as client:
            text = (await client.get(f"http://127.0.0.1:{self.line['metrics_port']}/metrics")).text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    async def per_worker(self, name: str, **labels: str) -> dict[str, float]:
        """worker index -> value of sample `name` with `labels` (and a worker label)."""
        found: dict[str, float] = {}
        for (sample, sample_labels), value in (await self.metrics()).items():
            as_dict = dict(sample_labels)
            worker = as_dict.pop("worker", None)
            if sample == name and worker is not None and all(as_dict.get(k) == v for k, v in labels.items()):
                found[worker] = found.get(worker, 0.0) + value
        return found

    async def worker_pids(self) -> dict[str, int]:
        return {w: int(v) for w, v in (await self.per_worker("mlos_scheduler_worker_pid")).items()}


def supervisor_env(**settings: str | int) -> dict[str, str]:
    """The environment of a two-worker scheduler on free ports; `settings` (registry_addr,
    executor_addrs, ...) are MLOS_SCHEDULER_* values."""
    env = dict(os.environ)
    values: dict[str, str | int] = {
        "workers": 2, "grpc_port": 0, "http_port": 0, "metrics_port": 0, "startup_models": "iris,ocr_cls",
        "shutdown_grace_s": 5, **settings,
    }
    env.update({f"MLOS_SCHEDULER_{k.upper()}": str(v) for k, v in values.items()})
    return env


async def run_scheduler(env: dict[str, str], log_path: Path) -> tuple[asyncio.subprocess.Process, dict | None]:
    """Starts `python -m mlos_scheduler`; (process, listening line or None if it exited first)."""
    with log_path.open("ab") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mlos_scheduler", env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=log_file,
        )
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(read_announcement(process.stdout), START_TIMEOUT_S)
    except BaseException:
        process.kill()
        await process.wait()
        raise
    return process, line


@contextlib.asynccontextmanager
async def supervised(env: dict[str, str], log_path: Path) -> AsyncIterator[Supervised]:
    """A started supervisor; on exit SIGTERM (if still running) and wait for it."""
    process, line = await run_scheduler(env, log_path)
    assert line is not None, f"supervisor exited with {await process.wait()}:\n{log_path.read_text()}"
    try:
        yield Supervised(process, line, log_path)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


async def until(condition, what: str, attempts: int = 300, interval_s: float = 0.1) -> None:
    """Bounded polling of an async condition (a process restart has no event to wait on)."""
    for _ in range(attempts):
        if await condition():
            return
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out waiting for {what}")

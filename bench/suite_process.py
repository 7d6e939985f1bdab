"""Start the whole suite with `mlos up --json --ephemeral-ports` and stop it again.

Contract with `mlos up --json`: it prints JSON lines on stdout; one of them is
``{"event": "ready", "scheduler_addr": "127.0.0.1:PORT", "registry_addr": ..., "executor_addr":
..., "predictor_addr": ..., "models": [...]}`` once every service is healthy. SIGTERM stops it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
STOP_GRACE_S = 15.0
LOG_TAIL_CHARS = 4000


@dataclass(frozen=True)
class Suite:
    """A running suite: where its front door listens and what it serves."""

    scheduler_addr: str
    models: tuple[str, ...]
    ready_event: dict[str, Any] = field(default_factory=dict)
    pid: int = 0  # the `mlos up` process; the services are its children


class SuiteStartError(RuntimeError):
    pass


@contextlib.contextmanager
def running_suite(
    home: Path, startup_timeout_s: float, extra_args: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
) -> Iterator[Suite]:
    """Start `mlos up` (plus ``extra_args``, e.g. ``--no-demo``) in its own process group, with
    ``env`` (e.g. ``MLOS_SCHEDULER_POLICY``) over this process's environment; yield once ready,
    always stop it."""
    log_path = home / "mlos-up.stderr.log"
    cmd = [sys.executable, "-m", "mlos_cli", "up", "--json", "--ephemeral-ports",
           "--home", str(home), *extra_args]  # fmt: skip
    logger.info("starting the suite: %s", " ".join(cmd))
    with log_path.open("wb") as stderr:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=stderr, start_new_session=True,
            env={**os.environ, **env} if env else None,
        )
        try:
            lines = _pump_lines(proc.stdout)
            ready = _wait_ready(proc, lines, startup_timeout_s, log_path)
            logger.info("suite ready: %s", ready)
            yield Suite(
                scheduler_addr=ready["scheduler_addr"],
                models=tuple(ready.get("models", ())),
                ready_event=ready,
                pid=proc.pid,
            )
        finally:
            stop_process_group(proc, "the suite")


def _pump_lines(stream: IO[bytes] | None) -> queue.Queue[str | None]:
    """Read stdout in a thread (so the child never blocks on a full pipe); None marks EOF."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert stream is not None
        for raw in stream:
            line = raw.decode(errors="replace").rstrip("\n")
            logger.debug("mlos up: %s", line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, name="mlos-up-stdout", daemon=True).start()
    return lines


def _wait_ready(
    proc: subprocess.Popen[bytes],
    lines: queue.Queue[str | None],
    timeout_s: float,
    log_path: Path,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            proc.wait()
            raise SuiteStartError(
                f"`mlos up` exited with {proc.returncode} before it was ready; "
                f"stderr tail:\n{log_tail(log_path)}"
            )
        event = _parse_event(line)
        if event and event.get("event") == "ready":
            if "scheduler_addr" not in event:
                raise SuiteStartError(f"ready event has no scheduler_addr: {line}")
            return event
    raise SuiteStartError(
        f"`mlos up` not ready within {timeout_s:.0f} s; stderr tail:\n{log_tail(log_path)}"
    )


def _parse_event(line: str) -> dict[str, Any] | None:
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None


def stop_process_group(proc: subprocess.Popen[bytes], what: str) -> None:
    """SIGTERM a process started with ``start_new_session=True`` and wait; after the grace
    period kill its whole process group."""
    if proc.poll() is None:
        logger.info("stopping %s (SIGTERM to pid %d)", what, proc.pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            logger.warning("%s still up after %.0f s: killing its group", what, STOP_GRACE_S)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 0)  # raises when nothing of the group is left
        logger.warning("killing what is left of %s's process group %d", what, proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    logger.info("%s stopped (exit code %s)", what, proc.returncode)


def log_tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
    except OSError:
        return "(no stderr log)"


def run_in_home(home: Path | None, prefix: str, run: Callable[[Path], T]) -> T:
    """``run(home)``; without a home, in a temporary folder removed afterwards."""
    if home is not None:
        home.mkdir(parents=True, exist_ok=True)
        return run(home)
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        return run(Path(tmp))

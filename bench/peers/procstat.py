"""CPU accounting from /proc: per-process CPU time, process trees, and waiting for an idle host.

Linux only. CPU time is utime + stime of /proc/<pid>/stat (clock ticks), i.e. the CPU a process
and all its threads used (not its children's).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
IDLE_WINDOW_S = 2.0


def cpu_s(pid: int) -> float | None:
    """utime + stime of one process in seconds; None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) * TICK_S


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (children, grandchildren, ...), by ppid."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_of(pids: dict[str, list[int]]) -> dict[str, float]:
    """Total CPU seconds per label; processes that are gone count 0."""
    return {label: sum(cpu_s(p) or 0.0 for p in group) for label, group in pids.items()}


@dataclass(frozen=True)
class IdleWait:
    """The outcome of waiting for an idle host before a measurement."""

    idle_fraction: float
    waited_s: float
    reached: bool
    loadavg: tuple[float, float, float]

    def to_json(self) -> dict:
        return {"idle_fraction": round(self.idle_fraction, 3), "waited_s": round(self.waited_s, 1),
                "reached": self.reached, "loadavg": list(self.loadavg)}  # fmt: skip


def _host_ticks() -> tuple[int, int]:
    """(idle + iowait, total) jiffies of the whole host, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return values[3] + values[4], sum(values)


def wait_for_idle(min_idle: float, timeout_s: float) -> IdleWait:
    """Block until the host was >= ``min_idle`` idle over one 2 s window, or ``timeout_s`` passed
    (then log a warning and go on: the row records what the host looked like)."""
    started = time.monotonic()
    idle = 0.0
    while True:
        idle0, total0 = _host_ticks()
        time.sleep(IDLE_WINDOW_S)  # a measurement window, not synchronisation
        idle1, total1 = _host_ticks()
        idle = (idle1 - idle0) / max(1, total1 - total0)
        waited = time.monotonic() - started
        if idle >= min_idle:
            return IdleWait(idle, waited, True, os.getloadavg())
        if waited >= timeout_s:
            logger.warning("host never %.0f%% idle within %.0f s (last 2 s: %.0f%% idle); "
                           "measuring anyway", min_idle * 100, timeout_s, idle * 100)  # fmt: skip
            return IdleWait(idle, waited, False, os.getloadavg())

"""Runtime-mode detection from the mlos_ml kernel module's parameters (../shared/seeds/001).

The mode is read from the parameter files' VALUES, never from their names alone:

- no /sys/module/mlos_ml: `userspace` (pure ONNX Runtime / llama.cpp; always works);
- the module loaded: `kernel_basic` (its memory manager);
- and parameters/enable_scheduler on: `kernel_scheduler`;
- and parameters/enable_gpu_manager on as well: `kernel_full`.

A parameter holds `1`/`Y`/`y` (on) or `0`/`N`/`n` (off), as the kernel prints bools and ints,
whitespace around it ignored. A missing, unreadable or garbage file counts as off, so a damaged
tree reports the lower mode, and the reason says which file and why (and is logged once at
start-up). A GPU manager without the scheduler is no mode of the seed's: it reports
`kernel_basic`. `sys_root` is injectable so tests build synthetic trees. No grpc here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MODULE = Path("sys/module/mlos_ml")
MODES = ("userspace", "kernel_basic", "kernel_scheduler", "kernel_full")
_ON = {"1", "Y", "y"}
_OFF = {"0", "N", "n"}


@dataclass(frozen=True, slots=True)
class RuntimeMode:
    mode: str  # one of MODES
    reason: str  # why, in words (which files said what)


def _flag(params: Path, name: str) -> tuple[bool, str]:
    """(on, what the file said or why it counts as off)."""
    path = params / name
    try:
        text = path.read_text(errors="replace").strip()
    except FileNotFoundError:
        return False, f"{name} absent"
    except OSError as exc:
        return False, f"{name} unreadable ({exc.strerror or type(exc).__name__}), counted as off"
    if text in _ON:
        return True, f"{name}={text}"
    if text in _OFF:
        return False, f"{name}={text}"
    return False, f"{name} holds {text[:20]!r}, not 1/Y/0/N, counted as off"


def detect_runtime_mode(sys_root: Path = Path("/")) -> RuntimeMode:
    """The mode this host offers, from `sys_root`/sys/module/mlos_ml (see the module docstring)."""
    module = sys_root / MODULE
    if not module.is_dir():
        return RuntimeMode("userspace", "the mlos_ml kernel module is not loaded (no /sys/module/mlos_ml)")
    params = module / "parameters"
    scheduler, said_s = _flag(params, "enable_scheduler")
    gpu, said_g = _flag(params, "enable_gpu_manager")
    if scheduler and gpu:
        mode = "kernel_full"
    elif scheduler:
        mode = "kernel_scheduler"
    else:
        mode = "kernel_basic"
    reason = f"mlos_ml loaded: {said_s}, {said_g}"
    if gpu and not scheduler:
        reason += " (a GPU manager without the scheduler is no full configuration)"
    return RuntimeMode(mode, reason)


def log_runtime_mode(found: RuntimeMode) -> None:
    """One start-up line; a warning when a parameter file was damaged."""
    damaged = "counted as off" in found.reason
    log.log(logging.WARNING if damaged else logging.INFO, "runtime mode %s: %s", found.mode, found.reason)

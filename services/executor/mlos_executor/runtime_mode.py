"""Runtime-mode detection.

`userspace` always works. The kernel modes are reported only when the mlos_ml kernel module is
really loaded (/sys/module/mlos_ml exists); its features are then read from its parameters.
"""

from __future__ import annotations

from pathlib import Path

KERNEL_MODULE = Path("/sys/module/mlos_ml")


def detect_runtime_mode(module_dir: Path = KERNEL_MODULE) -> str:
    if not module_dir.is_dir():
        return "userspace"
    params = module_dir / "parameters"
    features = {p.name for p in params.iterdir()} if params.is_dir() else set()
    if {"scheduler", "memory"} <= features:
        return "kernel_full"
    if "scheduler" in features:
        return "kernel_scheduler"
    return "kernel_basic"

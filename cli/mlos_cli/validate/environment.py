"""The exact versions and hardware a validation ran on, recorded with its results."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("mlos", "onnxruntime", "onnx", "llama-cpp-python", "numpy", "grpcio", "protobuf", "scikit-learn", "skl2onnx")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_revision(start: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(start), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def _mem_total_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def _gpus() -> list[str]:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def describe(runtime_modes: list[str]) -> dict:
    """Versions of the packages that decide the numbers, the CPU, memory, GPUs (nvidia-smi) and
    the executors' runtime modes."""
    import onnxruntime

    return {
        "packages": {name: _version(name) for name in PACKAGES},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count() or 0,
        "cpus_usable": len(os.sched_getaffinity(0)),
        "mem_total_bytes": _mem_total_bytes(),
        "gpus": _gpus() or ["none"],
        "onnxruntime_providers": onnxruntime.get_available_providers(),
        "runtime_modes": runtime_modes,
        "git_revision": _git_revision(Path(__file__).resolve().parent),
        "loadavg_at_start": list(os.getloadavg()),
    }

"""GPUs through NVML, when the optional `nvidia-ml-py` (import name pynvml) and a driver exist.

`nvml_gpus()` lists each GPU's index, name, total and free memory and PCI bus id, or says why
there are none (no pynvml, no driver). `choose_gpu(gpus)` places an executor on the GPU with the
most free memory (ties: the lower index); `gpu_budget_bytes` is a fraction of that free memory,
reported per GPU in Status. Untested on GPU hardware: this project's CI and development host
have none; `choose_gpu` and the budget rule are tested with injected facts. No grpc here.
"""

from __future__ import annotations

from dataclasses import dataclass

GPU_BUDGET_FRACTION = 0.8


@dataclass(frozen=True, slots=True)
class GpuFacts:
    index: int
    name: str
    total_bytes: int
    free_bytes: int
    pci_bus_id: str


def gpu_budget_bytes(gpu: GpuFacts, fraction: float = GPU_BUDGET_FRACTION) -> int:
    """The models' budget on `gpu`: `fraction` of the memory free when the executor started."""
    return int(gpu.free_bytes * fraction)


def choose_gpu(gpus: list[GpuFacts]) -> GpuFacts | None:
    """The GPU with the most free memory (the lowest index among equals); None without GPUs."""
    return min(gpus, key=lambda g: (-g.free_bytes, g.index), default=None)


def nvml_gpus() -> tuple[list[GpuFacts], str]:
    """(the GPUs NVML reports, "") or ([], why there are none)."""
    try:
        import pynvml  # optional: the `gpu` extra (nvidia-ml-py)
    except ImportError:
        return [], "no NVML bindings (pip install 'mlos[gpu]' for nvidia-ml-py)"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return [], f"NVML unavailable ({exc})"
    try:
        found = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            bus_id = pynvml.nvmlDeviceGetPciInfo(handle).busId
            found.append(GpuFacts(index, name.decode() if isinstance(name, bytes) else str(name), int(memory.total),
                                  int(memory.free), bus_id.decode() if isinstance(bus_id, bytes) else str(bus_id)))
        return found, "" if found else "NVML reports no GPU"
    except pynvml.NVMLError as exc:
        return [], f"NVML failed ({exc})"
    finally:
        pynvml.nvmlShutdown()

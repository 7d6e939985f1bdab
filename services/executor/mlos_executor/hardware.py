"""What the executor finds and claims at start-up: runtime mode, GPUs, NUMA placement.

`prepare_hardware(...)` runs once, before the inference pool and any session exist:
1. the runtime mode from the mlos_ml module's parameters (runtime_mode.py), logged;
2. the GPUs through NVML when the device may be CUDA (gpu.py): with several, the one with the
   most free memory is chosen and, unless CUDA_VISIBLE_DEVICES is set already, made the only
   visible one (`environ`), so every session of this executor lands there;
3. the NUMA placement (numa.py) for that device, applied by pinning every thread; logged.
Bad settings raise ValueError (PlacementError) with a message naming the setting: the caller
turns it into a start-up error. No grpc here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from mlos_executor.gpu import GpuFacts, choose_gpu, nvml_gpus
from mlos_executor.numa import Placement, pin_threads, plan_placement, read_topology
from mlos_executor.runtime_mode import RuntimeMode, detect_runtime_mode, log_runtime_mode

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Hardware:
    runtime: RuntimeMode
    placement: Placement
    gpus: list[GpuFacts] = field(default_factory=list)
    gpu: GpuFacts | None = None  # the one this executor uses
    gpu_note: str = ""  # why there is none, in words


def prepare_hardware(device: str, numa_pin: bool | None, numa_node: int | None, sys_root: Path = Path("/"),
                     gpus: tuple[list[GpuFacts], str] | None = None,
                     environ: MutableMapping[str, str] | None = None, pin: bool = True) -> Hardware:
    """See the module docstring. `gpus` replaces NVML (tests); `pin=False` pins nothing and says so."""
    runtime = detect_runtime_mode(sys_root)
    log_runtime_mode(runtime)
    found, note = ([], "device is cpu") if device == "cpu" else (gpus if gpus is not None else nvml_gpus())
    chosen = choose_gpu(found)
    env = os.environ if environ is None else environ
    if chosen is not None and len(found) > 1 and "CUDA_VISIBLE_DEVICES" not in env:
        env["CUDA_VISIBLE_DEVICES"] = str(chosen.index)
        log.info("GPU %d (%s) has the most free memory (%.0f MB of %d GPUs): CUDA_VISIBLE_DEVICES=%d",
                 chosen.index, chosen.name, chosen.free_bytes / 2**20, len(found), chosen.index)
    usable = frozenset(os.sched_getaffinity(0))
    topology = read_topology(sys_root, usable)
    placement = plan_placement(topology, device if chosen is not None or device == "cuda" else "cpu",
                               numa_pin, numa_node, usable, chosen.index if chosen else 0)
    if not pin and placement.pinned:  # an executor inside another process (tests) leaves it be
        placement = replace(placement, pinned=False, cpus=(), reason=f"not applied in process: {placement.reason}")
    threads = pin_threads(placement)
    log.info("NUMA placement: %s%s", placement.reason, f" ({threads} threads)" if threads else "")
    return Hardware(runtime, placement, found, chosen, note)

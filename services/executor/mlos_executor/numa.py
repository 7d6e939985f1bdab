"""NUMA topology from /sys and where the executor's inference threads run.

`read_topology(sys_root)`: the nodes and their CPUs (sys/devices/system/node/node*/cpulist) and
every NVIDIA display/3D PCI device with its node (sys/bus/pci/devices/*/{vendor,class,numa_node};
-1 = the firmware does not say). A host without the node folder (some containers) is one node
holding every CPU this process may use.

`plan_placement(...)` decides, `pin_threads(...)` applies it:
- the node: a GPU executor takes its GPU's node (GPUs in PCI address order, as CUDA numbers them
  with CUDA_DEVICE_ORDER=PCI_BUS_ID); a CPU executor takes `node` when configured, else node 0;
- the switch `pin`: None (auto) pins only where there is more than one node (on one node it is
  a no-op that says so), True always pins, False never does;
- pinning sets the affinity of every thread of the process now (sched_setaffinity per task id);
  threads started later (the inference pool, ONNX Runtime's intra-op threads, llama.cpp's)
  inherit it. Memory then comes from the node by Linux's first-touch policy: buffers are first
  written by those threads.
A configured node that does not exist, or whose CPUs this process may not use, raises
PlacementError (a start-up error). `sys_root` is injectable for synthetic trees. No grpc here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

NVIDIA_VENDOR = "0x10de"
DISPLAY_CLASS_PREFIX = "0x03"  # PCI class 03xx: VGA (0300) and 3D controllers (0302)


class PlacementError(ValueError):
    """The NUMA settings do not fit this host; the message names the setting."""


@dataclass(frozen=True, slots=True)
class PciGpu:
    address: str  # e.g. 0000:3b:00.0
    numa_node: int  # -1 = unknown


@dataclass(frozen=True, slots=True)
class Topology:
    nodes: dict[int, frozenset[int]]  # node -> its CPUs
    gpus: tuple[PciGpu, ...]  # NVIDIA GPUs in PCI address order


@dataclass(frozen=True, slots=True)
class Placement:
    pinned: bool
    node: int  # -1 = none chosen
    cpus: tuple[int, ...]  # the CPUs pinned to (empty when not pinned)
    nodes: int  # nodes on the host
    reason: str  # why, in words


def parse_cpulist(text: str) -> frozenset[int]:
    """'0-3,8,10-11' -> {0,1,2,3,8,10,11}; raises ValueError on anything else."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return frozenset(cpus)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def read_topology(sys_root: Path = Path("/"), usable_cpus: frozenset[int] | None = None) -> Topology:
    usable = usable_cpus if usable_cpus is not None else frozenset(os.sched_getaffinity(0))
    nodes: dict[int, frozenset[int]] = {}
    for folder in sorted((sys_root / "sys/devices/system/node").glob("node[0-9]*")):
        try:
            nodes[int(folder.name[4:])] = parse_cpulist(_read(folder / "cpulist"))
        except ValueError:
            continue  # a damaged entry: that node is left out
    gpus = []
    for dev in sorted((sys_root / "sys/bus/pci/devices").glob("*")):
        if _read(dev / "vendor") == NVIDIA_VENDOR and _read(dev / "class").startswith(DISPLAY_CLASS_PREFIX):
            try:
                gpus.append(PciGpu(dev.name, int(_read(dev / "numa_node") or -1)))
            except ValueError:
                gpus.append(PciGpu(dev.name, -1))
    return Topology(nodes or {0: usable}, tuple(gpus))


def plan_placement(topology: Topology, device: str, pin: bool | None, node: int | None,
                   usable_cpus: frozenset[int], gpu_index: int = 0) -> Placement:
    """Where the inference threads go (see the module docstring); raises PlacementError."""
    count = len(topology.nodes)
    if node is not None and node not in topology.nodes:
        raise PlacementError(f"MLOS_EXECUTOR_NUMA_NODE={node}, but this host has NUMA node(s) "
                             f"{sorted(topology.nodes)}; pick one of them or unset it")
    chosen, why = _choose_node(topology, device, node, gpu_index)
    cpus = tuple(sorted(topology.nodes[chosen] & usable_cpus))
    if not cpus:
        if node is not None or pin:
            raise PlacementError(f"NUMA node {chosen} has CPUs {sorted(topology.nodes[chosen])}, none of which this "
                                 f"process may use ({sorted(usable_cpus)}); set MLOS_EXECUTOR_NUMA_NODE to another "
                                 "node or MLOS_EXECUTOR_NUMA_PIN=false")
        return Placement(False, chosen, (), count, f"not pinned: node {chosen} ({why}) has none of this process's CPUs")
    if pin is False:
        return Placement(False, chosen, (), count, f"not pinned (MLOS_EXECUTOR_NUMA_PIN=false); nearest node {chosen}"
                                                   f" ({why})")
    if pin is None and count == 1:
        return Placement(False, chosen, (), count, "not pinned: one NUMA node, nothing to choose "
                                                   "(MLOS_EXECUTOR_NUMA_PIN=true pins anyway)")
    return Placement(True, chosen, cpus, count, f"pinned to node {chosen} ({why}), CPUs {format_cpus(cpus)}")


def _choose_node(topology: Topology, device: str, node: int | None, gpu_index: int) -> tuple[int, str]:
    if device != "cpu" and gpu_index < len(topology.gpus):
        gpu = topology.gpus[gpu_index]
        if gpu.numa_node in topology.nodes:
            return gpu.numa_node, f"nearest GPU {gpu_index} at PCI {gpu.address}"
    if node is not None:
        return node, "MLOS_EXECUTOR_NUMA_NODE"
    first = min(topology.nodes)
    return first, f"CPU executor: node {first} by default" if device == "cpu" else "no GPU node known"


def format_cpus(cpus: tuple[int, ...]) -> str:
    """(0,1,2,3,8) -> '0-3,8'."""
    runs: list[str] = []
    for cpu in cpus:
        if runs and cpu == int(runs[-1].split("-")[-1]) + 1:
            runs[-1] = f"{runs[-1].split('-')[0]}-{cpu}"
        else:
            runs.append(str(cpu))
    return ",".join(runs)


def pin_threads(placement: Placement) -> int:
    """Sets the affinity of every thread of this process to the placement's CPUs (nothing when
    not pinned); returns the threads pinned. Threads started later inherit it."""
    if not placement.pinned:
        return 0
    cpus = set(placement.cpus)
    pinned = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
            pinned += 1
        except (ProcessLookupError, ValueError):
            continue  # the thread ended meanwhile
    return pinned

"""Runtime mode from the mlos_ml parameter values, NUMA placement on synthetic /sys trees (and the
real pinning of this process), the GPU choice on injected NVML facts, and bad hardware settings
refused at start-up by `python -m mlos_executor`."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from exec_testkit import StartExecutor

from mlos_executor.gpu import GpuFacts, choose_gpu, gpu_budget_bytes
from mlos_executor.hardware import prepare_hardware
from mlos_executor.numa import PlacementError, format_cpus, parse_cpulist, pin_threads, plan_placement, read_topology
from mlos_executor.runtime_mode import detect_runtime_mode

ALL_CPUS = frozenset(os.sched_getaffinity(0))


def module_tree(root: Path, **params: str) -> Path:
    folder = root / "sys/module/mlos_ml/parameters"
    folder.mkdir(parents=True)
    for name, value in params.items():
        (folder / name).write_text(value + "\n")
    return root


def two_node_host(root: Path, gpu_node: str = "1") -> Path:
    """Node 0: CPUs 0 and 2-3; node 1: CPUs 1 and 4-5; an NVIDIA 3D controller on node 1, a
    non-NVIDIA display device and an NVIDIA audio function beside it."""
    for node, cpus in (("0", "0,2-3"), ("1", "1,4-5")):
        (root / f"sys/devices/system/node/node{node}").mkdir(parents=True)
        (root / f"sys/devices/system/node/node{node}/cpulist").write_text(cpus + "\n")
    for address, vendor, cls, node in (("0000:3b:00.0", "0x10de", "0x030200", gpu_node),
                                       ("0000:3b:00.1", "0x10de", "0x040300", "1"),
                                       ("0000:00:02.0", "0x8086", "0x030000", "0")):
        dev = root / "sys/bus/pci/devices" / address
        dev.mkdir(parents=True)
        for name, value in (("vendor", vendor), ("class", cls), ("numa_node", node)):
            (dev / name).write_text(value + "\n")
    return root


@pytest.mark.parametrize(("params", "mode"), [
    (None, "userspace"),
    ({}, "kernel_basic"),
    ({"enable_scheduler": "0", "enable_gpu_manager": "0"}, "kernel_basic"),
    ({"enable_scheduler": "1", "enable_gpu_manager": "0"}, "kernel_scheduler"),
    ({"enable_scheduler": "Y", "enable_gpu_manager": "N"}, "kernel_scheduler"),
    ({"enable_scheduler": "1", "enable_gpu_manager": "1"}, "kernel_full"),
    ({"enable_scheduler": "y", "enable_gpu_manager": "Y"}, "kernel_full"),
    ({"enable_scheduler": "0", "enable_gpu_manager": "1"}, "kernel_basic"),  # no such configuration
    ({"scheduler": "1", "memory": "1"}, "kernel_basic"),  # the old, wrong names mean nothing
])
def test_runtime_mode_comes_from_the_parameter_values(tmp_path: Path, params: dict | None, mode: str) -> None:
    root = tmp_path if params is None else module_tree(tmp_path, **params)
    assert detect_runtime_mode(root).mode == mode


def test_damaged_parameter_files_count_as_off_and_say_so(tmp_path: Path, caplog) -> None:
    root = module_tree(tmp_path, enable_scheduler="maybe", enable_gpu_manager="1")
    found = detect_runtime_mode(root)
    assert found.mode == "kernel_basic" and "enable_scheduler holds 'maybe'" in found.reason
    unreadable = module_tree(tmp_path / "b", enable_gpu_manager="1")
    (unreadable / "sys/module/mlos_ml/parameters/enable_scheduler").mkdir()  # a folder: reading it fails
    with caplog.at_level(logging.WARNING, logger="mlos_executor.runtime_mode"):
        found = prepare_hardware("cpu", False, None, unreadable, pin=False).runtime
    assert found.mode == "kernel_basic" and "enable_scheduler unreadable" in found.reason
    assert "runtime mode kernel_basic" in caplog.text and "counted as off" in caplog.text


async def test_status_reports_the_mode_and_why(tmp_path: Path, start_executor: StartExecutor) -> None:
    root = module_tree(tmp_path / "host", enable_scheduler="1", enable_gpu_manager="0")
    status = await (await start_executor(sys_root=root)).client.status()
    assert status.runtime_mode == "kernel_scheduler"
    assert status.runtime_mode_reason == "mlos_ml loaded: enable_scheduler=1, enable_gpu_manager=0"
    assert not status.placement.pinned and status.placement.reason


def test_topology_of_a_two_node_host_with_a_gpu_on_node_1(tmp_path: Path) -> None:
    topology = read_topology(two_node_host(tmp_path), frozenset(range(6)))
    assert topology.nodes == {0: frozenset({0, 2, 3}), 1: frozenset({1, 4, 5})}
    assert [(g.address, g.numa_node) for g in topology.gpus] == [("0000:3b:00.0", 1)]
    usable = frozenset(range(6))
    gpu = plan_placement(topology, "cuda", None, None, usable)
    assert (gpu.pinned, gpu.node, gpu.cpus, gpu.nodes) == (True, 1, (1, 4, 5), 2)
    assert "nearest GPU 0 at PCI 0000:3b:00.0" in gpu.reason
    cpu = plan_placement(topology, "cpu", None, None, usable)
    assert (cpu.pinned, cpu.node, cpu.cpus) == (True, 0, (0, 2, 3))
    assert plan_placement(topology, "cpu", None, 1, usable).cpus == (1, 4, 5)
    off = plan_placement(topology, "cuda", False, None, usable)
    assert not off.pinned and "MLOS_EXECUTOR_NUMA_PIN=false" in off.reason and off.node == 1
    unknown = read_topology(two_node_host(tmp_path / "b", gpu_node="-1"), usable)
    assert plan_placement(unknown, "cuda", None, None, usable).node == 0  # firmware does not say: node 0


def test_one_node_is_a_no_op_that_says_so_and_containers_without_node_folders_are_one_node(tmp_path: Path) -> None:
    topology = read_topology(tmp_path, ALL_CPUS)  # no sys/devices/system/node at all
    assert topology.nodes == {0: ALL_CPUS} and topology.gpus == ()
    placement = plan_placement(topology, "cpu", None, None, ALL_CPUS)
    assert not placement.pinned and "one NUMA node" in placement.reason
    real = plan_placement(read_topology(), "cpu", None, None, ALL_CPUS)  # this host
    assert real.nodes >= 1 and real.pinned == (real.nodes > 1)
    in_process = prepare_hardware("cpu", None, None, two_node_host(tmp_path / "two"), pin=False).placement
    assert not in_process.pinned and in_process.reason.startswith("not applied in process: pinned to node 0")


def test_bad_numa_settings_name_the_setting(tmp_path: Path) -> None:
    topology = read_topology(two_node_host(tmp_path), frozenset(range(6)))
    with pytest.raises(PlacementError, match=r"MLOS_EXECUTOR_NUMA_NODE=7, but this host has NUMA node\(s\) \[0, 1\]"):
        plan_placement(topology, "cpu", None, 7, frozenset(range(6)))
    with pytest.raises(PlacementError, match="none of which this process may use"):
        plan_placement(topology, "cpu", True, 1, frozenset({0, 2}))


def test_pinning_moves_every_thread_and_new_threads_inherit_it() -> None:
    target = min(ALL_CPUS)
    placement = plan_placement(read_topology(Path("/nonexistent"), frozenset({target})), "cpu", True, None,
                               frozenset({target}))
    seen: list[set[int]] = []
    try:
        assert pin_threads(placement) >= 1
        assert os.sched_getaffinity(0) == {target}
        worker = threading.Thread(target=lambda: seen.append(os.sched_getaffinity(0)))
        worker.start()
        worker.join()
    finally:
        os.sched_setaffinity(0, ALL_CPUS)
        for task in Path("/proc/self/task").iterdir():
            try:
                os.sched_setaffinity(int(task.name), ALL_CPUS)
            except (ProcessLookupError, ValueError):
                continue
    assert seen == [{target}]


def test_cpulists() -> None:
    assert parse_cpulist("0-3,8,10-11\n") == {0, 1, 2, 3, 8, 10, 11}
    assert format_cpus((0, 1, 2, 3, 8, 10, 11)) == "0-3,8,10-11"
    with pytest.raises(ValueError):
        parse_cpulist("zero")


def test_the_gpu_with_the_most_free_memory_is_chosen_and_made_the_visible_one(tmp_path: Path) -> None:
    gpus = [GpuFacts(0, "A", 80 << 30, 10 << 30, "0000:3b:00.0"), GpuFacts(1, "B", 80 << 30, 70 << 30, "0000:af:00.0"),
            GpuFacts(2, "C", 40 << 30, 70 << 30, "0000:d8:00.0")]
    assert choose_gpu(gpus) == gpus[1] and choose_gpu([]) is None
    assert gpu_budget_bytes(gpus[1]) == int(0.8 * (70 << 30))
    environ: dict[str, str] = {}
    hardware = prepare_hardware("auto", None, None, two_node_host(tmp_path), gpus=(gpus, ""), environ=environ,
                                pin=False)
    assert hardware.gpu == gpus[1] and environ == {"CUDA_VISIBLE_DEVICES": "1"}
    kept = {"CUDA_VISIBLE_DEVICES": "0"}
    prepare_hardware("auto", None, None, tmp_path, gpus=(gpus, ""), environ=kept, pin=False)
    assert kept == {"CUDA_VISIBLE_DEVICES": "0"}  # the operator's choice stands
    none = prepare_hardware("auto", None, None, tmp_path, gpus=([], "no NVML bindings"), pin=False)
    assert none.gpu is None and none.gpu_note == "no NVML bindings" and none.placement.node == 0


@pytest.mark.parametrize(("env", "message"), [
    ({"MLOS_EXECUTOR_MEMORY_BUDGET_MB": "-5"}, "MLOS_EXECUTOR_MEMORY_BUDGET_MB=-5 is negative"),
    ({"MLOS_EXECUTOR_MEMORY_BUDGET_MB": "100000000"}, "is more than this host's memory"),
    ({"MLOS_EXECUTOR_MEMORY_BUDGET_MB": "lots"}, "MLOS_EXECUTOR_MEMORY_BUDGET_MB='lots'"),
    ({"MLOS_EXECUTOR_NUMA_NODE": "7"}, "MLOS_EXECUTOR_NUMA_NODE=7, but this host has NUMA node(s)"),
    ({"MLOS_EXECUTOR_NUMA_PIN": "sometimes"}, "MLOS_EXECUTOR_NUMA_PIN='sometimes'"),
])
def test_bad_settings_stop_the_executor_at_start_with_a_clear_line(tmp_path: Path, env: dict, message: str) -> None:
    full = {**os.environ, "MLOS_EXECUTOR_GRPC_PORT": "0", "MLOS_EXECUTOR_METRICS_PORT": "-1",
            "MLOS_EXECUTOR_UNIX_LINK": "false", "MLOS_EXECUTOR_CACHE_DIR": str(tmp_path / "cache"), **env}
    done = subprocess.run([sys.executable, "-m", "mlos_executor"], env=full, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1, done.stderr
    assert "cannot start" in done.stderr and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(len(ALL_CPUS) < 2 or 1 not in ALL_CPUS, reason="needs CPU 1 among this process's CPUs")
async def test_a_real_executor_on_a_two_node_host_pins_every_thread_to_its_node(tmp_path: Path) -> None:
    """`python -m mlos_executor` reading a synthetic two-node /sys (node 1 = CPUs 1, 4, 5, of which
    this host has 1), told to serve from node 1: every thread of the process runs on CPU 1 only."""
    from mlos_executor.client import ExecutorClient

    env = {**os.environ, "MLOS_EXECUTOR_GRPC_PORT": "0", "MLOS_EXECUTOR_METRICS_PORT": "-1",
           "MLOS_EXECUTOR_UNIX_LINK": "false", "MLOS_EXECUTOR_CACHE_DIR": str(tmp_path / "cache"),
           "MLOS_EXECUTOR_DEVICE": "cpu", "MLOS_EXECUTOR_SYS_ROOT": str(two_node_host(tmp_path / "host")),
           "MLOS_EXECUTOR_NUMA_NODE": "1", "MLOS_EXECUTOR_HEALTH_INTERVAL_S": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "mlos_executor"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = json.loads(proc.stdout.readline())["grpc_port"]  # the ready line
        client = ExecutorClient(f"127.0.0.1:{port}")
        try:
            placement = (await client.status()).placement
        finally:
            await client.close()
        assert (placement.pinned, placement.numa_node, placement.cpus, placement.numa_nodes) == (True, 1, "1", 2)
        allowed = {task.name: next(line.split()[1] for line in (task / "status").read_text().splitlines()
                                   if line.startswith("Cpus_allowed_list"))
                   for task in Path(f"/proc/{proc.pid}/task").iterdir()}
        assert len(allowed) > 3 and set(allowed.values()) == {"1"}, allowed  # gRPC's, the pool's, ORT's...
    finally:
        proc.terminate()
        proc.wait(timeout=30)

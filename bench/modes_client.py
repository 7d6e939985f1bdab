"""bench_modes.py's client side: unmodified tritonclient.grpc.aio against one running suite, and
the suite's scheduler + executor CPU time from /proc (Linux).

Every run returns plain numbers: `sequential` (1 caller, p50/p99 ms), `closed_loop` (N callers
for a duration: requests/s, p50/p99), `first_request` (ms of a model's first request, after a
prefetch or cold); each with `server_cpu_ms`, the scheduler's and executor's CPU per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from peers.procstat import cmdline, descendants
from peers.procstat import cpu_s as proc_cpu_s

SERVICES = ("scheduler", "executor")


def service_pids(up_pid: int) -> dict[str, int]:
    """The scheduler's and executor's pids among the processes below the `mlos up` process `up_pid`."""
    found = {}
    for pid in descendants(up_pid):
        argv = cmdline(pid)
        for name in SERVICES:
            if f"mlos_{name}" in argv:
                found.setdefault(name, pid)
    missing = set(SERVICES) - found.keys()
    if missing:
        raise RuntimeError(f"no {', '.join(sorted(missing))} process under `mlos up` pid {up_pid}")
    return found


def cpu_s(pids: dict[str, int]) -> float:
    """User + system CPU seconds of these processes so far (10 ms ticks; a process gone counts 0)."""
    return sum(proc_cpu_s(pid) or 0.0 for pid in pids.values())


@dataclass
class Shm:
    """An input and an output region registered with the suite; the input already holds the data."""

    inputs: list[Any]
    outputs: list[Any]
    out_handle: Any
    out_shape: list[int]


@dataclass
class Side:
    client: Any  # tritonclient.grpc.aio.InferenceServerClient
    pids: dict[str, int]

    @contextlib.asynccontextmanager
    async def shm_regions(self, model: str, feeds: dict[str, np.ndarray], output: str) -> AsyncIterator[Shm]:
        """One region per input (filled once) and one for `output` (the same size as the first input)."""
        import tritonclient.grpc.aio as tc
        import tritonclient.utils.shared_memory as shm
        from tritonclient.utils import np_to_triton_dtype

        handles, inputs = [], []
        first = next(iter(feeds.values()))
        try:
            for name, array in feeds.items():
                region = f"bench_{os.getpid()}_{model}_{name}"
                handles.append(shm.create_shared_memory_region(region, f"/{region}", array.nbytes))
                shm.set_shared_memory_region(handles[-1], [array])
                await self.client.register_system_shared_memory(region, f"/{region}", array.nbytes)
                inp = tc.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
                inp.set_shared_memory(region, array.nbytes)
                inputs.append(inp)
            region = f"bench_{os.getpid()}_{model}_{output}"
            handles.append(shm.create_shared_memory_region(region, f"/{region}", first.nbytes))
            await self.client.register_system_shared_memory(region, f"/{region}", first.nbytes)
            out = tc.InferRequestedOutput(output)
            out.set_shared_memory(region, first.nbytes)
            yield Shm(inputs, [out], handles[-1], list(first.shape))
        finally:
            await self.client.unregister_system_shared_memory()
            for handle in handles:
                shm.destroy_shared_memory_region(handle)

    async def call(self, model: str, feeds: dict[str, np.ndarray], in_shm: Shm | None = None) -> None:
        """One ModelInfer; the answer is read as numpy (from the region when `in_shm`)."""
        import tritonclient.grpc.aio as tc
        import tritonclient.utils.shared_memory as shm
        from tritonclient.utils import np_to_triton_dtype

        if in_shm is not None:
            await self.client.infer(model, in_shm.inputs, outputs=in_shm.outputs)
            shm.get_contents_as_numpy(in_shm.out_handle, np.float32, in_shm.out_shape)
            return
        inputs = []
        for name, array in feeds.items():
            inputs.append(tc.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype)))
            inputs[-1].set_data_from_numpy(array)
        result = await self.client.infer(model, inputs)
        for output in result.get_response().outputs:
            result.as_numpy(output.name)

    async def fast_path_batches(self, metrics_url: str) -> float:
        """The scheduler's mlos_scheduler_fast_path_batches_total, over every model."""
        from prometheus_client.parser import text_string_to_metric_families

        def fetch() -> str:
            with urllib.request.urlopen(metrics_url, timeout=10) as answer:
                return answer.read().decode()

        text = await asyncio.to_thread(fetch)
        return sum(s.value for family in text_string_to_metric_families(text)
                   if family.name == "mlos_scheduler_fast_path_batches" for s in family.samples
                   if s.name.endswith("_total"))


def _latencies(ms: list[float], cpu: float, requests: int) -> dict[str, float]:
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "server_cpu_ms": cpu * 1e3 / requests, "requests": requests}


async def sequential(side: Side, model: str, feeds: dict[str, np.ndarray], requests: int,
                     in_shm: Shm | None = None) -> dict[str, float]:
    ms = []
    cpu0 = cpu_s(side.pids)
    for _ in range(requests):
        t0 = time.perf_counter()
        await side.call(model, feeds, in_shm)
        ms.append((time.perf_counter() - t0) * 1e3)
    return _latencies(ms, cpu_s(side.pids) - cpu0, requests)


async def closed_loop(side: Side, model: str, feeds: dict[str, np.ndarray], callers: int,
                      duration_s: float) -> dict[str, float]:
    ms: list[float] = []
    end = time.perf_counter() + duration_s

    async def caller() -> None:
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            await side.call(model, feeds)
            ms.append((time.perf_counter() - t0) * 1e3)

    cpu0, t_start = cpu_s(side.pids), time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    elapsed = time.perf_counter() - t_start
    return {**_latencies(ms, cpu_s(side.pids) - cpu0, len(ms)), "requests_per_s": len(ms) / elapsed}


async def first_request(side: Side, model: str, feeds: dict[str, np.ndarray], prefetch: bool) -> dict[str, float]:
    """ms of `model`'s first request; with `prefetch`, after RepositoryModelLoad (timed apart)."""
    prefetch_ms = 0.0
    if prefetch:
        t0 = time.perf_counter()
        await side.client.load_model(model)
        prefetch_ms = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    await side.call(model, feeds)
    return {"first_ms": (time.perf_counter() - t0) * 1e3, "prefetch_ms": prefetch_ms}

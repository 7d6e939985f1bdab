"""The suite-level switches on and off, through real suites and unmodified tritonclient (issue 12's
"Modes compared"; bench_executor.py has the executor's own switches).

    make bench-modes                               # ~1-2 min: table + bench/results/bench_modes-<stamp>.json
    .venv/bin/python bench/bench_modes.py --quick --json /tmp/x.json   # ~30 s (the smoke test)

One `mlos up --no-demo` per setting, all running at once, so the runs of a row interleave (off, on,
on, off, ...: a change in the machine's load hits both sides); `--repeats` pairs per row. Each row
becomes onoff.py's schema (speedup = off / on for times and CPU, on / off for throughput, mean ±
95 % interval over the pairs), which `mlos validate` shows beside bench_executor's.

Rows (the model and what is measured; "server CPU" = the scheduler's and executor's CPU time per
request, from /proc, at the clock tick's 10 ms resolution over a run):
- client shared memory: identity, `--mb` MiB FP32 in and out, 1 caller: in the message vs in
  registered system shared memory regions (tritonclient.utils.shared_memory). p50, server CPU.
- executor link shared memory: the same tensor in the message from the client, the scheduler ->
  executor hop with MLOS_SCHEDULER_EXECUTOR_SHM=off vs auto. p50, server CPU.
- executor link: iris at 1 caller over MLOS_SCHEDULER_EXECUTOR_LINK=grpc vs auto (the Unix link).
- fast path: iris at 1 caller with MLOS_SCHEDULER_FAST_PATH=false (a lone request waits the
  window) vs true.
- adaptive window: iris at `--callers` (8) callers for `--duration-s`, a fixed window (the
  model's own max_queue_delay_us, `--fixed-window-us`, set at load as Triton's config) vs the
  adaptive one. Throughput, p50, p99.
- prefetch: ocr_cls, the first request to a freshly registered copy (its bytes differ in a
  metadata entry only) vs one prefetched first (RepositoryModelLoad, what `mlos models prefetch`
  sends).
- NUMA pinning: a row without numbers ("n/a") on a one-node host; nothing is invented.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import os
import platform
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from bench_shm import build_identity
from modes_client import Side, closed_loop, first_request, sequential, service_pids
from onoff import finish, not_measured_row, onoff_row, rows_table
from suite_process import Suite, SuiteStartError, running_suite

SUITES: dict[str, dict[str, str]] = {
    "default": {},
    "executor_shm_off": {"MLOS_SCHEDULER_EXECUTOR_SHM": "off"},
    "link_grpc": {"MLOS_SCHEDULER_EXECUTOR_LINK": "grpc"},
    "fast_path_off": {"MLOS_SCHEDULER_FAST_PATH": "false"},
}
PACKAGES = ("mlos", "onnxruntime", "grpcio", "tritonclient", "numpy")


def positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def at_least_two(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be >= 2 (an interval needs two pairs), got {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=at_least_two, default=5, help="off/on pairs per row")
    p.add_argument("--requests", type=at_least_two, default=100, help="sequential requests per 1-caller run (iris)")
    p.add_argument("--large-requests", type=at_least_two, default=15, help="sequential requests per run of the large tensor")
    p.add_argument("--mb", type=positive, default=4.0, help="size of the large tensor, MiB")
    p.add_argument("--callers", type=at_least_two, default=8, help="callers of the window rows")
    p.add_argument("--duration-s", type=positive, default=2.0, help="length of one window run")
    p.add_argument("--fixed-window-us", type=at_least_two, default=1000,
                   help="the fixed window, µs (default: the balanced preset's middle band)")
    p.add_argument("--quick", action="store_true", help="2 pairs of short runs: a smoke run, not a measurement")
    p.add_argument("--json", type=Path, help="where the JSON goes (default bench/results/bench_modes-<stamp>.json)")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.requests, args.large_requests, args.mb, args.duration_s = 2, 8, 4, 1.0, 0.3
    return args


@dataclass
class Pair:
    """One switch's two sides: each run returns its metrics; `metrics` = (key, label, higher is better)."""

    switch: str
    model: str
    off: Callable[[], Awaitable[dict[str, float]]]
    on: Callable[[], Awaitable[dict[str, float]]]
    metrics: tuple[tuple[str, str, bool], ...]
    runs: dict[str, list[dict[str, float]]] = field(default_factory=lambda: {"off": [], "on": []})


P50 = ("p50_ms", "p50 ms", False)
CPU = ("server_cpu_ms", "server CPU ms/request", False)


async def interleave(pairs: list[Pair], repeats: int) -> None:
    """Runs every pair's sides back to back, alternating which goes first."""
    for i in range(repeats):
        for pair in pairs:
            order = ("off", "on") if i % 2 == 0 else ("on", "off")
            for side in order:
                pair.runs[side].append(await (pair.off if side == "off" else pair.on)())


def pair_rows(pair: Pair) -> list[dict[str, Any]]:
    rows = []
    for key, label, higher in pair.metrics:
        off = [r[key] for r in pair.runs["off"]]
        on = [r[key] for r in pair.runs["on"]]
        if all(off) and all(on):  # a zero (no CPU tick in a run) has no ratio
            rows.append(onoff_row(pair.switch, pair.model, label, off, on, higher))
    return rows


def ocr_copy(source: Path, dest: Path, tag: str) -> Path:
    """ocr_cls with one metadata entry added: other bytes, so nothing loaded or cached is reused."""
    import onnx

    model = onnx.load(str(source))
    entry = model.metadata_props.add()
    entry.key, entry.value = "mlos_bench_copy", tag
    onnx.save(model, str(dest))
    return dest


async def register(suite: Suite, models: dict[str, Path]) -> None:
    from mlos_registry.client import RegistryClient  # registry protos only: no clash with tritonclient

    async with RegistryClient(suite.ready_event["registry_addr"]) as registry:
        for name, path in models.items():
            await registry.register(name, path)


def numa_row() -> dict[str, Any]:
    from mlos_executor.numa import read_topology

    nodes = len(read_topology().nodes)
    why = (f"not measurable: {nodes} NUMA node" if nodes < 2 else
           f"{nodes} NUMA nodes, but bench_modes does not drive NUMA pinning yet")
    return not_measured_row("NUMA pinning", "any model", "p50 ms", why)


async def measure(suites: dict[str, Suite], folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    import tritonclient.grpc.aio as tc

    from mlos_cli.demo import prepare_demo_models

    demo = {m.name: m for m in prepare_demo_models(folder / "demo")}
    build_identity(folder / "identity.onnx")
    for suite in suites.values():
        await register(suite, {"iris": demo["iris"].path, "identity_fp32": folder / "identity.onnx"})
    await register(suites["default"], {"iris_fixed": demo["iris"].path})
    sides = {name: Side(tc.InferenceServerClient(s.scheduler_addr), service_pids(s.pid)) for name, s in suites.items()}
    default = sides["default"]
    config = json.dumps({"dynamic_batching": {"max_queue_delay_microseconds": args.fixed_window_us}})
    await default.client.load_model("iris_fixed", config=config)
    iris = demo["iris"].sample_inputs(1)
    large = {"x": np.random.default_rng(0).standard_normal((1, int(args.mb * 2**20) // 4)).astype(np.float32)}
    mb = f"{args.mb:g} MiB in and out"
    try:
        async with default.shm_regions("identity_fp32", large, "y") as in_shm:
            pairs = [
                Pair("client shared memory", f"identity {mb}, 1 caller",
                     lambda: sequential(default, "identity_fp32", large, args.large_requests),
                     lambda: sequential(default, "identity_fp32", large, args.large_requests, in_shm), (P50, CPU)),
                Pair("executor link shared memory", f"identity {mb} (in the message), 1 caller",
                     lambda: sequential(sides["executor_shm_off"], "identity_fp32", large, args.large_requests),
                     lambda: sequential(default, "identity_fp32", large, args.large_requests), (P50, CPU)),
                Pair("executor link: Unix vs gRPC", "iris, 1 caller",
                     lambda: sequential(sides["link_grpc"], "iris", iris, args.requests),
                     lambda: sequential(default, "iris", iris, args.requests), (P50, CPU)),
                Pair("fast path", "iris, 1 caller",
                     lambda: sequential(sides["fast_path_off"], "iris", iris, args.requests),
                     lambda: sequential(default, "iris", iris, args.requests), (P50, CPU)),
                Pair("adaptive window", f"iris, {args.callers} callers, vs fixed {args.fixed_window_us} µs",
                     lambda: closed_loop(default, "iris_fixed", iris, args.callers, args.duration_s),
                     lambda: closed_loop(default, "iris", iris, args.callers, args.duration_s),
                     (("requests_per_s", "requests/s", True), P50, ("p99_ms", "p99 ms", False), CPU)),
            ]
            for pair in pairs:  # loads every model and warms every path before anything counts
                await pair.off()
                await pair.on()
            await interleave(pairs, args.repeats)
        copies = itertools.count()

        async def fresh_copy(prefetched: bool) -> dict[str, float]:
            name = f"ocr_cls_{'pre' if prefetched else 'cold'}_{next(copies)}"
            await register(suites["default"], {name: ocr_copy(demo["ocr_cls"].path, folder / f"{name}.onnx", name)})
            return await first_request(default, name, demo["ocr_cls"].sample_inputs(1), prefetched)

        prefetch = Pair("prefetch", "ocr_cls, first request after registration", lambda: fresh_copy(False),
                        lambda: fresh_copy(True), (("first_ms", "first request ms", False),))
        await interleave([prefetch], args.repeats)
        pairs.append(prefetch)
        fast_counts = {n: await s.fast_path_batches(suites[n].ready_event["metrics"]["scheduler"]) for n, s in sides.items()}
    finally:
        for side in sides.values():
            await side.client.close()
    rows = [row for pair in pairs for row in pair_rows(pair)] + [numa_row()]
    details = [{"switch": p.switch, "model": p.model, "runs": p.runs} for p in pairs]
    return {"rows": rows, "details": details, "fast_path_batches": fast_counts}


def start_suites(stack: contextlib.ExitStack, home: Path) -> dict[str, Suite]:
    """Every suite of SUITES, started at once (each `mlos up` waits for its own health)."""
    def start(name: str) -> Suite:
        (home / name).mkdir()
        return stack.enter_context(running_suite(home / name, 180, ("--no-demo",), env=SUITES[name]))

    with ThreadPoolExecutor(len(SUITES)) as pool:
        return dict(zip(SUITES, pool.map(start, SUITES), strict=True))


def runtime_mode(suite: Suite) -> str:
    with urllib.request.urlopen(f"{suite.ready_event['scheduler_http']}/health", timeout=10) as answer:
        return str(json.load(answer).get("runtime_mode", "?"))


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out: dict[str, Any] = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "versions": versions(), "loadavg_at_start": os.getloadavg()},
        "args": {k: str(v) for k, v in vars(args).items()}, "suites": SUITES,
        "started_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlos-bench-modes-") as tmp, contextlib.ExitStack() as stack:
        print(f"starting {len(SUITES)} suites: {', '.join(SUITES)} ...", flush=True)
        try:
            suites = start_suites(stack, Path(tmp))
        except SuiteStartError as exc:
            print(f"bench_modes: a suite did not start: {exc}", file=sys.stderr)
            return 2
        out["machine"]["runtime_mode"] = runtime_mode(suites["default"])
        print(f"measuring {args.repeats} interleaved off/on pairs per row ...", flush=True)
        out.update(asyncio.run(measure(suites, Path(tmp), args)))
    out["duration_s"] = time.perf_counter() - t0
    lines = [f"suite switches, off vs on: mean ± 95 % CI over {args.repeats} interleaved pairs (speedup = off/on "
             "for times and CPU, on/off for throughput; > 1 = the switch helps)", "", *rows_table(out["rows"])]
    finish(out, "bench_modes", lines, args.json, f"; fast-path batches per suite {out['fast_path_batches']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
